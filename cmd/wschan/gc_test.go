package main

import (
	"context"
	"io"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/wschan/wschan"
)

func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		engine wschan.Engine
		env    map[string]string
		want   int
		set    bool
	}{
		{wschan.EnginePoll, nil, pollGCPercent, true},
		{wschan.EnginePoll, map[string]string{"GOGC": "100"}, 0, false},
		{wschan.EnginePoll, map[string]string{"GOGC": "off"}, 0, false},
		{wschan.EngineGoroutine, nil, 0, false},
	} {
		got, set := gcPercent(tt.engine, mapEnv(tt.env))
		if got != tt.want || set != tt.set {
			t.Errorf("gcPercent(%s, %v) = %d, %v; want %d, %v", tt.engine, tt.env, got, set, tt.want, tt.set)
		}
	}
}

// TestServeSetsGCPercent runs wschan serve in this process (its context
// already ended, so it stops at once) and reads the collector's target
// it left. Not parallel: the target is the process's.
func TestServeSetsGCPercent(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"poll", []string{"--engine", "poll"}, nil, pollGCPercent},
		{"poll with GOGC set", []string{"--engine", "poll"}, map[string]string{"GOGC": "100"}, 77},
		{"goroutine", []string{"--engine", "goroutine"}, nil, 77},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prev := debug.SetGCPercent(77)
			defer debug.SetGCPercent(prev)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--log-level", "error"}, tt.args...)
			var stderr strings.Builder
			if code := execute(ctx, newRootCmd(mapEnv(tt.env)), args, strings.NewReader(""), io.Discard, &stderr); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if got := debug.SetGCPercent(77); got != tt.want {
				t.Errorf("GC percent after serve %v = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}
