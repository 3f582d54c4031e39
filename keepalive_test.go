package wschan

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeConn is the keepalive's view of a connection, driven by the test.
// Writes can be made to block, as on a socket the peer stopped reading.
type fakeConn struct {
	now func() int64

	read, sendEnd atomic.Int64
	isBusy        atomic.Bool
	block         chan struct{} // when not nil, writePing waits for it to close

	mu      sync.Mutex
	pings   [][]byte
	aborted bool
}

func (f *fakeConn) lastRead() int64    { return f.read.Load() }
func (f *fakeConn) lastSendEnd() int64 { return f.sendEnd.Load() }
func (f *fakeConn) busy() bool         { return f.isBusy.Load() }

func (f *fakeConn) writePing(p []byte) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	f.pings = append(f.pings, append([]byte(nil), p...))
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) abort() {
	f.mu.Lock()
	f.aborted = true
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		default:
			close(f.block) // the socket closes: the stuck write fails
		}
	}
}

func (f *fakeConn) state() (pings int, aborted bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pings), f.aborted
}

func (f *fakeConn) lastPing() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings[len(f.pings)-1]
}

// newTestKeepalive returns a keepalive over a fake connection whose clock
// is the bubble's.
func newTestKeepalive(interval, timeout time.Duration) (*keepalive, *fakeConn) {
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	f := &fakeConn{now: now}
	return &keepalive{interval: interval, timeout: timeout, c: f, now: now, sched: newTickHeap(now)}, f
}

// after lets d pass on the bubble's clock and waits for what it set off.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestKeepaliveTimers(t *testing.T) {
	const iv, to = 30 * time.Second, 15 * time.Second
	t.Run("a ping every interval while answered", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, to)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(iv)
			for round := 1; round <= 5; round++ { // a ping at each multiple of iv
				if n, aborted := f.state(); n != round || aborted {
					t.Fatalf("after %d intervals: %d pings, aborted %v", round, n, aborted)
				}
				after(time.Second)
				rtt, ok := k.pong(f.lastPing())
				if !ok || rtt != time.Second {
					t.Fatalf("pong: rtt %v ok %v, want 1s", rtt, ok)
				}
				after(iv - time.Second)
			}
		})
	})
	t.Run("no answer within the timeout ends the connection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, to)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(iv + to - time.Second)
			if _, aborted := f.state(); aborted {
				t.Fatal("aborted before the ping timeout")
			}
			after(time.Second)
			if _, aborted := f.state(); !aborted || !k.timedOut.Load() {
				t.Fatalf("aborted %v timedOut %v after the ping timeout", aborted, k.timedOut.Load())
			}
		})
	})
	t.Run("a late or foreign pong does not count", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, to)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(iv)
			var foreign [8]byte
			binary.BigEndian.PutUint64(foreign[:], 12345)
			if _, ok := k.pong(foreign[:]); ok {
				t.Fatal("a pong to no ping of ours counted")
			}
			if _, ok := k.pong([]byte("short")); ok {
				t.Fatal("a pong of the wrong length counted")
			}
			after(to)
			if _, aborted := f.state(); !aborted {
				t.Fatal("foreign pongs kept a dead peer alive")
			}
		})
	})
	t.Run("incoming data is a sign of life", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, to)
			k.start()
			defer func() { k.stop(); k.wait() }()
			for range 30 { // no pongs, but a message every 10s
				after(10 * time.Second)
				f.read.Store(k.now())
			}
			if n, aborted := f.state(); n == 0 || aborted {
				t.Fatalf("%d pings, aborted %v: a peer sending data was taken for dead", n, aborted)
			}
			after(iv + to) // then silence
			if _, aborted := f.state(); !aborted {
				t.Fatal("silence after the data did not end the connection")
			}
		})
	})
	t.Run("a slow consumer is not a dead peer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The read loop waits on the stream's consumer (busy) for many
			// timeouts: the peer cannot be heard meanwhile.
			k, f := newTestKeepalive(iv, to)
			f.isBusy.Store(true)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(10 * (iv + to))
			if _, aborted := f.state(); aborted {
				t.Fatal("aborted while busy")
			}
			f.isBusy.Store(false)
			after(iv + to)
			if _, aborted := f.state(); !aborted {
				t.Fatal("still alive a ping timeout after the consumer caught up, with no answer")
			}
		})
	})
	t.Run("a ping stuck behind a peer that reads nothing ends it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The peer floods pings and never reads: the pongs fill the
			// socket and the keepalive's ping cannot go out. Nothing else
			// arrives or is sent: the timeout counts from the ping's queueing.
			k, f := newTestKeepalive(iv, to)
			f.block = make(chan struct{})
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(iv + to - time.Second)
			if _, aborted := f.state(); aborted {
				t.Fatal("aborted before the timeout")
			}
			after(2 * time.Second)
			if _, aborted := f.state(); !aborted || !k.timedOut.Load() {
				t.Fatal("a ping stuck for longer than the timeout did not end the connection")
			}
		})
	})
	t.Run("a slow reader of a large Send is not dead", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// The ping waits behind a Send (busy) that the peer reads slowly,
			// sending nothing back: no timeout while the Send goes on, and
			// the timeout counts from its end once it is over.
			k, f := newTestKeepalive(iv, to)
			f.block = make(chan struct{})
			f.isBusy.Store(true)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(5 * (iv + to))
			if _, aborted := f.state(); aborted {
				t.Fatal("aborted during a Send the peer was reading")
			}
			f.isBusy.Store(false)
			f.sendEnd.Store(k.now())
			close(f.block) // the Send is over: the ping goes out
			after(time.Second)
			if _, ok := k.pong(f.lastPing()); !ok {
				t.Fatal("the pong to the delayed ping did not count")
			}
			after(to)
			if _, aborted := f.state(); aborted {
				t.Fatal("aborted a ping timeout after the peer answered")
			}
		})
	})
	t.Run("pings only, no timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, 0)
			k.start()
			defer func() { k.stop(); k.wait() }()
			after(5 * iv)
			if n, aborted := f.state(); n != 5 || aborted {
				t.Fatalf("%d pings, aborted %v; want 5 pings and no timeout", n, aborted)
			}
		})
	})
	t.Run("stop ends the pings", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			k, f := newTestKeepalive(iv, to)
			k.start()
			after(iv)
			k.stop()
			k.wait()
			after(10 * iv)
			if n, aborted := f.state(); n != 1 || aborted {
				t.Fatalf("after stop: %d pings, aborted %v", n, aborted)
			}
		})
	})
}
