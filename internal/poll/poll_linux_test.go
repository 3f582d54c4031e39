package poll

import (
	"bytes"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sink is a Handler that collects what its socket sends.
type sink struct {
	fd      int
	mu      sync.Mutex
	got     bytes.Buffer
	inRead  atomic.Int32
	overlap atomic.Bool
	onRead  func() // runs inside Read, after the bytes are taken
	data    chan struct{}
}

func (s *sink) Read(buf []byte) bool {
	if s.inRead.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.inRead.Add(-1)
	for {
		n, err := unix.Read(s.fd, buf)
		if n <= 0 || err != nil {
			break
		}
		s.mu.Lock()
		s.got.Write(buf[:n])
		s.mu.Unlock()
		select {
		case s.data <- struct{}{}:
		default:
		}
	}
	if s.onRead != nil {
		s.onRead()
	}
	return false
}

func (s *sink) Writable() {}

func (s *sink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

// pair returns a registered sink and the socket that writes to it.
func pair(t *testing.T, onRead func()) (*sink, *Registration, int) {
	t.Helper()
	fds := socketpair(t)
	s := &sink{fd: fds[0], onRead: onRead, data: make(chan struct{}, 1)}
	r, err := Register(fds[0], s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Deregister(fds[0]) }) // before the sockets close (cleanups run last first)
	return s, r, fds[1]
}

// sinkOn returns a sink registered on poller p (another registration's,
// to share its loop) and the socket that writes to it.
func sinkOn(t *testing.T, p *poller) (*sink, int) {
	t.Helper()
	fds := socketpair(t)
	s := &sink{fd: fds[0], data: make(chan struct{}, 1)}
	r := New(s)
	r.p = p
	if err := r.Add(fds[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Deregister(fds[0]) })
	return s, fds[1]
}

// socketpair returns a connected pair of non-blocking sockets, closed when
// the test ends.
func socketpair(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
	})
	return fds
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// eachWait runs test once for each way a loop may wait (see
// loopState.parks), each on pollers started afresh.
func eachWait(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	for _, w := range []struct {
		name string
		how  int32
	}{{"auto", waitAuto}, {"park", waitPark}, {"block", waitBlock}, {"noPark", waitNoPark}} {
		waitIdle(t)
		waitHow.Store(w.how)
		t.Run(w.name, test)
	}
	waitIdle(t)
	waitHow.Store(waitAuto)
}

// waitIdle waits until every poller's loop has stopped.
func waitIdle(t *testing.T) {
	t.Helper()
	pick() // the pollers exist
	waitFor(t, "the pollers to stop", func() bool {
		for _, p := range pollers {
			p.mu.Lock()
			live := p.live
			p.mu.Unlock()
			if live {
				return false
			}
		}
		return true
	})
}

func TestReadsInOrderNeverOverlapping(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		s, _, w := pair(t, nil)
		var want bytes.Buffer
		for i := range 2000 {
			b := []byte{byte(i), byte(i >> 8)}
			want.Write(b)
			for {
				_, err := unix.Write(w, b)
				if err == unix.EAGAIN {
					time.Sleep(time.Millisecond) // the reader is behind
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		waitFor(t, "all bytes", func() bool { return len(s.text()) == want.Len() })
		if s.text() != want.String() {
			t.Fatal("bytes arrived out of order")
		}
		if s.overlap.Load() {
			t.Fatal("two Reads of one registration overlapped")
		}
	})
}

func TestKickReadsWhatCameBefore(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		fds := socketpair(t)
		if _, err := unix.Write(fds[1], []byte("early")); err != nil {
			t.Fatal(err)
		}
		s := &sink{fd: fds[0], data: make(chan struct{}, 1)}
		r, err := Register(fds[0], s)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Deregister(fds[0])
		r.Kick()
		waitFor(t, "the early bytes", func() bool { return s.text() == "early" })
	})
}

// A Read that blocks, told (Blocking) or not (the watchdog), does not
// stop the others on its poller.
func TestBlockedReadHandsOffTheLoop(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		for _, hint := range []bool{true, false} {
			t.Run(map[bool]string{true: "Blocking", false: "watchdog"}[hint], func(t *testing.T) {
				release := make(chan struct{})
				var reg atomic.Pointer[Registration]
				var once sync.Once
				_, r, w := pair(t, func() {
					once.Do(func() {
						if hint {
							reg.Load().Blocking()
						}
						<-release
					})
				})
				reg.Store(r)
				if _, err := unix.Write(w, []byte("x")); err != nil {
					t.Fatal(err)
				}
				// More registrations than pollers: some share the blocked one.
				for i := range 2*len(pollers) + 2 {
					s, _, w2 := pair(t, nil)
					if _, err := unix.Write(w2, []byte("hello")); err != nil {
						t.Fatal(err)
					}
					waitFor(t, "another registration's bytes "+string(rune('0'+i)), func() bool { return s.text() == "hello" })
				}
				close(release)
			})
		}
	})
}

