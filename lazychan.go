package wschan

import "sync/atomic"

// A Go channel costs about a hundred bytes, and a connection has several
// events that nobody waits for unless something goes on (its end, a Close,
// a Send in turn). On a server holding many idle connections they add up,
// so the channels are made when first waited on: lazyChan holds none until
// get, and close marks it closed without making one.

// lazyChan is a channel of T made on first use.
type lazyChan[T any] struct {
	p      atomic.Pointer[chan T]
	closed atomic.Bool
}

// get returns the channel, made with capacity size if it does not exist
// yet (a closed sentinel if it was closed before it was made).
func (l *lazyChan[T]) get(size int) chan T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	c := make(chan T, size)
	if l.p.CompareAndSwap(nil, &c) {
		return c
	}
	return *l.p.Load()
}

// made returns the channel if it has been made, or nil.
func (l *lazyChan[T]) made() chan T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

// close closes the channel (what it holds can still be received), or,
// if it was never made, has get return sentinel, a closed channel; it
// reports whether this call closed it.
func (l *lazyChan[T]) close(sentinel *chan T) bool {
	if !l.closed.CompareAndSwap(false, true) {
		return false
	}
	if !l.p.CompareAndSwap(nil, sentinel) {
		close(*l.p.Load())
	}
	return true
}

// signal is an event that happens once: C is closed when it has.
type signal struct{ lazyChan[struct{}] }

var firedSignal = func() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}()

// C returns a channel closed when the signal has fired.
func (s *signal) C() <-chan struct{} { return s.get(0) }

// fire fires the signal and reports whether this call did.
func (s *signal) fire() bool { return s.close(firedSignal) }

// fired reports whether the signal has fired.
func (s *signal) fired() bool { return s.closed.Load() }

// closedStream stands for a Channel's message stream once it has ended.
var closedStream = func() *chan Message {
	c := make(chan Message)
	close(c)
	return &c
}()
