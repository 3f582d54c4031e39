package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// proxyTimeout bounds each test of client addresses.
const proxyTimeout = 30 * time.Second

// logRecorder is a slog.Handler that keeps every record's message and
// attributes (as text), so a test can wait for a log line.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]string
	changed chan struct{} // closed and replaced on every record
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	l.records = append(l.records, m)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

// wait returns the first record with message msg whose attributes match
// want (a value ending in "*" matches by prefix), waiting for it until ctx
// ends.
func (l *logRecorder) wait(ctx context.Context, t testing.TB, msg string, want map[string]string) map[string]string {
	t.Helper()
	for {
		l.mu.Lock()
		changed := l.changed
		for _, r := range l.records {
			if r["msg"] == msg && matches(r, want) {
				l.mu.Unlock()
				return r
			}
		}
		var seen []string
		for _, r := range l.records {
			seen = append(seen, fmt.Sprint(r))
		}
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("no log %q with %v; logged:\n%s", msg, want, strings.Join(seen, "\n"))
		}
	}
}

func matches(r, want map[string]string) bool {
	for k, v := range want {
		if p, ok := strings.CutSuffix(v, "*"); ok {
			if !strings.HasPrefix(r[k], p) {
				return false
			}
		} else if r[k] != v {
			return false
		}
	}
	return true
}

// dialFrom returns a NetDial that connects from the loopback address src
// (any 127.0.0.0/8 address works on Linux) and first writes prefix, such
// as a PROXY header.
func dialFrom(src string, prefix []byte) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if len(prefix) > 0 {
			if _, err := c.Write(prefix); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
}

// echoOnce sends one message on ch and checks its echo.
func echoOnce(ctx context.Context, t testing.TB, ch *wschan.Channel, text string) {
	t.Helper()
	if err := ch.SendText(ctx, text); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != text {
		t.Fatalf("echo %q, want %q", m.Data, text)
	}
}

// TestLoopbackExemption: a client on this machine is exempt from the
// per-IP and rate limits, unless the configuration or its request says it
// stands for remote clients.
func TestLoopbackExemption(t *testing.T) {
	t.Parallel()
	limits := server.Config{MaxConnsPerIP: 1, MessageRate: 5, MessageBurst: 5}
	tests := []struct {
		name    string
		cfg     func(*server.Config)
		header  http.Header
		limited bool
	}{
		{"default: exempt", func(*server.Config) {}, nil, false},
		{"LimitLoopback", func(c *server.Config) { c.LimitLoopback = true }, nil, true},
		{"loopback trusted as a proxy", func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		}, nil, true},
		{"IPv6 loopback trusted as a proxy", func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("::1/128")}
		}, nil, true},
		{"a forwarding header from an untrusted local proxy", func(*server.Config) {}, http.Header{"X-Forwarded-For": {"203.0.113.5"}}, true},
		{"another range trusted: still exempt", func(c *server.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := wstest.Context(t, proxyTimeout)
			cfg := limits
			tt.cfg(&cfg)
			srv := start(t, cfg)
			opts := &wschan.DialOptions{Header: tt.header}
			first := wstest.Dial(t, srv.WS+"/ws", opts)
			second, err := wschan.Dial(ctx, srv.WS+"/ws", opts)
			if tt.limited {
				he, ok := errors.AsType[*wschan.HandshakeError](err)
				if !ok || he.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(he.Body), "too many connections from 127.0.0.1") {
					t.Fatalf("second connection: %v, want 503 naming the per-IP limit", err)
				}
			} else {
				if err != nil {
					t.Fatalf("second connection: %v, want it open (exempt from --max-conns-per-ip)", err)
				}
				second.Close(wschan.StatusNormalClosure, "")
			}
			// Far more than the burst, in flight at once.
			const n = 40
			for i := range n {
				if err := first.SendText(ctx, fmt.Sprint(i)); err != nil {
					break // closed for the rate, when limited
				}
			}
			for i := range n {
				m, err := first.Read(ctx)
				if err != nil {
					if !tt.limited {
						t.Fatalf("echo %d: %v, want every echo (exempt from --message-rate)", i, err)
					}
					if code := first.CloseCode(); code != wschan.StatusPolicyViolation {
						t.Fatalf("closed with %v, want 1008 for the rate", code)
					}
					return
				}
				if string(m.Data) != fmt.Sprint(i) {
					t.Fatalf("echo %q, want %d", m.Data, i)
				}
			}
			if tt.limited {
				t.Fatalf("%d messages echoed at once, want a 1008 close at the burst of 5", n)
			}
		})
	}
}

