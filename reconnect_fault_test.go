package wschan_test

// Fault tests for the reconnecting client: a server process killed with
// SIGKILL and started again on the same port, a network blackhole found by
// the ping timeout, and buffered sends delivered exactly once and in order
// on the next connection.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// faultTimeout bounds each fault test (building the binary excepted).
const faultTimeout = 60 * time.Second

// faultReconnect redials fast so the tests spend little time in backoff.
func faultReconnect(onConnect func(context.Context, wschan.Sender) error) *wschan.ReconnectOptions {
	return &wschan.ReconnectOptions{
		MinDelay:   10 * time.Millisecond,
		MaxDelay:   100 * time.Millisecond,
		BufferSize: 64,
		OnConnect:  onConnect,
	}
}

// stateEvent is one OnStateChange call.
type stateEvent struct {
	state wschan.State
	err   error
}

// faultStates records OnStateChange calls without ever blocking the
// channel's goroutines: events go to a slice, and a one-slot channel wakes
// the waiter.
type faultStates struct {
	mu     sync.Mutex
	events []stateEvent
	wake   chan struct{}
}

func newFaultStates() *faultStates { return &faultStates{wake: make(chan struct{}, 1)} }

func (r *faultStates) record(s wschan.State, err error) {
	r.mu.Lock()
	r.events = append(r.events, stateEvent{s, err})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// len returns how many events have been recorded.
func (r *faultStates) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// await returns the index and value of the first event at or after from
// with state want, failing the test if ctx ends first.
func (r *faultStates) await(t testing.TB, ctx context.Context, from int, want wschan.State) (int, stateEvent) {
	t.Helper()
	for {
		r.mu.Lock()
		for i := from; i < len(r.events); i++ {
			if r.events[i].state == want {
				ev := r.events[i]
				r.mu.Unlock()
				return i, ev
			}
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-ctx.Done():
			t.Fatalf("never reached state %v (saw %v)", want, r.states())
		}
	}
}

func (r *faultStates) states() []wschan.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []wschan.State
	for _, ev := range r.events {
		s = append(s, ev.state)
	}
	return s
}

// readText reads one message and fails unless it is the text want.
func readText(t testing.TB, ctx context.Context, ch *wschan.Channel, want string) {
	t.Helper()
	m, err := ch.Read(ctx)
	if err != nil {
		t.Fatalf("Read (want %q): %v", want, err)
	}
	if m.Type != wschan.Text || string(m.Data) != want {
		t.Fatalf("got %v %q, want text %q", m.Type, m.Data, want)
	}
}

// --- 1. the server killed and started again on the same port ---

// restartableEcho is an echo server that can die and come back on the same
// address, as a server process killed with SIGKILL and restarted does: kill
// closes the listening socket (new connections are refused) and resets
// every connection (no close frame), which is what the kernel does for a
// process that dies; start listens on the same address again.
type restartableEcho struct {
	t    testing.TB
	addr string

	mu    sync.Mutex
	ln    net.Listener
	srv   *http.Server
	conns []net.Conn
	wg    sync.WaitGroup // Serve goroutines and handlers
}

func newRestartableEcho(t testing.TB) *restartableEcho {
	t.Helper()
	e := &restartableEcho{t: t}
	e.start("127.0.0.1:0")
	e.addr = e.ln.Addr().String()
	t.Cleanup(e.kill)
	return e
}

// start listens on addr and serves until kill.
func (e *restartableEcho) start(addr string) {
	e.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		e.t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := &http.Server{
		Handler: &wstest.Echo{},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				e.mu.Lock()
				e.conns = append(e.conns, c)
				e.mu.Unlock()
			}
		},
	}
	e.mu.Lock()
	e.ln, e.srv = ln, srv
	e.mu.Unlock()
	e.wg.Go(func() { _ = srv.Serve(ln) })
}

// kill stops listening and resets every connection, hijacked ones too.
func (e *restartableEcho) kill() {
	e.mu.Lock()
	ln, conns := e.ln, e.conns
	e.ln, e.conns = nil, nil
	e.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	for _, c := range conns {
		resetConn(c)
	}
	e.wg.Wait()
}

