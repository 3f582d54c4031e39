package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/internal/xconnect"
	"github.com/wschan/wschan/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Extended CONNECT for the HTTP/2 WebSocket tests: a process-wide
	// switch in Go 1.26, read at start-up (see internal/xconnect).
	if err := xconnect.Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	goleak.VerifyTestMain(m)
}

// running is a server started on a loopback port for one test.
type running struct {
	URL  string // http://127.0.0.1:port
	WS   string // ws://127.0.0.1:port
	stop context.CancelFunc
	done chan error
}

// start runs a server with cfg on 127.0.0.1:0 until the test ends (or
// stop is called), and waits for Serve to return at cleanup.
func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{URL: "http://" + ln.Addr().String(), WS: "ws://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEchoSmoke(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	for _, path := range []string{"/ws", "/"} {
		ch := wstest.Dial(t, srv.WS+path, nil)
		if err := ch.SendText(t.Context(), "hello "+path); err != nil {
			t.Fatal(err)
		}
		if m := wstest.Read(t, ch); string(m.Data) != "hello "+path || m.Type != wschan.Text {
			t.Fatalf("echo on %s: %v %q", path, m.Type, m.Data)
		}
	}
	if code, body := get(t, srv.URL+"/"); code != 200 || !strings.Contains(body, "/ws") {
		t.Fatalf("GET /: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "wschan_connections_open") {
		t.Fatalf("metrics %d", code)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	t.Run("oversized message closes with 1009", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{MaxMessageSize: 1000})
		ch := wstest.Dial(t, srv.WS+"/ws", nil)
		if err := ch.Send(t.Context(), wschan.Binary, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		wstest.Read(t, ch) // exactly the limit is fine
		if err := ch.Send(t.Context(), wschan.Binary, make([]byte, 1001)); err != nil {
			t.Fatal(err)
		}
		wstest.WaitDone(t, ch)
		if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || !ce.Remote || ce.Code != 1009 {
			t.Fatalf("Err() = %v, want remote 1009", ch.Err())
		}
	})
	t.Run("invalid UTF-8 closes with 1007 and protocol errors with 1002", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 1, Masked: true, Payload: []byte{0xc0, 0xaf}})
		if code, _ := raw.ReadClose(); code != 1007 {
			t.Fatalf("close %d, want 1007", code)
		}
		raw = wstest.DialRaw(t, srv.WS+"/ws", nil)
		raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 1, Payload: []byte("unmasked")})
		if code, _ := raw.ReadClose(); code != 1002 {
			t.Fatalf("close %d, want 1002", code)
		}
	})
	t.Run("connection limit answers 503 with Retry-After", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{MaxConns: 1})
		first := wstest.Dial(t, srv.WS+"/ws", nil)
		_, err := wschan.Dial(t.Context(), srv.WS+"/ws", nil)
		he, ok := errors.AsType[*wschan.HandshakeError](err)
		if !ok || he.StatusCode != http.StatusServiceUnavailable || he.Header.Get("Retry-After") == "" {
			t.Fatalf("second Dial = %v, want 503 with Retry-After", err)
		}
		if !strings.Contains(string(he.Body), "limit") {
			t.Errorf("503 body %q does not say why", he.Body)
		}
		// The slot frees when the first client leaves.
		first.Close(1000, "")
		deadline := time.Now().Add(5 * time.Second)
		for {
			ch, err := wschan.Dial(t.Context(), srv.WS+"/ws", nil)
			if err == nil {
				ch.Close(1000, "")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot never freed: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("slowloris headers are cut off", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{HandshakeTimeout: 200 * time.Millisecond})
		c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\n") // and never finish
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("connection not closed by the server: %v", err)
		}
	})
	t.Run("idle connection closed with 1000", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{IdleTimeout: 200 * time.Millisecond})
		ch := wstest.Dial(t, srv.WS+"/ws", nil)
		wstest.WaitDone(t, ch)
		if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != 1000 || ce.Reason != "idle timeout" {
			t.Fatalf("Err() = %v, want remote 1000 idle timeout", ch.Err())
		}
	})
	t.Run("peer that never answers pings is dropped", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		sawPing := false
		for {
			f, err := raw.ReadFrame()
			if err != nil {
				break
			}
			sawPing = sawPing || f.Opcode == 0x9
		}
		if !sawPing {
			t.Fatal("no ping before the server dropped the connection")
		}
	})
	t.Run("client that does not read is disconnected", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{WriteTimeout: 200 * time.Millisecond, MessageRate: -1, MaxMessageSize: 1 << 20})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		big := wstest.Frame{Fin: true, Opcode: 2, Masked: true, Payload: make([]byte, 1<<20)}.Encode()
		raw.Conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for i := 0; ; i++ { // never read: the server's echoes pile up
			if err := raw.Write(big); err != nil {
				break
			}
			if i > 2000 {
				t.Fatal("server kept accepting from a client that does not read")
			}
		}
		waitMetric(t, srv, "wschan_slow_reader_disconnects_total 1")
	})
}

// waitMetric polls /metrics until it contains line.
func waitMetric(t *testing.T, srv *running, line string) {
	t.Helper()
	for {
		_, body := get(t, srv.URL+"/metrics")
		if strings.Contains(body, line) {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("metrics never showed %q", line)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []string
		origin  string
		ok      bool
	}{
		{"any origin by default", nil, "https://elsewhere.example", true},
		{"restricted: allowed", []string{"*.good.example"}, "https://app.good.example", true},
		{"restricted: refused", []string{"*.good.example"}, "https://evil.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := start(t, server.Config{AllowedOrigins: tt.allowed})
			ch, err := wschan.Dial(t.Context(), srv.WS+"/ws", &wschan.DialOptions{Header: http.Header{"Origin": {tt.origin}}})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				ch.Close(1000, "")
				return
			}
			if he, ok := errors.AsType[*wschan.HandshakeError](err); !ok || he.StatusCode != 403 {
				t.Fatalf("Dial = %v, want 403", err)
			}
		})
	}
}

