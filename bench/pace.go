package bench

import (
	"container/heap"
	"sync"
	"time"
)

// A pacer wakes connections at the times an open-loop schedule gives
// them, to within tens of microseconds. Go's timers cannot: a process with
// nothing else to do waits for its next timer in the runtime's poller,
// which sleeps in whole milliseconds, so a timer due in 50 µs fires about
// 1 ms late, and every send due in that millisecond went out at once. The
// pacer keeps the waiting connections in a heap by due time and one kernel
// timer armed for the earliest (a timerfd on Go's poller, which wakes the
// process when the timer expires, not at the poller's next millisecond).
type pacer struct {
	since func() time.Duration // the run's clock
	clk   clock

	mu     sync.Mutex
	h      paceHeap
	closed bool
}

// clock is a one-shot kernel timer.
type clock interface {
	arm(d time.Duration) error // fire once, d from now (d > 0)
	wait() error               // until it fires; an error once closed
	close() error
}

// pace is one connection's place in the schedule; ch gets a value when
// its time comes.
type pace struct {
	at time.Duration
	ch chan struct{}
}

func newPace() *pace { return &pace{ch: make(chan struct{}, 1)} }

// newPacer returns a pacer on since's clock, or an error if this system
// has no kernel timer for it (the caller falls back to Go's timers).
func newPacer(since func() time.Duration) (*pacer, error) {
	clk, err := newClock()
	if err != nil {
		return nil, err
	}
	return &pacer{since: since, clk: clk}, nil
}

// run wakes the connections whose time has come, until close.
func (p *pacer) run() {
	for p.clk.wait() == nil {
		p.mu.Lock()
		now := p.since()
		for len(p.h) > 0 && p.h[0].at <= now {
			w := heap.Pop(&p.h).(*pace)
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
		if len(p.h) > 0 {
			p.armLocked(p.h[0].at - now)
		}
		p.mu.Unlock()
	}
}

// schedule has w.ch told at at; the caller waits on w.ch. Each pace is in
// the schedule at most once: its owner schedules it again only after it
// fired.
func (p *pacer) schedule(w *pace, at time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.at = at
	heap.Push(&p.h, w)
	if p.h[0] == w {
		p.armLocked(at - p.since())
	}
}

func (p *pacer) armLocked(d time.Duration) {
	if p.closed {
		return
	}
	// A time already past fires at once; 0 would disarm the timer.
	if err := p.clk.arm(max(d, time.Microsecond)); err != nil {
		// Not expected (the timer is ours and open): wake everyone who
		// waits now rather than never.
		for _, w := range p.h {
			select {
			case w.ch <- struct{}{}:
			default:
			}
		}
		p.h = p.h[:0]
	}
}

// close stops run; connections still waiting are not woken (the run is
// over for them: they wait on its stop too).
func (p *pacer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.clk.close()
}

// paceHeap orders paces by due time.
type paceHeap []*pace

func (h paceHeap) Len() int           { return len(h) }
func (h paceHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h paceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *paceHeap) Push(x any)        { *h = append(*h, x.(*pace)) }
func (h *paceHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}
