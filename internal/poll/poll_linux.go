//go:build linux

// Package poll runs sockets on the operating system's poller (epoll) so
// that a connection waiting for its peer holds no goroutine and no read
// buffer: the sockets wait in the kernel, and a few loop goroutines read
// the ones that became readable into a buffer of their own.
//
// A registration's Read calls never overlap and run in the order the
// socket became readable. They run inline on a loop goroutine: no hand-off
// between goroutines for the common case, a callback that answers at once.
// A Read that is about to wait (Blocking), or that has run for longer than
// stallAfter, hands its loop to a new goroutine, so that a callback that
// blocks stalls its own connection only; the goroutine it blocks finishes
// that connection's Read and then ends.
//
// The package has no WebSocket in it; the root package's poll engine
// (poll_linux.go) runs WebSocket connections on it.
package poll

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Handler is what a registration runs.
type Handler interface {
	// Read is called when the socket may have bytes to read or has hung
	// up. Calls for one registration never overlap. buf is scratch space
	// that belongs to the calling goroutine until Read returns. Read
	// returns more when it stopped while bytes may be left (it read its
	// share): it is called again after the other ready sockets.
	Read(buf []byte) (more bool)
	// Writable is called when the socket may take writes again, or has
	// failed. It must not block; it may run during a Read.
	Writable()
}

// Registration is one socket on a poller.
type Registration struct {
	p  *poller
	h  Handler
	id uint64

	// state orders Read calls: idle, running (a goroutine is in Read or
	// about to be), or again (running, and the socket became readable
	// meanwhile: one more Read follows).
	state atomic.Int32
	// gen is the loop generation whose goroutine runs the current Read.
	gen atomic.Uint64
	// hup: the peer has hung up (or the socket failed); see HungUp.
	hup atomic.Bool
}

// HungUp reports whether the poller has seen the peer hang up or the
// socket fail. A Read must then read until the end (or EAGAIN), even
// after a short read: no further readiness will be announced.
func (r *Registration) HungUp() bool { return r.hup.Load() }

const (
	idle int32 = iota
	running
	again
)

// ReadBuffer is the size of a loop goroutine's read buffer.
const ReadBuffer = 64 << 10

// stallAfter is how long a Read may hold its loop before the watchdog
// gives the loop to another goroutine; checkEvery is how often it looks.
const (
	stallAfter = 10 * time.Millisecond
	checkEvery = 5 * time.Millisecond
)

// ErrUnsupported is returned by Register where there is no poller.
var ErrUnsupported = errors.New("poll: no poller on this platform")

// Take returns a duplicate of c's socket, non-blocking, to register
// here; the caller then closes c, which takes the socket out of Go's
// poller.
func Take(c syscall.Conn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = dupNonblock(int(s))
	}); err != nil {
		derr = err
	}
	if derr != nil {
		return -1, fmt.Errorf("socket: %w", derr)
	}
	return fd, nil
}

// dupNonblock returns a non-blocking duplicate of fd (close-on-exec).
func dupNonblock(fd int) (int, error) {
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(d, true); err != nil {
		_ = unix.Close(d)
		return -1, err
	}
	return d, nil
}

// Register starts watching fd, a non-blocking socket, for h. The socket
// is read when it becomes readable; bytes already waiting are not
// announced: call Kick for those.
func Register(fd int, h Handler) (*Registration, error) {
	r := New(h)
	return r, r.Add(fd)
}

// New returns a registration for h on a poller, not yet watching a
// socket: for a handler that must know its registration before its first
// Read (Add may call Read before it returns).
func New(h Handler) *Registration { return &Registration{p: pick(), h: h} }

// Add starts watching fd, a non-blocking socket, for r; see Register.
func (r *Registration) Add(fd int) error {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.start(); err != nil {
		return err
	}
	p.nextID++
	r.id = p.nextID
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET}
	setID(&ev, r.id)
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.stopIfIdle()
		return fmt.Errorf("poll: epoll_ctl add: %w", err)
	}
	p.conns[r.id] = r
	return nil
}

