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

	done chan struct{} // closed when run returns
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

// startPacer starts a pacer on since's clock, or returns an error if this
// system has no kernel timer for it (the caller falls back to Go's
// timers). Close it once nobody waits on it.
func startPacer(since func() time.Duration) (*pacer, error) {
	clk, err := newClock()
	if err != nil {
		return nil, err
	}
	p := &pacer{since: since, clk: clk, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// run wakes the connections whose time has come, until close.
func (p *pacer) run() {
	defer close(p.done)
	for p.clk.wait() == nil {
		p.mu.Lock()
		now := p.since()
		for len(p.h) > 0 && p.h[0].at <= now {
			heap.Pop(&p.h).(*pace).tell()
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
			w.tell()
		}
		p.h = p.h[:0]
	}
}

// close stops the pacer and waits for its goroutine; connections still
// waiting are not woken (the run is over for them: they wait on its stop
// too).
func (p *pacer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.clk.close()
	<-p.done
}

// tell wakes w's owner; a wake it has not taken yet stands for this one.
func (w *pace) tell() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// A sleeper waits for the times of one schedule, one at a time: on the
// pacer when there is one (p), else on a Go timer.
type sleeper struct {
	p     *pacer
	since func() time.Duration // the schedule's clock
	w     *pace
	t     *time.Timer
}

// until waits until at, on since's clock; false if stop or end is closed
// first. A time already past returns true at once.
func (s *sleeper) until(at time.Duration, stop, end <-chan struct{}) bool {
	d := at - s.since()
	if d <= 0 {
		return true
	}
	var fire <-chan struct{}
	var tick <-chan time.Time
	if s.p != nil {
		if s.w == nil {
			s.w = newPace()
		}
		s.p.schedule(s.w, at)
		fire = s.w.ch
	} else {
		if s.t == nil {
			s.t = time.NewTimer(d)
		} else {
			s.t.Reset(d)
		}
		tick = s.t.C
	}
	select {
	case <-fire:
		return true
	case <-tick:
		return true
	case <-stop:
	case <-end:
	}
	s.release()
	return false // the pacer may still tell s.w: nobody waits on it again
}

// release stops the sleeper's timer, if it has one.
func (s *sleeper) release() {
	if s.t != nil {
		s.t.Stop()
	}
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
