package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/wschan/wschan"
)

// stallConn is a Conn whose Send blocks until release is closed: a peer
// that has stopped reading, on cue. It is a fake because a real socket
// cannot be made to stall at a chosen message.
type stallConn struct {
	entered chan struct{} // receives when a Send starts
	release chan struct{}
	sent    chan []byte // every message written
	closed  chan string // the close reason
}

func (c *stallConn) Send(ctx context.Context, _ wschan.MessageType, data []byte) error {
	c.entered <- struct{}{}
	select {
	case <-c.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.sent <- data
	return nil
}

func (c *stallConn) Close(code wschan.StatusCode, reason string) error {
	if code != wschan.StatusPolicyViolation {
		reason = code.String() + " " + reason
	}
	c.closed <- reason
	return nil
}

// A member whose queue overflows while its writer is stuck in a Send lets
// go of its queued messages at once, not when the Send ends: none of them
// will be written. The message in progress is finished, then the close
// frame says how many were waiting.
func TestSlowMemberDropsItsQueue(t *testing.T) {
	t.Parallel()
	const queue = 4
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	hub := NewHub(&HubOptions{QueueSize: queue})
	defer hub.Close()
	c := &stallConn{entered: make(chan struct{}, 1), release: make(chan struct{}), sent: make(chan []byte, queue+2), closed: make(chan string, 1)}
	m, err := hub.Join(ctx, "r", c)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(s string) {
		t.Helper()
		if err := hub.Publish(ctx, "r", wschan.Text, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	publish("in progress")
	select {
	case <-c.entered:
	case <-ctx.Done():
		t.Fatal("the writer did not start a Send")
	}
	for range queue {
		publish("queued")
	}
	if n := len(m.q); n != queue {
		t.Fatalf("%d messages queued, want %d", n, queue)
	}
	publish("one too many") // delivered synchronously by the memory broker
	if n := len(m.q); n != 0 {
		t.Errorf("%d messages still queued after the overflow, want none", n)
	}
	close(c.release)
	select {
	case reason := <-c.closed:
		if want := "too slow: 4 messages queued"; reason != want {
			t.Errorf("closed with %q, want 1008 %q", reason, want)
		}
	case <-ctx.Done():
		t.Fatal("the slow member was not closed")
	}
	<-m.Done()
	if got := len(c.sent); got != 1 || string(<-c.sent) != "in progress" {
		t.Errorf("%d messages written, want only the one in progress", got)
	}
}

// countConn is a TrySender that takes every message TrySend offers and
// counts them.
type countConn struct {
	stallConn
	tried int
}

func (c *countConn) TrySend(wschan.MessageType, []byte) (bool, error) {
	c.tried++
	return true, nil
}

// The room writes to a member directly only while it has nothing in hand
// and has not been stopped: a member that is leaving (its writer not yet
// gone) gets nothing more from the room.
func TestTryNowSkipsBusyAndStoppedMembers(t *testing.T) {
	t.Parallel()
	hub := NewHub(nil)
	defer hub.Close()
	c := &countConn{}
	m := &Member{hub: hub, conn: c, try: c, stop: make(chan struct{})}
	d := &delivery{pub: &Publication{Type: wschan.Binary, Data: []byte("x")}}
	if done, written := m.tryNow(d); !done || !written || c.tried != 1 {
		t.Fatalf("idle member: tryNow = %v, %v after %d TrySends; want written at once", done, written, c.tried)
	}
	m.inflight.Store(1)
	if done, _ := m.tryNow(d); done || c.tried != 1 {
		t.Fatalf("member with a message in hand: tryNow = %v after %d TrySends; want it queued", done, c.tried)
	}
	m.inflight.Store(0)
	m.halt(stopLeft)
	if done, _ := m.tryNow(d); done || c.tried != 1 {
		t.Fatalf("stopped member: tryNow = %v after %d TrySends; want nothing written", done, c.tried)
	}
}