func TestTLSSelfSigned(t *testing.T) {
	t.Parallel()
	s, err := server.New(server.Config{TLSSelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	insecure := &tls.Config{InsecureSkipVerify: true}
	ch := wstest.Dial(t, "wss://"+ln.Addr().String()+"/ws", &wschan.DialOptions{TLSConfig: insecure})
	if err := ch.SendText(t.Context(), "over TLS"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "over TLS" {
		t.Fatalf("got %q", m.Data)
	}
	ch.Close(1000, "")
	// The page is served over HTTP/2.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: insecure, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.ProtoMajor != 2 {
		t.Fatalf("page over %s, want HTTP/2", resp.Proto)
	}
}

func TestDrain(t *testing.T) {
	t.Parallel()
	t.Run("clients get 1001 and Serve returns", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{})
		ch := wstest.Dial(t, srv.WS+"/ws", nil)
		srv.stop()
		wstest.WaitDone(t, ch)
		if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || !ce.Remote || ce.Code != wschan.StatusGoingAway {
			t.Fatalf("client Err() = %v, want remote 1001", ch.Err())
		}
		select {
		case err := <-srv.done:
			srv.done <- err // for the cleanup
		case <-t.Context().Done():
			t.Fatal("Serve did not return after drain")
		}
	})
	t.Run("a client that ignores 1001 is cut off at the drain timeout", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{DrainTimeout: 300 * time.Millisecond})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil) // never answers the close frame
		_ = raw
		srv.stop()
		select {
		case err := <-srv.done:
			srv.done <- err
		case <-t.Context().Done():
			t.Fatal("Serve did not return at the drain timeout")
		}
		if code, _ := raw.ReadClose(); code != 1001 {
			t.Fatalf("raw client got close %d, want 1001", code)
		}
		// Serve has returned: the connection is gone, not left open (the
		// library would close it only after its own 5 s close timeout).
		_ = raw.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := raw.ReadFrame(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after Serve returned, the connection still reads: %v", err)
		}
	})
}

func TestScenarios(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	tests := []struct {
		name  string
		path  string
		opts  *wschan.DialOptions
		sends int
		check func(t *testing.T, ch *wschan.Channel, echoes int)
	}{
		{"close at once", "/ws/close/4000?reason=bye", nil, 0, func(t *testing.T, ch *wschan.Channel, _ int) {
			if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != 4000 || ce.Reason != "bye" {
				t.Fatalf("Err() = %v, want 4000 bye", ch.Err())
			}
		}},
		{"close after 2", "/ws/close/1011?after=2", nil, 3, func(t *testing.T, ch *wschan.Channel, echoes int) {
			if echoes != 2 || wschan.CloseStatus(ch.Err()) != 1011 {
				t.Fatalf("%d echoes, Err() = %v; want 2 and 1011", echoes, ch.Err())
			}
		}},
		{"delay", "/ws/delay/50ms", nil, 2, func(t *testing.T, ch *wschan.Channel, echoes int) {
			if echoes != 2 {
				t.Fatalf("%d echoes, want 2", echoes)
			}
		}},
		{"silent", "/ws/silent", &wschan.DialOptions{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond}, 1, func(t *testing.T, ch *wschan.Channel, echoes int) {
			if echoes != 0 || !errors.Is(ch.Err(), wschan.ErrTimeout) {
				t.Fatalf("%d echoes, Err() = %v; want none and ErrTimeout", echoes, ch.Err())
			}
		}},
		{"drop", "/ws/drop", nil, 0, func(t *testing.T, ch *wschan.Channel, _ int) {
			if !errors.Is(ch.Err(), wschan.ErrConnectionLost) || ch.CloseCode() != 1006 {
				t.Fatalf("Err() = %v code %v, want ErrConnectionLost 1006", ch.Err(), ch.CloseCode())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := wstest.Dial(t, srv.WS+tt.path, tt.opts)
			for i := range tt.sends {
				ch.SendText(t.Context(), fmt.Sprint("m", i))
			}
			echoes := 0
			for range ch.Messages(t.Context()) {
				echoes++
				if tt.name == "delay" && echoes == tt.sends {
					ch.Close(1000, "")
				}
			}
			tt.check(t, ch, echoes)
		})
	}
	for _, bad := range []string{"/ws/close/1005", "/ws/close/abc", "/ws/close/1000?after=-1", "/ws/delay/1h", "/ws/delay/xyz"} {
		t.Run("refused "+bad, func(t *testing.T) {
			t.Parallel()
			_, err := wschan.Dial(t.Context(), srv.WS+bad, nil)
			if he, ok := errors.AsType[*wschan.HandshakeError](err); !ok || he.StatusCode != 400 {
				t.Fatalf("Dial = %v, want 400", err)
			}
		})
	}
	t.Run("off with NoScenarios", func(t *testing.T) {
		t.Parallel()
		off := start(t, server.Config{NoScenarios: true})
		_, err := wschan.Dial(t.Context(), off.WS+"/ws/silent", nil)
		if he, ok := errors.AsType[*wschan.HandshakeError](err); !ok || he.StatusCode != 404 {
			t.Fatalf("Dial = %v, want 404", err)
		}
	})
}