// Deregister stops watching fd; call it before closing fd. A Read under
// way is not interrupted; no other starts because of the poller (the
// batch it has in hand is checked against the registrations).
func (r *Registration) Deregister(fd int) {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.conns[r.id]; !ok {
		return
	}
	delete(p.conns, r.id)
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	if len(p.conns) == 0 {
		p.wake() // the loop stops when it has nothing to watch
	}
}

// Kick has Read called as if the socket had become readable: for bytes
// that were there before Register, or a Read that paused.
func (r *Registration) Kick() {
	if !r.acquire() {
		return
	}
	p := r.p
	p.mu.Lock()
	p.ready = append(p.ready, r)
	p.wake()
	p.mu.Unlock()
}

// Blocking is called from Read before it waits for something other than
// the socket (the application, or the socket becoming writable): if the
// loop is running this Read inline, the loop moves to a new goroutine and
// the calling one serves this registration alone until Read returns.
func (r *Registration) Blocking() {
	if r.state.Load() == idle {
		return
	}
	r.p.handOff(r.gen.Load())
}

// acquire moves the registration to running and reports whether the
// caller now owns the next Read; if a Read is running, one more is
// requested instead.
func (r *Registration) acquire() bool {
	for {
		switch s := r.state.Load(); s {
		case idle:
			if r.state.CompareAndSwap(idle, running) {
				return true
			}
		case running:
			if r.state.CompareAndSwap(running, again) {
				return false
			}
		default: // again already requested
			return false
		}
	}
}

// run calls Read until nothing is left to read or a Read wants to yield
// (then it reports true: requeue). The caller owns the running state.
func (r *Registration) run(buf []byte, gen uint64) (requeue bool) {
	r.gen.Store(gen)
	for {
		if r.h.Read(buf) {
			r.state.Store(running) // a pending "again" is served by the requeued Read
			return true
		}
		if r.state.CompareAndSwap(running, idle) {
			return false
		}
		r.state.Store(running) // again: the socket became readable during Read
	}
}

// poller is one epoll instance and the loop that waits on it.
type poller struct {
	mu   sync.Mutex
	epfd int // -1 while stopped
	efd  int // eventfd that wakes the loop
	// epf is a duplicate of epfd on Go's own poller, and epraw its
	// RawConn: a loop parks on it (see loop). nil where it could not be
	// made; the loop then always blocks in epoll_wait.
	epf    *os.File
	epraw  syscall.RawConn
	conns  map[uint64]*Registration
	nextID uint64

	// gen is the loop's generation: the goroutine running generation gen
	// owns the loop (handOff starts generation gen+1); owner is its state.
	gen   uint64
	owner atomic.Pointer[loopState]
	live  bool // a loop goroutine is running

	events  []unix.EpollEvent // the batch in hand
	n, next int               // its length, and the next event to serve
	ready   []*Registration   // Reads to run before waiting again (owned: state running)
	// quota is how many queued Reads run before the poller is asked, without
	// waiting, for sockets that became ready meanwhile: a registration that
	// keeps yielding (a flood) must not keep the others from being seen.
	quota int
	woken atomic.Bool // a wake is pending in efd
	watch *time.Timer
	// watching: watch is armed (check runs while Reads do).
	watching atomic.Bool
}

// loopState is one loop goroutine's, seen by the watchdog.
type loopState struct {
	gen  uint64
	busy atomic.Int64 // monotonic nanoseconds when the current Read started; 0 outside Read
	// long is a moving average of how many waits lasted over parkAfter,
	// in 1/longScale.
	long int64

	// park is the callback of a parked wait (RawConn.Read), made once per
	// loop: a closure made per wait, and what it writes, would be
	// allocated on every wait. It leaves what it found in parkN and
	// parkErr, and in parkSince when it began to park (0: it did not).
	park      func(fd uintptr) bool
	parkN     int
	parkErr   error
	parkSince int64
}

