package wschan

import (
	"sync"
	"testing"
)

func TestSignal(t *testing.T) {
	var s signal
	if s.fired() || s.made() != nil {
		t.Fatal("a new signal has fired or holds a channel")
	}
	if !s.fire() || s.fire() {
		t.Fatal("fire reports the first call alone")
	}
	select {
	case <-s.C():
	default:
		t.Fatal("C of a fired signal is not closed")
	}

	// Waiters made before, during and after the fire all wake.
	var s2 signal
	early := s2.C()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { <-s2.C() })
	}
	var fired int
	var mu sync.Mutex
	for range 4 {
		wg.Go(func() {
			if s2.fire() {
				mu.Lock()
				fired++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-early
	if fired != 1 || !s2.fired() {
		t.Fatalf("fired %d times, want 1", fired)
	}
}

func TestLazyStream(t *testing.T) {
	var l lazyChan[Message]
	c := l.get(2)
	c <- Message{Data: []byte("a")}
	if l.get(5) != c || cap(c) != 2 {
		t.Fatal("get made a second channel")
	}
	if !l.close(closedStream) || l.close(closedStream) {
		t.Fatal("close reports the first call alone")
	}
	if m, ok := <-c; !ok || string(m.Data) != "a" {
		t.Fatal("a message sent before close is lost")
	}
	if _, ok := <-l.get(2); ok {
		t.Fatal("the stream is open after close")
	}

	// Messages waiting in a stream when it is closed are still read.
	var l2 lazyChan[Message]
	l2.get(4) <- Message{Data: []byte("b")}
	l2.close(closedStream)
	if m, ok := <-l2.get(4); !ok || string(m.Data) != "b" {
		t.Fatal("a message waiting in the stream is lost at close")
	}
	var l3 lazyChan[Message]
	l3.close(closedStream)
	if _, ok := <-l3.get(4); ok || l3.made() == nil {
		t.Fatal("a stream closed before it was made is not closed")
	}
}
