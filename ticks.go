package wschan

import (
	"container/heap"
	"sync"
	"time"
)

// tickHeap runs the ticks of many keepalives on one runtime timer: a
// heap of keepalives by when each is due, and a timer for the earliest.
// A keepalive then holds a deadline and a heap index (16 bytes) instead of
// a runtime timer of its own (about 130 bytes with its callback), which is
// most of what an idle connection's keepalive cost. Ticks run one after
// another on the timer's goroutine; a tick never blocks (a ping is
// written on a goroutine of its own).
type tickHeap struct {
	now func() int64 // the keepalives' clock, monotonic nanoseconds

	mu    sync.Mutex
	h     tickQueue
	timer *time.Timer // made on first use, so that it belongs to whoever first needs it
	armed int64       // when timer fires; 0 while stopped
}

// ticks is the tickHeap of every connection's keepalive, but see
// tickHeapFor.
var ticks = newTickHeap(monotime)

// tickHeapFor returns the heap for a keepalive made now: ticks, unless
// the clock reads before the process began. That is a testing/synctest
// bubble, whose fake clock starts in the year 2000: its keepalives get a
// heap of their own, whose timer then belongs to the bubble, as a timer
// of their own did (a bubble's timer cannot be used from outside it, nor a
// bubble's channel from the shared heap's goroutine).
func tickHeapFor() *tickHeap {
	if monotime() < 0 {
		return newTickHeap(monotime)
	}
	return ticks
}

func newTickHeap(now func() int64) *tickHeap { return &tickHeap{now: now} }

// schedule has k.tick called in d, whether or not k was already waiting.
func (t *tickHeap) schedule(k *keepalive, d time.Duration) {
	at := t.now() + int64(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	k.due = at
	if k.idx > 0 {
		heap.Fix(&t.h, int(k.idx)-1)
	} else {
		heap.Push(&t.h, k)
	}
	t.arm()
}

// remove takes k out of the heap if it waits there.
func (t *tickHeap) remove(k *keepalive) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k.idx > 0 {
		heap.Remove(&t.h, int(k.idx)-1)
	}
}

// arm sets the timer for the earliest keepalive, if it is not set for
// that already. Under mu.
func (t *tickHeap) arm() {
	if len(t.h) == 0 {
		return // the timer, if set, fires into an empty heap and stops
	}
	at := t.h[0].due
	if t.armed != 0 && t.armed <= at {
		return
	}
	t.armed = at
	d := time.Duration(at - t.now())
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.fire)
		return
	}
	t.timer.Reset(d)
}

// fire runs the ticks that are due, then sets the timer for the next.
func (t *tickHeap) fire() {
	var due []*keepalive
	t.mu.Lock()
	t.armed = 0
	now := t.now()
	for len(t.h) > 0 && t.h[0].due <= now {
		due = append(due, heap.Pop(&t.h).(*keepalive))
	}
	t.arm()
	t.mu.Unlock()
	for _, k := range due {
		k.tick()
	}
}

// tickQueue is the heap's order: the earliest due first (container/heap).
type tickQueue []*keepalive

func (q tickQueue) Len() int           { return len(q) }
func (q tickQueue) Less(i, j int) bool { return q[i].due < q[j].due }
func (q tickQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx, q[j].idx = int32(i+1), int32(j+1)
}

func (q *tickQueue) Push(x any) {
	k := x.(*keepalive)
	k.idx = int32(len(*q) + 1)
	*q = append(*q, k)
}

func (q *tickQueue) Pop() any {
	old := *q
	n := len(old) - 1
	k := old[n]
	old[n] = nil
	k.idx = 0
	*q = old[:n]
	if cap(*q) > 64 && len(*q) < cap(*q)/4 {
		*q = append(tickQueue(nil), *q...) // give back what a burst of connections grew
	}
	return k
}