func TestIdlePollerStops(t *testing.T) {
	before := countFDs(t)
	s, r, w := pair(t, nil)
	if _, err := unix.Write(w, []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the byte", func() bool { return s.text() == "x" })
	r.Deregister(s.fd)
	// The socketpair's two ends are closed at cleanup; the poller's epoll
	// and eventfd descriptors go when its loop sees nothing to watch.
	waitFor(t, "the poller's descriptors to close", func() bool { return countFDs(t) <= before+2 })
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// flood is a handler that always has more to read (until stopped).
type flood struct {
	reads atomic.Int64
	stop  atomic.Bool
}

func (f *flood) Read([]byte) bool { f.reads.Add(1); return !f.stop.Load() }
func (f *flood) Writable()        {}

// TestRequeueIsFair: a registration that always yields (a peer that
// floods) does not keep the other sockets of its poller from being read.
func TestRequeueIsFair(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		fds := socketpair(t)
		f := &flood{}
		fr := New(f)
		if err := fr.Add(fds[0]); err != nil {
			t.Fatal(err)
		}
		defer fr.Deregister(fds[0])
		defer f.stop.Store(true)
		fr.Kick()
		waitFor(t, "the flood to run", func() bool { return f.reads.Load() > 100 })

		// Another socket on the same poller.
		s, w := sinkOn(t, fr.p)
		if _, err := unix.Write(w, []byte("heard")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the other socket to be read beside the flood", func() bool { return s.text() == "heard" })
	})
}

// yielder hands its loop off, lets the new owner settle into its wait,
// and yields: it must be read again.
type yielder struct {
	r     atomic.Pointer[Registration]
	reads atomic.Int32
}

func (y *yielder) Read([]byte) bool {
	if y.reads.Add(1) == 1 {
		y.r.Load().Blocking()
		time.Sleep(50 * time.Millisecond) // the new loop owner waits on the poller
		return true
	}
	return false
}
func (y *yielder) Writable() {}

func TestYieldAfterHandOffIsReadAgain(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		fds := socketpair(t)
		y := &yielder{}
		r := New(y)
		y.r.Store(r)
		if err := r.Add(fds[0]); err != nil {
			t.Fatal(err)
		}
		defer r.Deregister(fds[0])
		if _, err := unix.Write(fds[1], []byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the Read after the yield", func() bool { return y.reads.Load() >= 2 })
	})
}

// blocker is a handler whose first Read takes its bytes, then tells the
// poller it blocks and waits for release.
type blocker struct {
	fd      int
	r       atomic.Pointer[Registration]
	release chan struct{}
	once    sync.Once
}

func (b *blocker) Read(buf []byte) bool {
	for {
		if n, _ := unix.Read(b.fd, buf); n <= 0 {
			break
		}
	}
	b.once.Do(func() {
		b.r.Load().Blocking()
		<-b.release
	})
	return false
}
func (b *blocker) Writable() {}

// sleeper is a handler whose Reads take a while (less than stallAfter).
type sleeper struct{ fd int }

func (s *sleeper) Read(buf []byte) bool {
	for {
		if n, _ := unix.Read(s.fd, buf); n <= 0 {
			break
		}
	}
	time.Sleep(stallAfter / 2) // the loop is not taken from it
	return false
}
func (s *sleeper) Writable() {}

// A Read that blocks while the batch it came in holds other sockets'
// events: the loop's next owner serves them (each was announced once).
func TestHandOffKeepsTheBatch(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		add := func(h Handler, fd int, on *poller) *Registration {
			r := New(h)
			if on != nil {
				r.p = on
			}
			if err := r.Add(fd); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Deregister(fd) })
			return r
		}
		slow := socketpair(t)
		sr := add(&sleeper{fd: slow[0]}, slow[0], nil)
		blk := socketpair(t)
		b := &blocker{fd: blk[0], release: make(chan struct{})}
		b.r.Store(add(b, blk[0], sr.p))
		defer close(b.release)
		var sinks []*sink
		var writers []int
		for range 3 {
			s, w := sinkOn(t, sr.p)
			sinks = append(sinks, s)
			writers = append(writers, w)
		}
		// The loop is busy in the sleeper's Read while the others
		// become readable, so they come back in one batch.
		if _, err := unix.Write(slow[1], []byte("z")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if _, err := unix.Write(blk[1], []byte("b")); err != nil {
			t.Fatal(err)
		}
		for _, w := range writers {
			if _, err := unix.Write(w, []byte("s")); err != nil {
				t.Fatal(err)
			}
		}
		for i, s := range sinks {
			waitFor(t, "socket "+string(rune('0'+i))+" of the batch", func() bool { return s.text() == "s" })
		}
	})
}

