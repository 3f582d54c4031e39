package wschan_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// killableServer is an echo server on a fixed loopback address that can be
// killed (every TCP connection dropped without a close frame, listener
// gone) and started again on the same address.
type killableServer struct {
	t    *testing.T
	addr string
	h    http.Handler

	mu    sync.Mutex
	srv   *http.Server
	ln    net.Listener
	conns []net.Conn
	done  chan struct{}
}

type trackingListener struct {
	net.Listener
	s *killableServer
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns = append(l.s.conns, c)
		l.s.mu.Unlock()
	}
	return c, err
}

func newKillableServer(t *testing.T, h http.Handler) *killableServer {
	s := &killableServer{t: t, h: h, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *killableServer) URL() string { return "ws://" + s.addr }

func (s *killableServer) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port can take a moment to be free again
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.ln = ln
	s.srv = &http.Server{Handler: s.h}
	s.done = make(chan struct{})
	srv, done := s.srv, s.done
	s.mu.Unlock()
	go func() { srv.Serve(trackingListener{ln, s}); close(done) }()
}

func (s *killableServer) kill() {
	s.mu.Lock()
	srv, conns, done := s.srv, s.conns, s.done
	s.srv, s.conns = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	for _, c := range conns {
		wschan.ResetConn(c) // RST: no close frame, no FIN handshake
	}
	<-done
}

// recorder is a handler that echoes and records every message per connection.
type recorder struct {
	mu    sync.Mutex
	conns [][]string
	got   chan string
}

func newRecorder() *recorder { return &recorder{got: make(chan string, 1000)} }

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ch, err := wschan.Accept(w, req, nil)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.conns = append(r.conns, nil)
	i := len(r.conns) - 1
	r.mu.Unlock()
	for m := range ch.Messages(context.Background()) {
		r.mu.Lock()
		r.conns[i] = append(r.conns[i], string(m.Data))
		r.mu.Unlock()
		r.got <- string(m.Data)
		_ = ch.Send(context.Background(), m.Type, m.Data)
	}
}

func (r *recorder) waitFor(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case g := <-r.got:
			if g != w {
				t.Fatalf("server got %q, want %q", g, w)
			}
		case <-t.Context().Done():
			t.Fatalf("server never got %q", w)
		}
	}
}

// stateLog records state changes.
type stateLog struct {
	mu     sync.Mutex
	states []wschan.State
	ch     chan wschan.State
}

func newStateLog() *stateLog { return &stateLog{ch: make(chan wschan.State, 100)} }

func (l *stateLog) record(s wschan.State, _ error) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
	l.ch <- s
}

func (l *stateLog) waitFor(t *testing.T, want wschan.State) {
	t.Helper()
	for {
		select {
		case s := <-l.ch:
			if s == want {
				return
			}
		case <-t.Context().Done():
			t.Fatalf("never reached state %v (saw %v)", want, l.all())
		}
	}
}

func (l *stateLog) all() []wschan.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.states)
}

func fastReconnect(onConnect func(context.Context, wschan.Sender) error, buf int) *wschan.ReconnectOptions {
	return &wschan.ReconnectOptions{MinDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, OnConnect: onConnect, BufferSize: buf}
}

