package xconnect

import (
	"slices"
	"testing"
)

func TestEnv(t *testing.T) {
	tests := []struct {
		name, godebug string
		want          string
		enabled       bool
		decided       bool
	}{
		{"empty", "", "GODEBUG=http2xconnect=1", false, false},
		{"others kept", "madvdontneed=1", "GODEBUG=madvdontneed=1,http2xconnect=1", false, false},
		{"on", "http2xconnect=1", "GODEBUG=http2xconnect=1,http2xconnect=1", true, true},
		{"off is a decision", "http2xconnect=0", "GODEBUG=http2xconnect=0,http2xconnect=1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GODEBUG", tt.godebug) // process state: not parallel
			e := env()
			if n := len(slices.DeleteFunc(slices.Clone(e), func(kv string) bool { return len(kv) < 8 || kv[:8] != "GODEBUG=" })); n != 1 {
				t.Fatalf("%d GODEBUG entries", n)
			}
			if !slices.Contains(e, tt.want) {
				t.Fatalf("env has no %q", tt.want)
			}
			if Enabled() != tt.enabled || Decided() != tt.decided {
				t.Fatalf("Enabled %v, Decided %v; want %v, %v", Enabled(), Decided(), tt.enabled, tt.decided)
			}
		})
	}
}