func TestFaultServerKilledAndRestarted(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, faultTimeout)

	srv := newRestartableEcho(t)
	states := newFaultStates()
	ch := wstest.Dial(t, "ws://"+srv.addr+"/ws", &wschan.DialOptions{
		Reconnect:     faultReconnect(nil),
		OnStateChange: states.record,
	})
	states.await(t, ctx, 0, wschan.StateOpen)
	if err := ch.SendText(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	readText(t, ctx, ch, "before")

	srv.kill()
	states.await(t, ctx, 0, wschan.StateReconnecting)
	var want []string
	for i := range 10 {
		m := "down-" + strconv.Itoa(i)
		want = append(want, m)
		if err := ch.SendText(ctx, m); err != nil {
			t.Fatalf("Send %s while the server is down: %v", m, err)
		}
	}
	if s := ch.State(); s == wschan.StateOpen {
		t.Fatalf("state %v while the server is down", s)
	}

	srv.start(srv.addr)
	i, _ := states.await(t, ctx, 0, wschan.StateReconnecting)
	states.await(t, ctx, i, wschan.StateOpen)
	for _, m := range want {
		readText(t, ctx, ch, m)
	}
	// A duplicate of any buffered message would be echoed before this one.
	if err := ch.SendText(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	readText(t, ctx, ch, "after")

	got := slices.Compact(states.states())
	wantStates := []wschan.State{wschan.StateConnecting, wschan.StateOpen, wschan.StateReconnecting, wschan.StateOpen}
	if !slices.Equal(got, wantStates) {
		t.Fatalf("states %v, want %v (repeats compacted)", states.states(), wantStates)
	}
	if err := ch.Close(wschan.StatusNormalClosure, ""); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// --- 2. a network blackhole, found by the ping timeout ---

// blackholeProxy forwards TCP connections on loopback to target. After
// cut, it forwards nothing more on any connection it holds, in either
// direction, and keeps their sockets open: data sent to it is read and
// dropped, then nothing more is read; connections accepted while cut are
// held the same way. After restore, connections accepted from then on are
// forwarded again; the cut ones stay dead.
type blackholeProxy struct {
	ln     net.Listener
	target string
	stop   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	cutOn bool
	conns []net.Conn
	links []*atomic.Bool // per accepted connection: forwarding stopped
}

func newBlackholeProxy(t testing.TB, target string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln, target: target, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *blackholeProxy) addr() string { return p.ln.Addr().String() }

// track remembers c for close; false if the proxy is closing.
func (p *blackholeProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		c.Close()
		return false
	default:
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *blackholeProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		cut := new(atomic.Bool)
		p.mu.Lock()
		cut.Store(p.cutOn)
		p.links = append(p.links, cut)
		p.mu.Unlock()
		if cut.Load() {
			continue // held open, never forwarded
		}
		p.wg.Add(1)
		go p.forward(c, cut)
	}
}

func (p *blackholeProxy) forward(c net.Conn, cut *atomic.Bool) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, faultTimeout)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		return
	}
	p.wg.Add(2)
	go p.pipe(up, c, cut)
	go p.pipe(c, up, cut)
}

