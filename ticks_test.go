package wschan

import (
	"testing"
	"testing/synctest"
	"time"
)

// Keepalives of different intervals on one tickHeap each tick on time, a
// stopped one never again, and the heap lets go of them all at the end.
func TestTickHeap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		now := func() int64 { return int64(time.Since(start)) }
		sched := newTickHeap(now)
		const n = 200
		ks := make([]*keepalive, n)
		fs := make([]*fakeConn, n)
		for i := range n {
			fs[i] = &fakeConn{now: now}
			// Intervals 1..20 s, in no order; timeout 0: pings only.
			iv := time.Duration(1+(i*7)%20) * time.Second
			ks[i] = &keepalive{interval: iv, c: fs[i], now: now, sched: sched}
			ks[i].start()
		}
		for i := 1; i < n; i += 2 {
			ks[i].stop()
		}
		for s := 1; s <= 45; s++ {
			after(time.Second)
			for i := range n {
				want := 0
				if i%2 == 0 {
					want = s / int(ks[i].interval/time.Second)
				}
				if got, _ := fs[i].state(); got != want {
					t.Fatalf("after %d s: keepalive %d (every %v) pinged %d times, want %d", s, i, ks[i].interval, got, want)
				}
			}
		}
		for i := 0; i < n; i += 2 {
			ks[i].stop()
			ks[i].wait()
		}
		sched.mu.Lock()
		left, room := len(sched.h), cap(sched.h)
		sched.mu.Unlock()
		if left != 0 || room > 64 {
			t.Fatalf("after every stop the heap holds %d (room for %d)", left, room)
		}
	})
}

// Keepalives made inside a synctest bubble get a heap of their own (its
// timer belongs to the bubble); others share ticks.
func TestTickHeapForBubble(t *testing.T) {
	if tickHeapFor() != ticks {
		t.Fatal("outside a bubble: not the shared heap")
	}
	synctest.Test(t, func(t *testing.T) {
		if h := tickHeapFor(); h == ticks || h == nil {
			t.Fatal("inside a bubble: the shared heap")
		}
	})
}
