package wschan_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// channelPair dials a loopback server and returns both ends of one
// WebSocket, closed at cleanup.
func channelPair(t *testing.T) (client, server *wschan.Channel) {
	t.Helper()
	accepted := make(chan *wschan.Channel, 1)
	url, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, err := wschan.Accept(w, r, nil); err == nil {
			accepted <- ch
		}
	}))
	client = wstest.Dial(t, url, nil)
	select {
	case server = <-accepted:
	case <-t.Context().Done():
		t.Fatal("server did not accept")
	}
	t.Cleanup(func() { _ = server.Close(wschan.StatusNormalClosure, "") })
	return client, server
}

// netConnPair is channelPair with both ends as binary NetConns.
func netConnPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	c, s := channelPair(t)
	return wschan.NetConn(t.Context(), c, wschan.Binary), wschan.NetConn(t.Context(), s, wschan.Binary)
}

// selfSignedTLS returns a server config for "localhost" and a client
// config that trusts only it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: roots, ServerName: "localhost"}
	return server, client
}

// TLS end to end through a WebSocket: a verified handshake, then 200 KiB
// each way, echoed by the server, in TLS records that span and split
// WebSocket messages.
func TestNetConnTLS(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 200 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			c, s := netConnPair(t)
			scfg, ccfg := selfSignedTLS(t)
			ts, tc := tls.Server(s, scfg), tls.Client(c, ccfg)

			echoed := make(chan error, 1)
			go func() { // the server echoes until the client's close_notify
				_, err := io.Copy(ts, ts)
				if err == nil {
					err = ts.Close()
				}
				echoed <- err
			}()
			want := make([]byte, size)
			_, _ = rand.Read(want)
			wrote := make(chan error, 1)
			go func() {
				_, err := tc.Write(want)
				if err == nil {
					err = tc.CloseWrite()
				}
				wrote <- err
			}()
			got, err := io.ReadAll(tc)
			if err != nil {
				t.Fatalf("client read: %v", err)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("client write: %v", err)
			}
			if err := <-echoed; err != nil {
				t.Fatalf("server: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echo: got %d bytes, want %d (equal prefix: %v)", len(got), len(want), bytes.HasPrefix(want, got))
			}
			if st := tc.ConnectionState(); !st.HandshakeComplete || len(st.VerifiedChains) == 0 {
				t.Fatalf("TLS state: handshake %v, verified chains %d", st.HandshakeComplete, len(st.VerifiedChains))
			}
			_ = tc.Close()
		})
	}
}

// chanListener is a net.Listener whose connections are handed to it.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// HTTP end to end through WebSockets: an http.Server serves on a listener
// whose connections are NetConns accepted by a WebSocket endpoint, and an
// http.Client dials NetConns. Keep-alive reuses one WebSocket for every
// request; a large upload and a large download cross many messages.
func TestNetConnHTTP(t *testing.T) {
	t.Parallel()
	ln := newChanListener()
	url, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		select {
		case ln.conns <- wschan.NetConn(context.Background(), ch, wschan.Binary):
		case <-ln.done:
			_ = ch.Close(wschan.StatusGoingAway, "")
		}
	}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.PathValue("name"))
	})
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("0123456789abcdef"), 1<<14)) // 256 KiB
	})
	srv := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})

	var dials atomic.Int32
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		dials.Add(1)
		ch, err := wschan.Dial(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		return wschan.NetConn(context.Background(), ch, wschan.Binary), nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	tests := []struct {
		name, method, path string
		body               io.Reader
		want               string
	}{
		{"get", http.MethodGet, "/hello/gopher", nil, "hello, gopher"},
		{"again", http.MethodGet, "/hello/again", nil, "hello, again"},
		{"upload", http.MethodPost, "/count", bytes.NewReader(make([]byte, 300<<10)), "307200"},
		{"download", http.MethodGet, "/big", nil, strings.Repeat("0123456789abcdef", 1<<14)},
	}
	for _, tt := range tests { // in order: keep-alive reuses the connection
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, "http://tunnel.invalid"+tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || string(got) != tt.want {
				t.Fatalf("got %s %.40q (%d bytes), want 200 %.40q", resp.Status, got, len(got), tt.want)
			}
		})
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("dialled %d WebSockets, want 1 reused by keep-alive", n)
	}
}

