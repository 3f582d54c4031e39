package server_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/internal/xconnect"
	"github.com/wschan/wschan/server"
	"golang.org/x/net/http2"
)

// countingListener counts the TCP connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// `wschan serve` over TLS takes WebSockets over HTTP/2 on the page's
// connection: echo, the root and a room on one TCP connection, the
// connection log line and the handshake metric say HTTP/2.0, bad input
// gets the HTTP/1.1 twin's status, and the drain sends 1001 to HTTP/2
// WebSockets too.
func TestHTTP2WebSockets(t *testing.T) {
	t.Parallel()
	if !xconnect.Enabled() {
		t.Skipf("HTTP/2 extended CONNECT is off in this process: run with GODEBUG=%s", xconnect.Setting)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	logs := newLogRecorder()
	s, err := server.New(server.Config{TLSSelfSigned: true, Logger: slog.New(logs), DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: tcp}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx, ln) }()
	t.Cleanup(func() { stop(); <-done })
	base := "https://" + tcp.Addr().String()
	// net/http's own Transport refuses the :protocol header (Go 1.26).
	//lint:ignore SA1019 the replacement, http.Transport, cannot send extended CONNECT
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	//lint:ignore SA1019 see above
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	var raws []*wstest.Raw
	for _, path := range []string{"/ws", "/", "/ws/room/h2"} {
		resp, raw := wstest.H2Connect(t, client, base+path, nil)
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("%s: %s over %s, want 200 over HTTP/2", path, resp.Status, resp.Proto)
		}
		msg := []byte("over h2 " + path)
		if err := raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 1, Masked: true, Payload: msg}); err != nil {
			t.Fatal(err)
		}
		if f, err := raw.ReadFrame(); err != nil || string(f.Payload) != string(msg) {
			t.Fatalf("%s: echo %q, %v", path, f.Payload, err)
		}
		logs.wait(ctx, t, "connection open", map[string]string{"path": path, "proto": "HTTP/2.0"})
		raws = append(raws, raw)
	}

	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/nope", http.StatusNotFound},                 // as GET /nope with an upgrade
		{"/ws/close/999", http.StatusBadRequest},       // as its GET
		{"/ws/room/bad%20name", http.StatusBadRequest}, // as its GET
	} {
		if resp, _ := wstest.H2Connect(t, client, base+tt.path, nil); resp.StatusCode != tt.status {
			t.Errorf("CONNECT %s: %s, want %d", tt.path, resp.Status, tt.status)
		}
	}

	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	m := metricsScrape(fams)
	for _, c := range []struct {
		outcome, proto string
		want           float64
	}{{"accepted", "HTTP/2.0", 3}, {"accepted", "HTTP/1.1", 0}, {"bad_request", "HTTP/2.0", 1 /* the room name */}} {
		if got, _ := m.value("wschan_handshakes_total", "outcome", c.outcome, "proto", c.proto); got != c.want {
			t.Errorf("wschan_handshakes_total{outcome=%s,proto=%s} = %v, want %v", c.outcome, c.proto, got, c.want)
		}
	}
	if n := ln.n.Load(); n != 1 {
		t.Errorf("%d TCP connections, want 1 for every request and WebSocket", n)
	}

	stop() // drain: each HTTP/2 WebSocket gets 1001
	for i, raw := range raws {
		if code, reason := raw.ReadClose(); code != 1001 {
			t.Errorf("socket %d: close %d %q, want 1001", i, code, reason)
		}
		_ = raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 8, Masked: true, Payload: wstest.ClosePayload(1001, "")})
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	done <- nil // for the cleanup
}
