package bench

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// testPacer returns a running pacer on a clock started now, closed when
// the test ends; it skips where the system has no kernel timer.
func testPacer(t *testing.T) *pacer {
	t.Helper()
	start := time.Now()
	p, err := startPacer(func() time.Duration { return time.Since(start) })
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close) // waits for its goroutine (goleak checks the rest)
	return p
}

// Every pace is told once its time has come, never before, whatever the
// order they were scheduled in, times already past included.
func TestPacerWakesEachOnTimeNotBefore(t *testing.T) {
	p := testPacer(t)
	now := p.since()
	offsets := []time.Duration{7, 1, 12, 3, 3, 20, -5, 9, 15, 2} // ms from now
	var wg sync.WaitGroup
	early := make(chan string, len(offsets))
	for _, off := range offsets {
		w := newPace()
		at := now + off*time.Millisecond
		p.schedule(w, at)
		wg.Go(func() {
			select {
			case <-w.ch:
				if got := p.since(); got < at {
					early <- (at - got).String()
				}
			case <-time.After(10 * time.Second):
				early <- "never (10 s)"
			}
		})
	}
	wg.Wait()
	close(early)
	for e := range early {
		t.Errorf("a pace was told %s before its time", e)
	}
}

// A pace scheduled before every other one re-arms the timer: it is not
// kept waiting for the later one's time.
func TestPacerEarlierPaceRearms(t *testing.T) {
	p := testPacer(t)
	late, soon := newPace(), newPace()
	p.schedule(late, p.since()+time.Hour)
	p.schedule(soon, p.since()+time.Millisecond)
	select {
	case <-soon.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("a pace due in 1 ms behind one due in an hour was not told in 10 s")
	}
	select {
	case <-late.ch:
		t.Fatal("the pace due in an hour was told")
	default:
	}
}

// Many connections rescheduling at once, each as soon as it is told, as
// an open-loop run does: none is left waiting (a lost wake-up would leave
// one waiting for good).
func TestPacerLosesNoWakeUp(t *testing.T) {
	p := testPacer(t)
	const conns, rounds = 200, 50
	var wg sync.WaitGroup
	lost := make(chan time.Duration, conns)
	for i := range conns {
		wg.Go(func() {
			w := newPace()
			for r := range rounds {
				// Due times spread over 0–2 ms from now, some already past.
				at := p.since() + time.Duration((i*rounds+r)%23-3)*100*time.Microsecond
				p.schedule(w, at)
				select {
				case <-w.ch:
				case <-time.After(10 * time.Second):
					lost <- at
					return
				}
			}
		})
	}
	wg.Wait()
	close(lost)
	for at := range lost {
		t.Errorf("a pace due at %v was not told in 10 s", at)
	}
}
