package wstest

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Frame is one WebSocket frame as written or read by Raw, byte for byte:
// nothing is validated, so tests can send what no conforming peer would.
type Frame struct {
	Fin     bool
	RSV     byte // the three reserved bits, 0-7
	Opcode  byte
	Masked  bool
	Payload []byte
	// Length, when non-zero, is written as the 64-bit length instead of
	// len(Payload) (to claim lengths that are not sent).
	Length uint64
}

// Raw is a WebSocket peer speaking frames directly on a TCP connection, for
// testing how the other side handles broken input.
type Raw struct {
	Conn net.Conn
	br   *bufio.Reader
	t    testing.TB
}

// DialRaw performs a valid client handshake to wsURL (extra headers
// optional) and returns the raw connection, or fails the test.
func DialRaw(t testing.TB, wsURL string, header http.Header) *Raw {
	t.Helper()
	return dialRaw(t, wsURL, header, 0)
}

// DialRawReadBuffer is DialRaw with the socket's receive buffer set to
// about rcvbuf bytes before the handshake (the kernel may round it up),
// for a peer that reads slowly: little can pile up on its side, so the
// server feels its pace soon.
func DialRawReadBuffer(t testing.TB, wsURL string, rcvbuf int) *Raw {
	t.Helper()
	return dialRaw(t, wsURL, nil, rcvbuf)
}

func dialRaw(t testing.TB, wsURL string, header http.Header, rcvbuf int) *Raw {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	if tc, ok := c.(*net.TCPConn); ok && rcvbuf > 0 {
		if err := tc.SetReadBuffer(rcvbuf); err != nil {
			_ = c.Close()
			t.Fatalf("raw dial: receive buffer: %v", err)
		}
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", u.RequestURI(), u.Host)
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("raw handshake write: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("raw handshake read: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: status %d", resp.StatusCode)
	}
	return &Raw{Conn: c, br: br, t: t}
}

// AcceptKey computes Sec-WebSocket-Accept for key.
func AcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// RawServer listens on loopback and, for each connection, completes the
// server handshake (offering protocol if non-empty) and calls serve with
// the raw connection. It returns the ws:// URL.
func RawServer(t testing.TB, serve func(r *Raw)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil {
				_ = c.Close()
				continue
			}
			fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				AcceptKey(req.Header.Get("Sec-WebSocket-Key")))
			serve(&Raw{Conn: c, br: br, t: t})
			_ = c.Close()
		}
	}()
	return "ws://" + ln.Addr().String()
}

// Encode returns the bytes of f on the wire.
func (f Frame) Encode() []byte {
	var out []byte
	b0 := f.Opcode & 0x0f
	if f.Fin {
		b0 |= 0x80
	}
	b0 |= (f.RSV & 7) << 4
	out = append(out, b0)
	var mask byte
	if f.Masked {
		mask = 0x80
	}
	n := uint64(len(f.Payload))
	switch {
	case f.Length != 0:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, f.Length)
	case n <= 125:
		out = append(out, mask|byte(n))
	case n <= 0xffff:
		out = append(out, mask|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mask|127)
		out = binary.BigEndian.AppendUint64(out, n)
	}
	p := append([]byte(nil), f.Payload...)
	if f.Masked {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, key[:]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
	}
	return append(out, p...)
}

// Write sends raw bytes.
func (r *Raw) Write(p []byte) error {
	_, err := r.Conn.Write(p)
	return err
}

// WriteFrame sends f.
func (r *Raw) WriteFrame(f Frame) error { return r.Write(f.Encode()) }

// ReadFrame reads one frame (unmasking it if needed).
func (r *Raw) ReadFrame() (Frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Fin: h[0]&0x80 != 0, RSV: (h[0] >> 4) & 7, Opcode: h[0] & 0x0f, Masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	var key [4]byte
	if f.Masked {
		if _, err := io.ReadFull(r.br, key[:]); err != nil {
			return Frame{}, err
		}
	}
	if n > 64<<20 {
		return Frame{}, fmt.Errorf("frame of %d bytes is too big for a test", n)
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, f.Payload); err != nil {
		return Frame{}, err
	}
	if f.Masked {
		for i := range f.Payload {
			f.Payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// ReadClose reads frames until a close frame and returns its status code
// (1005 when it has none), or -1 if the connection ended first.
func (r *Raw) ReadClose() (code int, reason string) {
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return -1, err.Error()
		}
		if f.Opcode != 0x8 {
			continue
		}
		if len(f.Payload) < 2 {
			return 1005, ""
		}
		return int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
	}
}

// ClosePayload builds a close frame body.
func ClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}
