package wschan_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

func TestDialErrors(t *testing.T) {
	t.Parallel()
	notWS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no websocket here", http.StatusNotFound)
	}))
	t.Cleanup(notWS.Close)
	tlsSrv := httptest.NewUnstartedServer(&wstest.Echo{})
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() { // accept and never answer
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	refused := func() string { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()

	tests := []struct {
		name  string
		url   string
		opts  *wschan.DialOptions
		check func(t *testing.T, err error)
	}{
		{"not a WebSocket URL", "ws" + strings.TrimPrefix(notWS.URL, "http"), nil, func(t *testing.T, err error) {
			var he *wschan.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != 404 || !strings.Contains(string(he.Body), "no websocket here") {
				t.Fatalf("got %v (%#v), want HandshakeError 404 with body", err, he)
			}
		}},
		{"refused port", "ws://" + refused, nil, func(t *testing.T, err error) {
			var oe *net.OpError
			if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("got %v, want *net.OpError with ECONNREFUSED", err)
			}
		}},
		{"TLS certificate not trusted", "wss" + strings.TrimPrefix(tlsSrv.URL, "https"), nil, func(t *testing.T, err error) {
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				t.Fatalf("got %v, want *tls.CertificateVerificationError", err)
			}
		}},
		{"handshake timeout", "ws://" + silent.Addr().String(), &wschan.DialOptions{HandshakeTimeout: 100 * time.Millisecond}, func(t *testing.T, err error) {
			if !errors.Is(err, wschan.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want ErrTimeout and DeadlineExceeded", err)
			}
		}},
		{"bad scheme", "ftp://example.com/", nil, func(t *testing.T, err error) {
			if !errors.Is(err, wschan.ErrInvalidURL) {
				t.Fatalf("got %v, want ErrInvalidURL", err)
			}
		}},
		{"no scheme", "localhost:8080", nil, func(t *testing.T, err error) {
			if !errors.Is(err, wschan.ErrInvalidURL) {
				t.Fatalf("got %v, want ErrInvalidURL", err)
			}
		}},
		{"no host", "ws:///path", nil, func(t *testing.T, err error) {
			if !errors.Is(err, wschan.ErrInvalidURL) {
				t.Fatalf("got %v, want ErrInvalidURL", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch, err := wschan.Dial(t.Context(), tt.url, tt.opts)
			if err == nil {
				ch.Close(1000, "")
				t.Fatal("Dial succeeded")
			}
			tt.check(t, err)
		})
	}
}

func TestDialContextCancelAbortsHandshake(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := wschan.Dial(ctx, "ws://"+ln.Addr().String(), &wschan.DialOptions{HandshakeTimeout: time.Minute})
		errc <- err
	}()
	c := <-accepted
	accepted <- c
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial = %v, want context.Canceled", err)
		}
	case <-t.Context().Done():
		t.Fatal("Dial did not return after cancel")
	}
}

func TestDialTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(&wstest.Echo{})
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig
	ch := wstest.Dial(t, "wss"+strings.TrimPrefix(srv.URL, "https"), &wschan.DialOptions{TLSConfig: cfg})
	if err := ch.SendText(t.Context(), "secure"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "secure" {
		t.Fatalf("got %q", m.Data)
	}
}

func TestSubprotocols(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		server  []string
		offered []string
		want    string
	}{
		{"client order wins", []string{"a", "b"}, []string{"b", "a"}, "b"},
		{"only common one", []string{"chat"}, []string{"superchat", "chat"}, "chat"},
		{"none in common", []string{"x"}, []string{"y"}, ""},
		{"server has none", nil, []string{"chat"}, ""},
		{"client offers none", []string{"chat"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			accepted := make(chan *wschan.Channel, 1)
			u, _ := wstest.Server(t, &wstest.Echo{Options: &wschan.AcceptOptions{Subprotocols: tt.server}, Accepted: accepted})
			ch := wstest.Dial(t, u, &wschan.DialOptions{Subprotocols: tt.offered})
			if ch.Protocol() != tt.want {
				t.Errorf("client Protocol() = %q, want %q", ch.Protocol(), tt.want)
			}
			if srv := <-accepted; srv.Protocol() != tt.want {
				t.Errorf("server Protocol() = %q, want %q", srv.Protocol(), tt.want)
			}
		})
	}
	t.Run("server picks one not offered", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: evil\r\n\r\n",
				wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")))
			io.Copy(io.Discard, c)
		}()
		_, err = wschan.Dial(t.Context(), "ws://"+ln.Addr().String(), &wschan.DialOptions{Subprotocols: []string{"chat"}})
		var he *wschan.HandshakeError
		if !errors.As(err, &he) || !strings.Contains(he.Reason, "evil") {
			t.Fatalf("Dial = %v, want HandshakeError naming the subprotocol", err)
		}
	})
	t.Run("SelectSubprotocol", func(t *testing.T) {
		t.Parallel()
		opts := &wschan.AcceptOptions{SelectSubprotocol: func(_ *http.Request, offered []string) string { return offered[len(offered)-1] }}
		ch := wstest.Dial(t, wstest.EchoServer(t, opts), &wschan.DialOptions{Subprotocols: []string{"one", "two", "three"}})
		if ch.Protocol() != "three" {
			t.Fatalf("Protocol() = %q, want three", ch.Protocol())
		}
	})
}

func TestOriginPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		patterns []string
		origin   string // "" = no Origin header; "SAME" = the server's own
		ok       bool
	}{
		{"no origin (non-browser)", nil, "", true},
		{"same origin", nil, "SAME", true},
		{"cross origin refused by default", nil, "https://evil.example", false},
		{"allow-listed host", []string{"*.example.com"}, "https://app.example.com", true},
		{"not on the allow list", []string{"*.example.com"}, "https://example.org", false},
		{"any", []string{"*"}, "https://anything.test", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, srv := wstest.Server(t, &wstest.Echo{Options: &wschan.AcceptOptions{OriginPatterns: tt.patterns}})
			h := http.Header{}
			switch tt.origin {
			case "":
			case "SAME":
				h.Set("Origin", srv.URL)
			default:
				h.Set("Origin", tt.origin)
			}
			ch, err := wschan.Dial(t.Context(), u, &wschan.DialOptions{Header: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				ch.Close(1000, "")
				return
			}
			var he *wschan.HandshakeError
			if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden {
				t.Fatalf("Dial = %v, want HandshakeError 403", err)
			}
		})
	}
}

func TestDialHeadersReachServer(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		if ch, err := wschan.Accept(w, r, nil); err == nil {
			ch.Close(1000, "")
		}
	}))
	ch := wstest.Dial(t, u, &wschan.DialOptions{Header: http.Header{"Authorization": {"Bearer t0k3n"}}})
	if a := <-got; a != "Bearer t0k3n" {
		t.Fatalf("server saw Authorization %q", a)
	}
	wstest.WaitDone(t, ch)
}

// connectProxy is a minimal HTTP CONNECT proxy on loopback that counts the
// tunnels it opened and the credentials it saw.
func connectProxy(t *testing.T) (*url.URL, *atomic.Int32, *atomic.Value) {
	t.Helper()
	var tunnels atomic.Int32
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		auth.Store(r.Header.Get("Proxy-Authorization"))
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		w.WriteHeader(http.StatusOK)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { io.Copy(up, brw); up.Close() }()
		io.Copy(c, up)
		c.Close()
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("user", "pass")
	return u, &tunnels, &auth
}

func TestDialThroughProxy(t *testing.T) {
	t.Parallel()
	purl, tunnels, auth := connectProxy(t)
	ch := wstest.Dial(t, wstest.EchoServer(t, nil), &wschan.DialOptions{Proxy: http.ProxyURL(purl)})
	if err := ch.SendText(t.Context(), "via proxy"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "via proxy" {
		t.Fatalf("got %q", m.Data)
	}
	if tunnels.Load() != 1 {
		t.Fatalf("proxy opened %d tunnels, want 1", tunnels.Load())
	}
	if a, _ := auth.Load().(string); a != "Basic dXNlcjpwYXNz" {
		t.Fatalf("proxy saw Proxy-Authorization %q", a)
	}
}

func TestPipelinedFramesAfterHandshake(t *testing.T) {
	t.Parallel()
	// A client that sends its first frame in the same packet as the
	// handshake request: the bytes must not be lost in the HTTP server's buffer.
	u := wstest.EchoServer(t, nil)
	hostport := strings.TrimPrefix(u, "ws://")
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: " + hostport + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: []byte("early")}.Encode()
	if _, err := c.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("no echo of the early frame: %v", err)
	}
	p := make([]byte, hdr[1]&0x7f)
	io.ReadFull(br, p)
	if string(p) != "early" {
		t.Fatalf("echo = %q", p)
	}
}