// parkAfter is how long a wait in epoll_wait may last before Go's sysmon
// may take the P back from it (two of its looks, 20 µs apart at the
// least). A loop whose waits are that long parks instead; one whose waits
// are short blocks in epoll_wait, which costs less per wait than parking
// (the scheduler's own look at its poller, then ours).
const (
	parkAfter = 20 * time.Microsecond
	longScale = 1 << 12
	longShift = 4 // the average's weight: 1/16 per wait
)

// waitHow chooses how loops wait, for tests: by the average (waitAuto),
// always parked, always blocking, or as if the duplicate could not be
// made (waitNoPark).
var waitHow atomic.Int32

const (
	waitAuto int32 = iota
	waitPark
	waitBlock
	waitNoPark
)

// waited notes a wait of d nanoseconds.
func (st *loopState) waited(d int64) {
	st.long -= st.long >> longShift
	if d > int64(parkAfter) {
		st.long += longScale >> longShift
	}
}

// parks reports whether the next wait parks: if over half of the
// recent waits were long.
func (st *loopState) parks() bool {
	switch waitHow.Load() {
	case waitPark:
		return true
	case waitBlock:
		return false
	}
	return st.long > longScale/2
}

const wakeID = 0 // the eventfd's id in the batch; registrations start at 1

var (
	pollersOnce sync.Once
	pollers     []*poller
	nextPoller  atomic.Uint32
)

// pick returns the poller for a new registration: one per CPU the
// program may use, in turn.
func pick() *poller {
	pollersOnce.Do(func() {
		pollers = make([]*poller, max(1, runtime.GOMAXPROCS(0)))
		for i := range pollers {
			pollers[i] = &poller{epfd: -1, efd: -1, conns: map[uint64]*Registration{}}
		}
	})
	return pollers[int(nextPoller.Add(1))%len(pollers)]
}