// pipe copies src to dst until src ends (then it closes both, so the other
// side sees the end) or the link is cut (then it drops what it read and
// stops reading, leaving both sockets open).
func (p *blackholeProxy) pipe(dst, src net.Conn, cut *atomic.Bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if cut.Load() {
			<-p.stop
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !cut.Load() {
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

// cut stops forwarding on every connection, present and future.
func (p *blackholeProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOn = true
	for _, l := range p.links {
		l.Store(true)
	}
}

// restore forwards connections accepted from now on.
func (p *blackholeProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOn = false
}

func (p *blackholeProxy) close() {
	p.mu.Lock()
	close(p.stop)
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

func TestFaultBlackholeDetectedByPingTimeout(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, faultTimeout)
	backend := strings.TrimPrefix(wstest.EchoServer(t, nil), "ws://")
	proxy := newBlackholeProxy(t, backend)
	states := newFaultStates()
	ch := wstest.Dial(t, "ws://"+proxy.addr()+"/", &wschan.DialOptions{
		PingInterval: 50 * time.Millisecond,
		PingTimeout:  150 * time.Millisecond,
		// Redials while cut are held by the proxy: bound their handshakes.
		HandshakeTimeout: 500 * time.Millisecond,
		Reconnect:        faultReconnect(nil),
		OnStateChange:    states.record,
	})
	states.await(t, ctx, 0, wschan.StateOpen)
	if err := ch.SendText(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	readText(t, ctx, ch, "before")

	from := states.len()
	proxy.cut()
	// The socket stays open, so only the unanswered pings can tell.
	i, ev := states.await(t, ctx, from, wschan.StateReconnecting)
	if !errors.Is(ev.err, wschan.ErrTimeout) {
		t.Fatalf("reconnecting after the blackhole with %v, want ErrTimeout (states %v)", ev.err, states.states())
	}
	var he *wschan.HandshakeError
	if errors.As(ev.err, &he) {
		t.Fatalf("first error after the cut is a handshake error: %v", ev.err)
	}

	proxy.restore()
	states.await(t, ctx, i, wschan.StateOpen)
	if err := ch.SendText(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	readText(t, ctx, ch, "after")
}

// --- 3. buffered sends: exactly once, in order, after the preamble ---

// recordingServer records every message it receives, per connection. kill
// drops every connection with a TCP reset (no close frame) and makes the
// server refuse connections (reset at once) until up.
type recordingServer struct {
	ln     net.Listener
	srv    *http.Server
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{}
	wg     sync.WaitGroup // handlers
	down   atomic.Bool

	mu    sync.Mutex
	conns []net.Conn  // accepted TCP connections
	recv  [][]string  // messages per WebSocket connection
	got   chan string // every message, as received
}

func newRecordingServer(t testing.TB) *recordingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &recordingServer{ln: ln, served: make(chan struct{}), got: make(chan string, 1000)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s}
	go func() { s.srv.Serve(recordingListener{ln, s}); close(s.served) }()
	t.Cleanup(s.close)
	return s
}

func (s *recordingServer) url() string { return "ws://" + s.ln.Addr().String() }

type recordingListener struct {
	net.Listener
	s *recordingServer
}

func (l recordingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.down.Load() {
			resetConn(c)
			continue
		}
		l.s.mu.Lock()
		l.s.conns = append(l.s.conns, c)
		l.s.mu.Unlock()
		return c, nil
	}
}

// resetConn closes c with a TCP reset: no close frame, no FIN.
func resetConn(c net.Conn) { wschan.ResetConn(c) }

func (s *recordingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ch, err := wschan.Accept(w, r, nil)
	if err != nil {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.mu.Lock()
	s.recv = append(s.recv, []string{})
	i := len(s.recv) - 1
	s.mu.Unlock()
	for m := range ch.Messages(s.ctx) {
		s.mu.Lock()
		s.recv[i] = append(s.recv[i], string(m.Data))
		s.mu.Unlock()
		select {
		case s.got <- string(m.Data):
		case <-s.ctx.Done():
		}
	}
	_ = ch.Close(wschan.StatusGoingAway, "")
}

// kill resets every connection and refuses new ones until up.
func (s *recordingServer) kill() {
	s.down.Store(true)
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		resetConn(c)
	}
}

func (s *recordingServer) up() { s.down.Store(false) }

// waitFor waits until the server has received msg, failing if ctx ends.
func (s *recordingServer) waitFor(t testing.TB, ctx context.Context, msg string) {
	t.Helper()
	for {
		select {
		case g := <-s.got:
			if g == msg {
				return
			}
		case <-ctx.Done():
			t.Fatalf("server never got %q; it got %q", msg, s.received())
		}
	}
}

func (s *recordingServer) received() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]string, len(s.recv))
	for i, r := range s.recv {
		out[i] = slices.Clone(r)
	}
	return out
}

func (s *recordingServer) close() {
	s.cancel()
	s.srv.Close()
	<-s.served
	s.kill()
	s.wg.Wait()
}

func TestFaultBufferedSendsExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, faultTimeout)
	srv := newRecordingServer(t)
	states := newFaultStates()
	hello := func(ctx context.Context, s wschan.Sender) error {
		return s.Send(ctx, wschan.Text, []byte("hello"))
	}
	ch := wstest.Dial(t, srv.url(), &wschan.DialOptions{
		Reconnect:     faultReconnect(hello),
		OnStateChange: states.record,
	})
	states.await(t, ctx, 0, wschan.StateOpen)
	if err := ch.SendText(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	srv.waitFor(t, ctx, "first")

	srv.kill()
	i, ev := states.await(t, ctx, 0, wschan.StateReconnecting)
	if !errors.Is(ev.err, wschan.ErrConnectionLost) {
		t.Fatalf("reconnecting with %v, want ErrConnectionLost", ev.err)
	}
	want := []string{"hello"}
	for n := range 50 {
		m := fmt.Sprintf("buffered-%02d", n)
		want = append(want, m)
		if err := ch.SendText(ctx, m); err != nil {
			t.Fatalf("Send %s while disconnected: %v", m, err)
		}
	}
	srv.up()
	states.await(t, ctx, i, wschan.StateOpen)
	// Sent after the buffer: once it is in, everything before it is too.
	if err := ch.SendText(ctx, "end"); err != nil {
		t.Fatal(err)
	}
	srv.waitFor(t, ctx, "end")
	want = append(want, "end")

	got := srv.received()
	if len(got) != 2 {
		t.Fatalf("server saw %d WebSocket connections, want 2: %q", len(got), got)
	}
	if !slices.Equal(got[0], []string{"hello", "first"}) {
		t.Fatalf("first connection got %q, want [hello first]", got[0])
	}
	if !slices.Equal(got[1], want) {
		t.Fatalf("second connection got %q,\nwant %q", got[1], want)
	}
}
