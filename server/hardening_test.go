package server_test

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// The abuse a public echo server meets, case by case. Each case asserts the
// server's exact answer and then that the server still serves everyone else
// and holds nothing for the abuser (healthy).
//
// Frame-level protocol violations (unmasked frames, RSV bits, unknown
// opcodes, bad control frames and continuations, invalid UTF-8 whole or split
// across fragments, 64-bit lengths with the top bit set or claiming 1 TiB,
// bad close payloads) are in the library's TestServerFailsBrokenClients;
// slowloris headers, clients that do not read their echoes and peers that
// never answer pings are in TestLimits.

// upgrade is a valid handshake's header block, without the request line.
const upgrade = "Host: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

func TestHandshakeAbuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		request string
		status  int
		header  string // header the answer must carry, "Name: value"
		body    string // text the answer's body must contain
	}{
		{"HTTP/1.0", "GET /ws HTTP/1.0\r\n" + upgrade + "\r\n", http.StatusBadRequest, "", "needs HTTP/1.1"},
		{"HTTP/2.0 on a plain socket", "GET /ws HTTP/2.0\r\n" + upgrade + "\r\n", http.StatusHTTPVersionNotSupported, "", ""},
		{"no Sec-WebSocket-Key", "GET /ws HTTP/1.1\r\n" + strings.Replace(upgrade, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1) + "\r\n",
			http.StatusBadRequest, "", "Sec-WebSocket-Key"},
		{"wrong version", "GET /ws HTTP/1.1\r\n" + strings.Replace(upgrade, "Version: 13", "Version: 8", 1) + "\r\n",
			http.StatusUpgradeRequired, "Sec-Websocket-Version: 13", ""},
		{"no Host", "GET /ws HTTP/1.1\r\n" + strings.Replace(upgrade, "Host: 127.0.0.1\r\n", "", 1) + "\r\n", http.StatusBadRequest, "", "Host"},
		{"oversized headers", "GET /ws HTTP/1.1\r\n" + upgrade + "X-Padding: " + strings.Repeat("a", 32<<10) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge, "", ""},
		{"not HTTP", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello on a plain port\r\n\r\n", http.StatusBadRequest, "", ""},
		{"POST upgrade", "POST /ws HTTP/1.1\r\n" + upgrade + "Content-Length: 0\r\n\r\n", http.StatusMethodNotAllowed, "", ""},
	}
	srv := start(t, server.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte(tt.request)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no HTTP answer: %v", err)
			}
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.header != "" {
				name, value, _ := strings.Cut(tt.header, ": ")
				if got := resp.Header.Get(name); got != value {
					t.Errorf("%s: %q, want %q", name, got, value)
				}
			}
			if !strings.Contains(body.String(), tt.body) {
				t.Errorf("body %q does not say %q", body, tt.body)
			}
			healthy(t, srv)
		})
	}
}

func TestFrameAbuse(t *testing.T) {
	t.Parallel()
	ping := func(p string) []byte {
		return wstest.Frame{Fin: true, Opcode: 0x9, Masked: true, Payload: []byte(p)}.Encode()
	}
	t.Run("ping flood is rate limited like messages", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{MessageRate: 1, MessageBurst: 20, LimitLoopback: true})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		if err := raw.Write(bytes.Repeat(ping("flood"), 200)); err != nil {
			t.Fatal(err)
		}
		pongs := 0
		for {
			f, err := raw.ReadFrame()
			if err != nil {
				t.Fatalf("connection ended after %d pongs without a close frame: %v", pongs, err)
			}
			if f.Opcode == 0xa {
				pongs++
				continue
			}
			if f.Opcode != 0x8 {
				t.Fatalf("opcode %#x in answer to pings", f.Opcode)
			}
			code := int(f.Payload[0])<<8 | int(f.Payload[1])
			if code != 1008 || !strings.Contains(string(f.Payload[2:]), "pings included") {
				t.Fatalf("close %d %q, want 1008 naming the rate", code, f.Payload[2:])
			}
			raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x8, Masked: true, Payload: f.Payload[:2]})
			break
		}
		// The burst is 20; a token refills each second the flood takes.
		if pongs < 20 || pongs > 25 {
			t.Fatalf("%d pongs before the close, want the burst of 20", pongs)
		}
		healthy(t, srv)
	})
	t.Run("ping flood from a peer that never reads is dropped", func(t *testing.T) {
		t.Parallel()
		// Without a rate limit the pongs pile up until the server's read loop
		// blocks writing one; the keepalive still ends the connection.
		srv := start(t, server.Config{MessageRate: -1, PingInterval: 200 * time.Millisecond, PingTimeout: time.Second})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		if tc, ok := raw.Conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		flood := bytes.Repeat(ping(strings.Repeat("p", 125)), 64)
		_ = raw.Conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		done := make(chan int)
		go func() {
			n := 0
			for raw.Write(flood) == nil {
				n++
			}
			done <- n
		}()
		waitMetric(t, srv, `wschan_close_codes_total{code="1006",direction="none"} 1`)
		waitMetric(t, srv, "wschan_connections_open 0")
		raw.Conn.Close()
		<-done
		healthy(t, srv)
	})
	t.Run("client resets the connection mid-frame", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		frame := wstest.Frame{Fin: true, Opcode: 0x2, Masked: true, Payload: make([]byte, 1000)}.Encode()
		if err := raw.Write(frame[:100]); err != nil {
			t.Fatal(err)
		}
		waitMetric(t, srv, "wschan_connections_open 1")
		tc := raw.Conn.(*net.TCPConn)
		_ = tc.SetLinger(0) // Close sends RST
		tc.Close()
		waitMetric(t, srv, `wschan_close_codes_total{code="1006",direction="none"} 1`)
		waitMetric(t, srv, "wschan_connections_open 0")
		healthy(t, srv)
	})
	t.Run("client half-closes mid-frame", func(t *testing.T) {
		t.Parallel()
		srv := start(t, server.Config{})
		raw := wstest.DialRaw(t, srv.WS+"/ws", nil)
		frame := wstest.Frame{Fin: true, Opcode: 0x1, Masked: true, Payload: []byte("cut short")}.Encode()
		if err := raw.Write(frame[:5]); err != nil {
			t.Fatal(err)
		}
		_ = raw.Conn.(*net.TCPConn).CloseWrite()
		// The server ends its side too: no close frame can be exchanged.
		_ = raw.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			f, err := raw.ReadFrame()
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("server kept a half-closed connection open")
				}
				break
			}
			t.Fatalf("server sent opcode %#x %q to a peer that is gone", f.Opcode, f.Payload)
		}
		waitMetric(t, srv, `wschan_close_codes_total{code="1006",direction="none"} 1`)
		waitMetric(t, srv, "wschan_connections_open 0")
		healthy(t, srv)
	})
}

// healthy checks the server still echoes for a fresh client and holds no
// connection besides the checker's own.
func healthy(t *testing.T, srv *running) {
	t.Helper()
	ch := wstest.Dial(t, srv.WS+"/ws", nil)
	if err := ch.SendText(t.Context(), "still there?"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "still there?" {
		t.Fatalf("echo after abuse: %q", m.Data)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz %d after abuse", code)
	}
	if err := ch.Close(wschan.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, srv, "wschan_connections_open 0")
}