func TestReconnectAfterServerKilled(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	srv := newKillableServer(t, rec)
	log := newStateLog()
	hello := func(ctx context.Context, s wschan.Sender) error { return s.Send(ctx, wschan.Text, []byte("hello")) }
	ch, err := wschan.Dial(t.Context(), srv.URL(), &wschan.DialOptions{
		Reconnect:     fastReconnect(hello, 16),
		OnStateChange: log.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close(1000, "") })
	log.waitFor(t, wschan.StateOpen)
	rec.waitFor(t, "hello")
	if err := ch.SendText(t.Context(), "m0"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "m0")
	if m := wstest.Read(t, ch); string(m.Data) != "hello" {
		t.Fatalf("first echo %q", m.Data)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "m0" {
		t.Fatalf("second echo %q", m.Data)
	}

	srv.kill()
	log.waitFor(t, wschan.StateReconnecting)
	for _, m := range []string{"m1", "m2", "m3", "m4", "m5"} {
		if err := ch.SendText(t.Context(), m); err != nil {
			t.Fatalf("Send while down: %v", err)
		}
	}
	srv.start()
	log.waitFor(t, wschan.StateOpen)
	// The preamble first, then the buffered sends in order, each once.
	rec.waitFor(t, "hello", "m1", "m2", "m3", "m4", "m5")
	for _, want := range []string{"hello", "m1", "m2", "m3", "m4", "m5"} {
		if m := wstest.Read(t, ch); string(m.Data) != want {
			t.Fatalf("stream after reconnect: %q, want %q", m.Data, want)
		}
	}
	rec.mu.Lock()
	conns := slices.Clone(rec.conns)
	rec.mu.Unlock()
	if len(conns) != 2 || !slices.Equal(conns[1], []string{"hello", "m1", "m2", "m3", "m4", "m5"}) {
		t.Fatalf("server connections saw %q", conns)
	}
	if err := ch.Close(1000, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	states := log.all()
	want := []wschan.State{wschan.StateConnecting, wschan.StateOpen, wschan.StateReconnecting, wschan.StateOpen, wschan.StateClosed}
	// Failed redials while the server was down may repeat Reconnecting.
	compact := slices.Compact(states)
	if !slices.Equal(compact, want) {
		t.Fatalf("states %v, want %v", states, want)
	}
}

func TestReconnectBufferBound(t *testing.T) {
	t.Parallel()
	// Nothing listens: the channel stays disconnected.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ch, err := wschan.Dial(t.Context(), "ws://"+addr, &wschan.DialOptions{Reconnect: fastReconnect(nil, 2)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "b"} {
		if err := ch.SendText(t.Context(), m); err != nil {
			t.Fatalf("Send %s: %v", m, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := ch.SendText(ctx, "c"); !errors.Is(err, wschan.ErrBufferFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on full buffer = %v, want ErrBufferFull", err)
	}
	err = ch.Close(1000, "")
	var ue *wschan.UndeliveredError
	if !errors.As(err, &ue) || !errors.Is(err, wschan.ErrUndelivered) {
		t.Fatalf("Close = %v, want UndeliveredError", err)
	}
	var got []string
	for _, m := range ue.Messages {
		got = append(got, string(m.Data))
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("undelivered %q, want [a b]", got)
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) {
		t.Fatalf("Err() = %v", ch.Err())
	}
}

func TestReconnectEnds(t *testing.T) {
	t.Parallel()
	refused := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return "ws://" + ln.Addr().String()
	}()
	notFound, _ := wstest.Server(t, http.NotFoundHandler())
	normalClose := handlerServer(t, nil, func(ch *wschan.Channel) { ch.Close(1000, "done") })
	tests := []struct {
		name  string
		url   string
		ro    *wschan.ReconnectOptions
		check func(t *testing.T, err error)
	}{
		{"gives up after MaxAttempts", refused, &wschan.ReconnectOptions{MinDelay: time.Millisecond, MaxAttempts: 3}, func(t *testing.T, err error) {
			if err == nil || errors.Is(err, wschan.ErrClosed) {
				t.Fatalf("Err() = %v, want the dial error", err)
			}
		}},
		{"no retry on 404", notFound, &wschan.ReconnectOptions{MinDelay: time.Millisecond}, func(t *testing.T, err error) {
			var he *wschan.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != 404 {
				t.Fatalf("Err() = %v, want HandshakeError 404", err)
			}
		}},
		{"no reconnect after normal close", normalClose, &wschan.ReconnectOptions{MinDelay: time.Millisecond}, func(t *testing.T, err error) {
			var ce *wschan.CloseError
			if !errors.As(err, &ce) || ce.Code != 1000 || !ce.Remote {
				t.Fatalf("Err() = %v, want remote CloseError 1000", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch, err := wschan.Dial(t.Context(), tt.url, &wschan.DialOptions{Reconnect: tt.ro})
			if err != nil {
				t.Fatal(err)
			}
			wstest.WaitDone(t, ch)
			tt.check(t, ch.Err())
			if err := ch.Close(1000, ""); err != nil {
				t.Fatalf("Close after end: %v", err)
			}
		})
	}
}

func TestReconnectCloseWhileConnecting(t *testing.T) {
	t.Parallel()
	// The server accepts TCP but never answers the handshake: the dial is
	// pending when Close is called.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	ch, err := wschan.Dial(t.Context(), "ws://"+ln.Addr().String(), &wschan.DialOptions{
		HandshakeTimeout: time.Minute,
		Reconnect:        &wschan.ReconnectOptions{},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	defer c.Close()
	if ch.State() == wschan.StateOpen {
		t.Fatal("open without a handshake")
	}
	done := make(chan error, 1)
	go func() { done <- ch.Close(1000, "") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close = %v", err)
		}
	case <-t.Context().Done():
		t.Fatal("Close hung on a pending dial")
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) || ch.State() != wschan.StateClosed {
		t.Fatalf("Err %v state %v", ch.Err(), ch.State())
	}
}

// TestReconnectCloseFromCallback closes a reconnecting channel from OnPing
// while OnConnect is still running: the loop must not wait for the read
// loop that is inside the callback.
func TestReconnectCloseFromCallback(t *testing.T) {
	t.Parallel()
	u := wstest.RawServer(t, func(r *wstest.Raw) {
		_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x9, Payload: []byte("hi")})
		if code, _ := r.ReadClose(); code > 0 {
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x8, Payload: wstest.ClosePayload(uint16(code), "")})
		}
	})
	closed := make(chan error, 1)
	ch, err := wschan.Dial(t.Context(), u, &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{
			OnConnect: func(ctx context.Context, _ wschan.Sender) error {
				<-ctx.Done() // still running when the ping arrives
				return ctx.Err()
			},
		},
		OnPing: func(ch *wschan.Channel, _ []byte) { closed <- ch.Close(4000, "from OnPing") },
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close from OnPing = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from OnPing did not return")
	}
	select {
	case <-ch.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("channel did not end after Close from OnPing")
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) || ch.CloseCode() != 4000 {
		t.Fatalf("Err %v code %v, want ErrClosed 4000", ch.Err(), ch.CloseCode())
	}
}