// TestProxyProtocol speaks PROXY headers to the server, good and bad,
// from a trusted address (127.0.0.2) and from one that is not (127.0.0.1).
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	const trustedSrc, untrustedSrc = "127.0.0.2", "127.0.0.1"
	logs := newLogRecorder()
	srv := start(t, server.Config{
		ProxyProtocol:    true,
		TrustedProxies:   []netip.Prefix{netip.MustParsePrefix(trustedSrc + "/32")},
		HandshakeTimeout: 300 * time.Millisecond, // also the PROXY header's
		Logger:           slog.New(logs),
	})
	dst := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	v2 := func(src string) []byte {
		s, d := netip.MustParseAddrPort(src), dst
		tp := proxyproto.TCPv4
		if s.Addr().Is6() {
			tp, d = proxyproto.TCPv6, netip.AddrPortFrom(netip.IPv6Loopback(), dst.Port())
		}
		h := &proxyproto.Header{Version: 2, Command: proxyproto.PROXY, TransportProtocol: tp,
			SourceAddr: net.TCPAddrFromAddrPort(s), DestinationAddr: net.TCPAddrFromAddrPort(d)}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v1 := func(src string) []byte {
		s := netip.MustParseAddrPort(src)
		return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %d\r\n", s.Addr(), dst.Addr(), s.Port(), dst.Port())
	}

	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, from string
			header     []byte
			remote     string // in the log
			via        string
		}{
			{"v1 from a trusted peer", trustedSrc, v1("203.0.113.9:5555"), "203.0.113.9:5555", "proxy-protocol"},
			{"v2 from a trusted peer", trustedSrc, v2("198.51.100.4:6666"), "198.51.100.4:6666", "proxy-protocol"},
			{"v2 IPv6 from a trusted peer", trustedSrc, v2("[2001:db8::7]:7777"), "[2001:db8::7]:7777", "proxy-protocol"},
			{"v2 LOCAL from a trusted peer: the peer is the client", trustedSrc,
				[]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"), trustedSrc + ":*", ""},
			{"no header from an untrusted peer: served as before", untrustedSrc, nil, untrustedSrc + ":*", ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := wstest.Context(t, proxyTimeout)
				ch := wstest.Dial(t, srv.WS+"/ws?case="+strings.ReplaceAll(tt.name, " ", "-"), &wschan.DialOptions{NetDial: dialFrom(tt.from, tt.header)})
				echoOnce(ctx, t, ch, "hello")
				want := map[string]string{"remote": tt.remote, "path": "/ws"}
				if tt.via != "" {
					want["via"], want["proxy"] = tt.via, tt.from+":*"
				}
				r := logs.wait(ctx, t, "connection open", want)
				if tt.via == "" && r["via"] != "" {
					t.Errorf("logged via=%s, want the TCP peer", r["via"])
				}
			})
		}
	})

	// Each bad header closes the connection without an HTTP answer; the
	// server then serves others as before.
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		long := append([]byte("PROXY TCP4 203.0.113.9 127.0.0.1 5555 8080"), strings.Repeat(" ", 100)...)
		lying := v2("203.0.113.9:5555")
		lying[14], lying[15] = 0, 100 // 100 address bytes said, 12 sent: waits for the rest
		short := v2("203.0.113.9:5555")
		short[14], short[15] = 0, 4 // too short for two IPv4 addresses and ports
		huge := v2("203.0.113.9:5555")
		huge[14], huge[15] = 0xff, 0xff
		badVersion := v2("203.0.113.9:5555")
		badVersion[12] = 0x31
		tests := []struct {
			name, from string
			send       []byte
			halfClose  bool // end the stream after send
		}{
			{"v1 from an untrusted peer", untrustedSrc, v1("203.0.113.9:5555"), false},
			{"v2 from an untrusted peer", untrustedSrc, v2("203.0.113.9:5555"), false},
			{"no header from a trusted peer", trustedSrc, []byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), false},
			{"v1 truncated, then silence", trustedSrc, []byte("PROXY TCP4 203.0.113.9"), false},
			{"v1 truncated, then end of stream", trustedSrc, []byte("PROXY TCP4 203.0.113.9"), true},
			{"v1 oversized", trustedSrc, append(long, "\r\n"...), false},
			{"v1 without CRLF", trustedSrc, []byte("PROXY TCP4 203.0.113.9 127.0.0.1 5555 8080\n"), false},
			{"v1 bad address", trustedSrc, []byte("PROXY TCP4 203.0.113.999 127.0.0.1 5555 8080\r\n"), false},
			{"v2 truncated in the addresses", trustedSrc, v2("203.0.113.9:5555")[:20], true},
			{"v2 claims more bytes than it sends", trustedSrc, lying, false},
			{"v2 claims fewer bytes than its addresses", trustedSrc, short, false},
			{"v2 claims 64 KiB", trustedSrc, huge, false},
			{"v2 unknown version", trustedSrc, badVersion, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := wstest.Context(t, proxyTimeout)
				c, err := dialFrom(tt.from, nil)(ctx, "tcp", dst.String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(proxyTimeout))
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
				if tt.halfClose {
					_ = c.(*net.TCPConn).CloseWrite()
				}
				// The server closes: EOF or a reset, with nothing written.
				got, err := io.ReadAll(c)
				if len(got) > 0 || err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("read %q, %v; want the connection closed without an answer", got, err)
				}
				logs.wait(ctx, t, "connection refused: PROXY protocol", map[string]string{"remote": c.LocalAddr().String()})
			})
		}
	})
}
