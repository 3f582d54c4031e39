package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    string
		stderrHas string
	}{
		// Not a terminal: the demo runs in plain mode on its own echo server.
		{"no arguments runs the demo", nil, "hello, world\n", exitOK, "< hello, world", ""},
		{"demo", []string{"demo"}, "你好\n", exitOK, "< 你好", ""},
		{"demo on a refused URL", []string{"--url", "ws://127.0.0.1:1/ws"}, "", exitError, "", "cannot connect"},
		{"--help", []string{"--help"}, "", exitOK, "wschan serve", ""},
		{"--version", []string{"--version"}, "", exitOK, "wschan dev", ""},
		{"unknown flag", []string{"--nope"}, "", exitUsage, "", "unknown flag: --nope"},
		{"unknown command", []string{"frobnicate"}, "", exitUsage, "", "wschan --help"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			code := run(t.Context(), tt.args, strings.NewReader(tt.stdin), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", out.String(), tt.stdout)
			}
			if !strings.Contains(errb.String(), tt.stderrHas) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderrHas)
			}
		})
	}
}
