package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name     string
		attempt  int
		jitter   float64
		min, max time.Duration
	}{
		{"first attempt low jitter", 1, 0, 50 * time.Millisecond, 50 * time.Millisecond},
		{"first attempt high jitter", 1, 0.999999, 99 * time.Millisecond, 100 * time.Millisecond},
		{"zero attempt is first", 0, 0, 50 * time.Millisecond, 50 * time.Millisecond},
		{"doubles", 3, 0, 200 * time.Millisecond, 200 * time.Millisecond},
		{"capped", 10, 0.999999, 999 * time.Millisecond, time.Second},
		{"capped far out", 1000, 0, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := p.Delay(tt.attempt, func() float64 { return tt.jitter })
			if got < tt.min || got > tt.max {
				t.Errorf("Delay(%d) = %v, want in [%v, %v]", tt.attempt, got, tt.min, tt.max)
			}
		})
	}
}

func TestDelayRandomStaysInBounds(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for n := 1; n < 12; n++ {
		for range 200 {
			d := p.Delay(n, nil)
			if d < 5*time.Millisecond || d > 80*time.Millisecond {
				t.Fatalf("Delay(%d) = %v out of [5ms, 80ms]", n, d)
			}
		}
	}
}

func TestDelayDefaultsForBadPolicy(t *testing.T) {
	t.Parallel()
	if d := (Policy{}).Delay(5, func() float64 { return 0 }); d <= 0 {
		t.Fatalf("zero policy gave %v, want a positive delay", d)
	}
}