// Reads split and join messages into a byte stream; empty messages are
// skipped.
func TestNetConnReadStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msgs []string
		buf  int
	}{
		{"one message, small reads", []string{"abcdefghij"}, 3},
		{"many messages, one big read each", []string{"ab", "cde", "f"}, 64},
		{"empty messages skipped", []string{"", "ab", "", "", "c"}, 2},
		{"read of exactly a message", []string{"abcd", "efgh"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := channelPair(t)
			nc := wschan.NetConn(t.Context(), c, wschan.Binary)
			for _, m := range tt.msgs {
				if err := s.Send(t.Context(), wschan.Binary, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.Close(wschan.StatusNormalClosure, "")
			var got []byte
			buf := make([]byte, tt.buf)
			for {
				n, err := nc.Read(buf)
				if n == 0 && err == nil {
					t.Fatal("Read returned 0, nil")
				}
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			}
			if want := strings.Join(tt.msgs, ""); string(got) != want {
				t.Fatalf("stream %q, want %q", got, want)
			}
		})
	}
}

// How the stream ends: the peer's 1000 or 1001 is io.EOF, other codes are
// errors with the code, a message of the wrong type closes with 1003.
func TestNetConnEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		peer     func(ctx context.Context, s *wschan.Channel)
		wantEOF  bool
		wantCode wschan.StatusCode // in the Read error (not EOF)
		peerCode wschan.StatusCode // the peer's CloseCode at the end
	}{
		{"normal closure", func(_ context.Context, s *wschan.Channel) { _ = s.Close(wschan.StatusNormalClosure, "") }, true, 0, wschan.StatusNormalClosure},
		{"going away", func(_ context.Context, s *wschan.Channel) { _ = s.Close(wschan.StatusGoingAway, "") }, true, 0, wschan.StatusGoingAway},
		{"application code", func(_ context.Context, s *wschan.Channel) { _ = s.Close(4000, "bye") }, false, 4000, 4000},
		{"text message", func(ctx context.Context, s *wschan.Channel) { _ = s.SendText(ctx, "not bytes") }, false, -1, wschan.StatusUnsupportedData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := channelPair(t)
			nc := wschan.NetConn(t.Context(), c, wschan.Binary)
			tt.peer(t.Context(), s)
			n, err := nc.Read(make([]byte, 16))
			if n != 0 {
				t.Fatalf("Read: %d bytes", n)
			}
			if tt.wantEOF {
				if err != io.EOF {
					t.Fatalf("Read: %v, want io.EOF", err)
				}
			} else if err == nil || err == io.EOF || wschan.CloseStatus(err) != tt.wantCode {
				t.Fatalf("Read: %v (status %v), want an error with status %v", err, wschan.CloseStatus(err), tt.wantCode)
			}
			wstest.WaitDone(t, s)
			if got := s.CloseCode(); got != tt.peerCode {
				t.Fatalf("peer's close code %v, want %v", got, tt.peerCode)
			}
		})
	}
}

// isTimeout reports whether err is a deadline error as net.Conn reports one.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// Deadlines, without waiting for any to pass: a deadline in the past fails
// an operation at once or wakes one under way, loses nothing, and moving
// the deadline makes the conn usable again.
func TestNetConnDeadlines(t *testing.T) {
	t.Parallel()
	past := time.Unix(1, 0)
	tests := []struct {
		name string
		run  func(t *testing.T, nc, peer net.Conn)
	}{
		{"read with a past deadline fails, and loses nothing", func(t *testing.T, nc, peer net.Conn) {
			if _, err := peer.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(past)
			if _, err := nc.Read(make([]byte, 4)); !isTimeout(err) {
				t.Fatalf("Read: %v, want a timeout", err)
			}
			_ = nc.SetReadDeadline(time.Time{})
			expectRead(t, nc, "data")
		}},
		{"a past deadline wakes a read under way", func(t *testing.T, nc, peer net.Conn) {
			errc := make(chan error, 1)
			go func() { _, err := nc.Read(make([]byte, 4)); errc <- err }()
			_ = nc.SetReadDeadline(past)
			if err := <-errc; !isTimeout(err) {
				t.Fatalf("Read: %v, want a timeout", err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(time.Hour))
			_, _ = peer.Write([]byte("more"))
			expectRead(t, nc, "more")
		}},
		{"a partly read message survives a timeout", func(t *testing.T, nc, peer net.Conn) {
			_, _ = peer.Write([]byte("abcdef"))
			expectRead(t, nc, "abc")
			_ = nc.SetDeadline(past)
			if _, err := nc.Read(make([]byte, 3)); !isTimeout(err) {
				t.Fatalf("Read: %v, want a timeout", err)
			}
			_ = nc.SetDeadline(time.Time{})
			expectRead(t, nc, "def")
		}},
		{"write with a past deadline sends nothing", func(t *testing.T, nc, peer net.Conn) {
			_ = nc.SetWriteDeadline(past)
			if n, err := nc.Write([]byte("lost")); n != 0 || !isTimeout(err) {
				t.Fatalf("Write: %d, %v, want 0 and a timeout", n, err)
			}
			_ = nc.SetWriteDeadline(time.Now().Add(time.Hour))
			if _, err := nc.Write([]byte("kept")); err != nil {
				t.Fatal(err)
			}
			expectRead(t, peer, "kept")
		}},
		{"SetDeadline sets both", func(t *testing.T, nc, _ net.Conn) {
			_ = nc.SetDeadline(past)
			if _, err := nc.Write([]byte("x")); !isTimeout(err) {
				t.Fatalf("Write: %v, want a timeout", err)
			}
			if _, err := nc.Read(make([]byte, 1)); !isTimeout(err) {
				t.Fatalf("Read: %v, want a timeout", err)
			}
		}},
		{"close wakes a read under way, the peer sees EOF", func(t *testing.T, nc, peer net.Conn) {
			errc := make(chan error, 1)
			go func() { _, err := nc.Read(make([]byte, 4)); errc <- err }()
			if err := nc.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read: %v, want net.ErrClosed", err)
			}
			if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("peer Read: %v, want io.EOF", err)
			}
			if _, err := nc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
			}
			if err := nc.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v, want net.ErrClosed", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc, peer := netConnPair(t)
			tt.run(t, nc, peer)
		})
	}
}

// NetConn's context bounds its reads and writes.
func TestNetConnContext(t *testing.T) {
	t.Parallel()
	c, _ := channelPair(t)
	ctx, cancel := context.WithCancel(t.Context())
	nc := wschan.NetConn(ctx, c, wschan.Binary)
	errc := make(chan error, 1)
	go func() { _, err := nc.Read(make([]byte, 1)); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read: %v, want context.Canceled", err)
	}
	if _, err := nc.Write([]byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write: %v, want context.Canceled", err)
	}
}

// expectRead reads exactly len(want) bytes from c.
func expectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}
