package rooms_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// fakeConn is a rooms.Conn in memory. It is a fake for what a real socket
// cannot do on cue: a peer that stops taking messages (stall) until the
// test lets it go, or one whose Send fails. Tests of delivery over real
// sockets use *wschan.Channel.
type fakeConn struct {
	msgs    chan wschan.Message // every message sent, in order
	stall   chan struct{}       // when not nil, Send blocks until it is closed or ctx ends
	sendErr error               // when set, Send fails with it
	entered chan struct{}       // receives once per Send that has started
	got     []wschan.Message    // what a test has taken from msgs, when it keeps them

	mu     sync.Mutex
	closed chan struct{}
	code   wschan.StatusCode
	reason string
}

var _ rooms.Conn = (*fakeConn)(nil)

func newFakeConn(buf int) *fakeConn {
	return &fakeConn{msgs: make(chan wschan.Message, buf), closed: make(chan struct{}), entered: make(chan struct{}, buf+1)}
}

func (c *fakeConn) Send(ctx context.Context, typ wschan.MessageType, data []byte) error {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	if c.sendErr != nil {
		return c.sendErr
	}
	if c.stall != nil {
		select {
		case <-c.stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.msgs <- wschan.Message{Type: typ, Data: slices.Clone(data)}
	return nil
}

func (c *fakeConn) Close(code wschan.StatusCode, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return nil
	default:
	}
	c.code, c.reason = code, reason
	close(c.closed)
	return nil
}

// waitClosed waits for Close and returns its code and reason.
func (c *fakeConn) waitClosed(t testing.TB, ctx context.Context) (wschan.StatusCode, string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-ctx.Done():
		t.Fatal("connection was not closed")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason
}

// next waits for the next message sent to c.
func (c *fakeConn) next(t testing.TB, ctx context.Context) wschan.Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-ctx.Done():
		t.Fatal("no message arrived")
		return wschan.Message{}
	}
}

// tryConn is a fakeConn that is also a rooms.TrySender whose TrySend takes
// a message or refuses it at random (a socket that sometimes has room),
// so the hub's two ways of writing to a member take turns.
type tryConn struct {
	*fakeConn
	mu     sync.Mutex
	rnd    *rand.Rand
	refuse float64 // the share of TrySends refused
	taken  int     // messages TrySend took
}

var _ rooms.TrySender = (*tryConn)(nil)

func newTryConn(buf int, refuse float64, seed uint64) *tryConn {
	return &tryConn{fakeConn: newFakeConn(buf), rnd: rand.New(rand.NewPCG(seed, 1)), refuse: refuse}
}

func (c *tryConn) TrySend(typ wschan.MessageType, data []byte) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rnd.Float64() < c.refuse {
		return false, nil
	}
	select {
	case c.msgs <- wschan.Message{Type: typ, Data: slices.Clone(data)}:
		c.taken++
		return true, nil
	default:
		return false, nil
	}
}

func (c *tryConn) takenNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.taken
}