// start opens the epoll instance and starts the loop if stopped. p.mu held.
func (p *poller) start() error {
	if p.live {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("poll: epoll_create: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return fmt.Errorf("poll: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(efd)
		return fmt.Errorf("poll: epoll_ctl add eventfd: %w", err)
	}
	p.epfd, p.efd, p.live = epfd, efd, true
	p.epf, p.epraw = parkable(epfd)
	if p.events == nil {
		p.events = make([]unix.EpollEvent, 256)
	}
	p.n, p.next = 0, 0
	p.woken.Store(false)
	p.gen++
	go p.loop(p.gen)
	p.watching.Store(true)
	p.watch = time.AfterFunc(checkEvery, p.check)
	return nil
}

// stopIfIdle closes the epoll instance when nothing is registered and no
// loop runs. p.mu held.
func (p *poller) stopIfIdle() {
	if len(p.conns) == 0 && !p.live && p.epfd >= 0 {
		p.closeFDs()
	}
}

func (p *poller) closeFDs() {
	if p.epf != nil {
		_ = p.epf.Close()
	}
	_ = unix.Close(p.epfd)
	_ = unix.Close(p.efd)
	p.epfd, p.efd, p.epf, p.epraw = -1, -1, nil, nil
}

// wake interrupts the loop's wait. p.mu held.
func (p *poller) wake() {
	if p.efd < 0 || p.woken.Swap(true) {
		return
	}
	one := uint64(1)
	_, _ = unix.Write(p.efd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// handOff gives the loop to a new goroutine if generation gen owns it
// and is inside a Read. (Outside a Read the owner may be waiting on the
// poller with the batch in hand; it checks the generation, under p.mu,
// before every wait, so a hand-off during a Read is seen.)
func (p *poller) handOff(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live || p.gen != gen {
		return
	}
	if s := p.owner.Load(); s == nil || s.gen != gen || s.busy.Load() == 0 {
		return
	}
	p.gen++
	go p.loop(p.gen)
}

// check is the watchdog: a Read that has held the loop for stallAfter
// gets the loop taken from it. It looks every checkEvery while Reads run;
// when it finds none running it stops until the next Read arms it (see
// runRead), so an idle poller has no timer firing.
func (p *poller) check() {
	if s := p.owner.Load(); s != nil {
		if b := s.busy.Load(); b != 0 && monotime()-b > int64(stallAfter) {
			p.handOff(s.gen)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live {
		p.watching.Store(false)
		return
	}
	if s := p.owner.Load(); s == nil || s.busy.Load() == 0 {
		p.watching.Store(false)
		// A Read that began before that store saw the watchdog armed and
		// did not arm it: look again.
		if s == nil || s.busy.Load() == 0 {
			return
		}
		p.watching.Store(true)
	}
	p.watch.Reset(checkEvery)
}

// arm starts the watchdog if it has stopped.
func (p *poller) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && !p.watching.Load() {
		p.watching.Store(true)
		p.watch.Reset(checkEvery)
	}
}

var bufs = sync.Pool{New: func() any { return new([ReadBuffer]byte) }}

// loop runs generation gen of the poller's loop until a newer one takes
// over or nothing is left to watch.
//
// When nothing is ready, the loop waits in one of two ways. A blocking
// epoll_wait costs least when the wait is short. But with one P
// (GOMAXPROCS=1) Go's sysmon takes the P back from a system call that
// spans 20 µs, and it keeps waking every 20 µs for as long as it finds
// one to take: at 20,000 messages a second on one core that was a fifth
// of the loop's CPU. So a loop whose recent waits were long parks its
// goroutine on Go's own poller instead, watching the epoll instance
// through a duplicate of epfd (an epoll fd is pollable: p.epf, one per
// poller run), and its P is free while it waits. Where the duplicate
// cannot be made, the loop always blocks in epoll_wait.
func (p *poller) loop(gen uint64) {
	st := &loopState{gen: gen}
	st.park = func(fd uintptr) bool {
		st.parkN, st.parkErr = epollNow(int(fd), p.events)
		if st.parkErr != nil || st.parkN > 0 {
			return true
		}
		// Park until the epoll instance is readable. A wake-up that finds
		// nothing (Go's poller saw it readable for events served since)
		// parks again, in the same wait.
		if st.parkSince == 0 {
			st.parkSince = monotime()
		}
		return false
	}
	p.owner.Store(st)
	b := bufs.Get().(*[ReadBuffer]byte)
	defer bufs.Put(b)
	buf := b[:]
	for p.run(st, buf) {
		if !p.wait(st) {
			return
		}
	}
}

// wait waits until sockets are ready and makes them the batch in hand;
// false if generation st.gen no longer owns the loop. Only the owner
// waits: the loop is handed off only during a Read.
func (p *poller) wait(st *loopState) bool {
	p.mu.Lock()
	epfd, raw := p.epfd, p.epraw
	p.mu.Unlock()
	n, err := 0, error(nil)
	parked := false
	if raw != nil && st.parks() {
		st.parkN, st.parkErr, st.parkSince = 0, nil, 0
		rerr := raw.Read(st.park)
		if rerr == nil {
			parked = true
			n, err = st.parkN, st.parkErr
			if st.parkSince != 0 {
				st.waited(monotime() - st.parkSince)
			}
		} else {
			// Go's poller would not wait for it: block from now on.
			p.mu.Lock()
			if p.epraw == raw {
				p.epraw = nil
			}
			p.mu.Unlock()
		}
	}
	if !parked {
		n, err = epollNow(epfd, p.events)
		if err == nil && n == 0 {
			t := monotime()
			n, err = epollBlock(epfd, p.events)
			st.waited(monotime() - t)
		}
	}
	if err != nil {
		panic(fmt.Sprintf("poll: epoll_wait: %v", err)) // EBADF/EFAULT/EINVAL: a bug here
	}
	return p.setBatch(st.gen, n)
}

// parkable returns a duplicate of epfd on Go's poller and its RawConn;
// nil if it cannot be made, or Go's poller will not take it.
func parkable(epfd int) (*os.File, syscall.RawConn) {
	if waitHow.Load() == waitNoPark {
		return nil, nil
	}
	fd, err := dupNonblock(epfd)
	if err != nil {
		return nil, nil
	}
	f := os.NewFile(uintptr(fd), "epoll")
	// NewFile keeps a descriptor Go's poller refused (EINVAL past the
	// kernel's limit on epoll paths, ENOSPC, ENOMEM) as a blocking file,
	// which has no deadlines.
	if f.SetReadDeadline(time.Time{}) != nil {
		_ = f.Close()
		return nil, nil
	}
	raw, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, nil
	}
	return f, raw
}

// setBatch makes events[:n] the batch in hand, if generation gen still
// owns the loop.
func (p *poller) setBatch(gen uint64, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen {
		return false
	}
	p.n, p.next = n, 0
	return true
}

// run serves the batch in hand and the queued Reads until the loop must
// wait for epoll (true) or generation st.gen must end (false): a newer
// one took over, or nothing is left to watch.
func (p *poller) run(st *loopState, buf []byte) bool {
	gen := st.gen
	for {
		p.mu.Lock()
		if p.gen != gen {
			p.mu.Unlock()
			return false
		}
		if p.next < p.n {
			ev := p.events[p.next]
			p.next++
			id := getID(&ev)
			if id == wakeID {
				p.mu.Unlock()
				p.drainWake()
				continue
			}
			r := p.conns[id]
			p.mu.Unlock()
			if r != nil {
				p.serve(st, r, ev.Events, buf, gen)
			}
			continue
		}
		if len(p.ready) > 0 && p.quota == 0 {
			// A round of the queue is over: look for sockets that became
			// ready meanwhile before the next round.
			epfd := p.epfd
			p.quota = len(p.ready)
			p.mu.Unlock()
			n, err := epollNow(epfd, p.events)
			if err != nil {
				panic(fmt.Sprintf("poll: epoll_wait: %v", err))
			}
			if !p.setBatch(gen, n) {
				return false
			}
			continue
		}
		if len(p.ready) > 0 {
			p.quota--
			r := p.ready[0]
			p.ready[0] = nil
			p.ready = p.ready[1:]
			if len(p.ready) == 0 {
				p.ready = p.ready[:0:0] // let the backing array go
			}
			p.mu.Unlock()
			p.runRead(st, r, buf, gen)
			continue
		}
		if len(p.conns) == 0 {
			p.live = false
			p.watch.Stop()
			p.owner.Store(nil)
			p.closeFDs()
			p.mu.Unlock()
			return false
		}
		p.mu.Unlock()
		return true
	}
}

// epollBlock waits in epoll_wait until a socket is ready.
func epollBlock(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		n, err := unix.EpollWait(epfd, events, -1)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// epollNow asks epoll for ready sockets without waiting. A raw system
// call: it never blocks, so the scheduler need not hear of it.
func epollNow(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		// epoll_pwait with no signal mask: arm64, riscv64 and loong64
		// have no epoll_wait.
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(unsafe.SliceData(events))), uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// drainWake clears the eventfd.
func (p *poller) drainWake() {
	p.mu.Lock()
	efd := p.efd
	p.woken.Store(false)
	p.mu.Unlock()
	var b [8]byte
	_, _ = unix.Read(efd, b[:])
}

// serve handles one event of registration r.
func (p *poller) serve(st *loopState, r *Registration, events uint32, buf []byte, gen uint64) {
	if events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		r.h.Writable()
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		r.hup.Store(true) // before acquire: a Read under way reads again
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) != 0 && r.acquire() {
		p.runRead(st, r, buf, gen)
	}
}

// runRead runs r's Reads (the caller owns its running state) and
// requeues it if it yielded.
func (p *poller) runRead(st *loopState, r *Registration, buf []byte, gen uint64) {
	st.busy.Store(monotime())
	if !p.watching.Load() {
		p.arm()
	}
	requeue := r.run(buf, gen)
	st.busy.Store(0)
	if requeue {
		p.mu.Lock()
		p.ready = append(p.ready, r)
		if p.gen != gen {
			// The loop was handed off during this Read: its owner may be
			// waiting on the poller, which will not announce r again.
			p.wake()
		}
		p.mu.Unlock()
	}
}

func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

var clockBase = time.Now()

func monotime() int64 { return int64(time.Since(clockBase)) }
