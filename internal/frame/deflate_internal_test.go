package frame

import (
	"bytes"
	"fmt"
	"testing"
)

// TestDeflateIdleMemory checks what an idle connection keeps: the window
// with context takeover (no more than its size), nothing without.
func TestDeflateIdleMemory(t *testing.T) {
	t.Parallel()
	msgs := [][]byte{[]byte("short"), bytes.Repeat([]byte("0123456789"), 1000), []byte("short again")}
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			t.Parallel()
			d, f := NewDeflater(12, takeover), NewInflater(12, takeover)
			for i, m := range msgs {
				if _, err := f.Inflate(nil, d.Deflate(nil, m), 1<<20); err != nil {
					t.Fatal(err)
				}
				if !takeover {
					if d.window != nil || f.window != nil {
						t.Fatalf("after message %d: windows of %d and %d bytes without takeover", i, cap(d.window), cap(f.window))
					}
					continue
				}
				if cap(d.window) > 1<<12 || cap(f.window) > 1<<12 {
					t.Fatalf("after message %d: windows of %d and %d bytes, over 4 KiB", i, cap(d.window), cap(f.window))
				}
			}
			if takeover && (!bytes.Equal(d.window, f.window) || len(d.window) != 1<<12) {
				t.Errorf("the windows differ or are not full: %d and %d bytes", len(d.window), len(f.window))
			}
		})
	}
}

// TestDeflateSteadyStateDoesNotAllocate pins the pooled path: with room
// in dst, a message costs no allocation either way.
func TestDeflateSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	m := bytes.Repeat([]byte("steady state "), 300)
	d, f := NewDeflater(12, true), NewInflater(12, true)
	z := make([]byte, 0, 2*len(m))
	out := make([]byte, 0, 2*len(m))
	if n := testing.AllocsPerRun(50, func() {
		var err error
		z = d.Deflate(z[:0], m)
		if out, err = f.Inflate(out[:0], z, 1<<20); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}
