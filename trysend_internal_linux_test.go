package wschan

import (
	"testing"
	"time"
)

// A pollConn that shuts down with the rest of a TrySend's frame still kept
// drops it: the poller's last Writable (or a TrySend's look after letting
// go of the lock) must not spin on a socket that is gone.
func TestFlushPendingAfterShutdown(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"closed", "aborted"} {
		c := &pollConn{fd: -1, pend: []byte("rest of a frame")}
		c.pendOut.Store(true)
		c.wready.Store(true)
		if state == "closed" {
			c.closed = true
		} else {
			c.aborted.Store(true)
		}
		done := make(chan struct{})
		go func() {
			c.Writable()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Writable did not return", state)
		}
		if c.pendOut.Load() || c.pend != nil {
			t.Errorf("%s: the kept bytes are still there", state)
		}
	}
}
