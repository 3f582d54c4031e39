package rooms_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// discardConn takes every message and counts it: the hub's own cost of
// fan-out, without framing or sockets (as gws's benchmarks isolate framing).
type discardConn struct{ n *atomic.Int64 }

func (c discardConn) Send(context.Context, wschan.MessageType, []byte) error {
	c.n.Add(1)
	return nil
}
func (discardConn) Close(wschan.StatusCode, string) error { return nil }

// BenchmarkFanOut publishes one message to a room of N members and counts
// until each member's goroutine has taken it; bytes/s count every copy
// delivered.
func BenchmarkFanOut(b *testing.B) {
	for _, members := range []int{10, 100, 1000} {
		for _, size := range []int{16, 1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("members=%d/size=%d", members, size), func(b *testing.B) {
				const queue, batch = 1024, 512
				hub := rooms.NewHub(&rooms.HubOptions{QueueSize: queue, MaxMembers: -1})
				defer hub.Close()
				var n atomic.Int64
				ctx := context.Background()
				for range members {
					if _, err := hub.Join(ctx, "bench", discardConn{&n}); err != nil {
						b.Fatal(err)
					}
				}
				data := make([]byte, size)
				b.SetBytes(int64(size * members))
				b.ReportAllocs()
				var sent int64
				for b.Loop() {
					if err := hub.Publish(ctx, "bench", wschan.Binary, data); err != nil {
						b.Fatal(err)
					}
					if sent++; sent%batch == 0 {
						waitDelivered(&n, sent*int64(members))
					}
				}
				waitDelivered(&n, sent*int64(members))
				if st := hub.Stats(); st.SlowClosed != 0 {
					b.Fatalf("%d members closed as slow", st.SlowClosed)
				}
			})
		}
	}
}

func waitDelivered(n *atomic.Int64, want int64) {
	for n.Load() < want {
		runtime.Gosched()
	}
}

// The allocations of one publication do not grow with the room: the
// payload is copied once and shared, and writing to a member allocates
// nothing in the hub (a regression here once cost 3 per member).
func TestFanOutAllocsIndependentOfMembers(t *testing.T) {
	const members = 100
	hub := newHub(t, &rooms.HubOptions{QueueSize: 4})
	var n atomic.Int64
	for range members {
		if _, err := hub.Join(t.Context(), "allocs", discardConn{&n}); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 64)
	var sent int64
	allocs := testing.AllocsPerRun(200, func() {
		if err := hub.Publish(context.Background(), "allocs", wschan.Binary, data); err != nil {
			t.Fatal(err)
		}
		sent++
		waitDelivered(&n, sent*members)
	})
	if allocs > 5 {
		t.Errorf("%.1f allocations per publication to %d members, want at most 5", allocs, members)
	}
}