// The average behind parks: long waits make the loop park, short ones
// make it block again.
func TestParksAfterLongWaits(t *testing.T) {
	var st loopState
	if st.parks() {
		t.Fatal("a new loop parks")
	}
	long := int64(2 * parkAfter)
	n := 0
	for ; !st.parks(); n++ {
		if n > 16 {
			t.Fatal("16 long waits in a row did not make the loop park")
		}
		st.waited(long)
	}
	if n < 2 {
		t.Fatalf("the loop parked after %d long wait(s)", n)
	}
	for range 16 {
		st.waited(long)
	}
	st.waited(int64(parkAfter / 4))
	if !st.parks() {
		t.Fatal("one short wait after a run of long ones stopped the parking")
	}
	for n = 0; st.parks(); n++ {
		if n > 64 {
			t.Fatal("64 short waits did not stop the parking")
		}
		st.waited(int64(parkAfter / 4))
	}
	// A quarter of the waits long (closed-loop load has about 30%):
	// blocking; three in four (load at a fixed rate): parking.
	for _, c := range []struct {
		longOf4 int
		parks   bool
	}{{1, false}, {3, true}} {
		for i := range 200 {
			d := int64(parkAfter / 4)
			if i%4 < c.longOf4 {
				d = long
			}
			st.waited(d)
		}
		if st.parks() != c.parks {
			t.Fatalf("with %d of 4 waits long, parks() = %v", c.longOf4, st.parks())
		}
	}
}

// A loop whose waits are long waits parked on Go's poller (its goroutine
// in "IO wait"), not in a system call that holds a P; a loop made to
// block waits in the system call.
func TestIdleLoopWaitsParked(t *testing.T) {
	for _, c := range []struct {
		how   int32
		state string
	}{{waitAuto, "IO wait"}, {waitBlock, "syscall"}} {
		waitIdle(t)
		waitHow.Store(c.how)
		t.Run(c.state, func(t *testing.T) {
			s, _, w := pair(t, nil)
			for i := range 20 { // long waits: a millisecond apart
				if _, err := unix.Write(w, []byte{'a' + byte(i)}); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "the byte", func() bool { return len(s.text()) == i+1 })
				time.Sleep(time.Millisecond)
			}
			// (A loop goroutine of an earlier test may still be ending.)
			waitFor(t, "the loop to wait in "+c.state, func() bool { return slices.Contains(loopStates(t), c.state) })
		})
	}
	waitIdle(t)
	waitHow.Store(waitAuto)
}

// loopStates returns the states of the poller loops' goroutines in a
// goroutine dump ("IO wait", "syscall", ...).
func loopStates(t *testing.T) []string {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var states []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "internal/poll.(*poller).loop(") {
			continue
		}
		head, _, _ := strings.Cut(g, "\n")
		if i, j := strings.Index(head, "["), strings.Index(head, "]"); i >= 0 && j > i {
			state, _, _ := strings.Cut(head[i+1:j], ",") // "IO wait, 2 minutes"
			states = append(states, state)
		}
	}
	return states
}

// The watchdog stops while no Read runs, and the next Read arms it
// again: a Read that then blocks without saying so still has the loop
// taken from it.
func TestWatchdogSleepsWhileIdle(t *testing.T) {
	eachWait(t, func(t *testing.T) {
		var block atomic.Bool
		release := make(chan struct{})
		defer close(release)
		s, r, w := pair(t, func() {
			if block.Load() {
				<-release
			}
		})
		p := r.p
		if _, err := unix.Write(w, []byte("x")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the byte", func() bool { return s.text() == "x" })
		waitFor(t, "the watchdog to stop", func() bool { return !p.watching.Load() })

		block.Store(true)
		if _, err := unix.Write(w, []byte("y")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the blocking Read", func() bool { return s.text() == "xy" })
		o, ow := sinkOn(t, p)
		if _, err := unix.Write(ow, []byte("heard")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the other socket, read after the watchdog took the loop", func() bool { return o.text() == "heard" })
	})
}

// counter is a handler that takes what its socket sends and counts the
// bytes, allocating nothing.
type counter struct {
	fd int
	n  atomic.Int64
}

func (c *counter) Read(buf []byte) bool {
	for {
		n, err := unix.Read(c.fd, buf)
		if n <= 0 || err != nil {
			return false
		}
		c.n.Add(int64(n))
	}
}

func (c *counter) Writable() {}

// A loop allocates nothing per wait, parked or blocking: under load at a
// fixed rate every message is a wait, and garbage there means collections
// that stall every connection of the process.
func TestNoAllocsPerWait(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	eachWait(t, func(t *testing.T) {
		fds := socketpair(t)
		c := &counter{fd: fds[0]}
		r, err := Register(fds[0], c)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Deregister(fds[0])
		const rounds = 2000
		send := func(i int) {
			if _, err := unix.Write(fds[1], []byte{'x'}); err != nil {
				t.Fatal(err)
			}
			// Each byte is read before the next is sent: the loop waits
			// between them.
			for c.n.Load() != int64(i+1) {
				runtime.Gosched()
			}
		}
		for i := range 100 { // the loop is running, its average settled
			send(i)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 100; i < 100+rounds; i++ {
			send(i)
		}
		runtime.ReadMemStats(&after)
		if n := after.Mallocs - before.Mallocs; n > rounds/20 {
			t.Fatalf("%d allocations in %d waits", n, rounds)
		}
	})
}
