package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// What a server reading handshakes early (the poll engine over plain TCP,
// early.go) must do as the http.Server did. The tests run on every engine:
// the goroutine engine is the reference.

const upgradeRequest = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// A client that sends its first message in the same packet as its
// handshake gets the message echoed.
func TestHandshakeWithFrameBehind(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	frame := wstest.Frame{Fin: true, Opcode: 0x1, Masked: true, Payload: []byte("right behind the handshake")}.Encode()
	c := dialWrite(t, strings.TrimPrefix(srv.URL, "http://"), upgradeRequest+string(frame))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %v, %v", resp, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wstest.AcceptKey("dGhlIHNhbXBsZSBub25jZQ==") {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	if hdr[0] != 0x81 || string(payload) != "right behind the handshake" {
		t.Fatalf("echo %#x %q", hdr[0], payload)
	}
}

// A handshake that arrives a byte at a time (the end of the head split
// across reads at every point) is answered as one that arrives whole.
func TestHandshakeByteByByte(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	c := dialWrite(t, strings.TrimPrefix(srv.URL, "http://"), "")
	for i := range len(upgradeRequest) {
		if _, err := c.Write([]byte{upgradeRequest[i]}); err != nil {
			t.Fatalf("byte %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %v, %v", resp, err)
	}
	frame := wstest.Frame{Fin: true, Opcode: 0x2, Masked: true, Payload: []byte{1, 2, 3}}.Encode()
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	var echo [5]byte
	if _, err := io.ReadFull(br, echo[:]); err != nil || string(echo[:]) != "\x82\x03\x01\x02\x03" {
		t.Fatalf("echo %q, %v", echo, err)
	}
}

// Clients that send a whole upgrade request and reset the connection at
// once leave the server serving the others (the handshake finds no peer
// address; it must not take the server down).
func TestHandshakeThenReset(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	addr := strings.TrimPrefix(srv.URL, "http://")
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, upgradeRequest); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}
	ch := wstest.Dial(t, srv.WS+"/ws", nil)
	if err := ch.SendText(t.Context(), "still here"); err != nil {
		t.Fatal(err)
	}
	if m, err := ch.Read(t.Context()); err != nil || string(m.Data) != "still here" {
		t.Fatalf("echo %q, %v", m.Data, err)
	}
}

// A refused upgrade gets a whole HTTP answer (status, headers, body) and
// the connection ends; a request that is not an upgrade still gets the
// page on a connection that stays open.
func TestRefusedUpgradeAnswer(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{AllowedOrigins: []string{"example.com"}})
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := dialWrite(t, addr, strings.Replace(upgradeRequest, "Host: x\r\n", "Host: x\r\nOrigin: https://evil.example\r\n", 1))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "origin") {
		t.Fatalf("answer %d %q, %v; want 403 naming the origin", resp.StatusCode, body, err)
	}

	// Two plain requests on one connection: the second is served too.
	p := dialWrite(t, addr, "")
	_ = p.SetReadDeadline(time.Now().Add(10 * time.Second))
	pr := bufio.NewReader(p)
	for i := range 2 {
		if _, err := io.WriteString(p, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(pr, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %v, %v", i, resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// Oversized request heads get the http.Server's 431.
func TestOversizedHandshake(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Replace(upgradeRequest, "Host: x\r\n", "Host: x\r\nX-Filler: "+strings.Repeat("a", 40<<10)+"\r\n", 1)
	go io.WriteString(c, big) // the server may answer before it has read it all
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("answer %v, %v; want 431", resp, err)
	}
}

// A server stops at once with clients that are halfway through their
// handshake (it does not wait out the handshake timeout).
func TestServeReturnsWithHandshakesHalfSent(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{HandshakeTimeout: time.Hour})
	addr := strings.TrimPrefix(srv.URL, "http://")
	var conns []net.Conn
	for range 5 {
		c := dialWrite(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\n")
		conns = append(conns, c)
	}
	// One whole WebSocket beside them, so that the drain has work too.
	ch := wstest.Dial(t, srv.WS+"/ws", nil)
	srv.stop()
	select {
	case err := <-srv.done:
		srv.done <- err // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return with half-sent handshakes open")
	}
	wstest.WaitDone(t, ch)
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != wschan.StatusGoingAway {
		t.Fatalf("open connection ended with %v, want 1001", ch.Err())
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("half-sent handshake %d not closed: %v", i, err)
		}
	}
}

// Bytes that cannot be an HTTP request (a TLS hello sent to a plain
// server, a malformed request line) get the http.Server's answer at once,
// not silence until the handshake timeout: clients such as `wschan
// connect` tell the user from that answer that the server does not speak
// TLS.
func TestNotHTTPAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{HandshakeTimeout: time.Hour})
	addr := strings.TrimPrefix(srv.URL, "http://")
	t.Run("tls hello", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err = tls.Client(c, &tls.Config{InsecureSkipVerify: true}).HandshakeContext(ctx)
		if _, ok := errors.AsType[tls.RecordHeaderError](err); !ok {
			t.Fatalf("TLS handshake with a plain server: %v; want a record header error (a plain answer)", err)
		}
	})
	t.Run("bad request line", func(t *testing.T) {
		c := dialWrite(t, addr, "HELLO\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("answer %v, %v; want 400 at once", resp, err)
		}
	})
}

// dialWrite connects to addr, sends s, and closes the connection at the
// end of the test.
func dialWrite(t *testing.T, addr, s string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	return c
}
