package wschan_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// frames splits msg into text frames at the given cut points (a cut
// outside the message is ignored), with a ping between the first two.
func textFrames(msg []byte, cuts []int, masked bool) []byte {
	var out []byte
	prev := 0
	op := byte(opText)
	first := true
	for _, c := range append(cuts, len(msg)) {
		if c < prev || c > len(msg) {
			continue
		}
		fin := c == len(msg)
		out = append(out, wstest.Frame{Fin: fin, Opcode: op, Masked: masked, Payload: msg[prev:c]}.Encode()...)
		if first && !fin {
			out = append(out, wstest.Frame{Fin: true, Opcode: opPing, Masked: masked, Payload: []byte("p")}.Encode()...)
		}
		first = false
		op = opCont
		prev = c
		if fin {
			break
		}
	}
	return out
}

// feedChopped feeds stream in reads of the given sizes (cycled).
// It reports whether the watcher found the stream valid.
func feedChopped(w *wschan.FrameWatch, stream []byte, chops []int) bool {
	for i := 0; len(stream) > 0; i++ {
		n := 1
		if len(chops) > 0 {
			n = max(1, chops[i%len(chops)])
		}
		n = min(n, len(stream))
		if _, v := w.Feed(stream[:n]); v != wschan.FrameOK {
			return false
		}
		stream = stream[n:]
	}
	return true
}

func FuzzFrameWatchText(f *testing.F) {
	f.Add([]byte("hello, 世界 €𝄞"), []byte{3, 7}, []byte{1}, true)
	f.Add([]byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80}, []byte{2, 5}, []byte{3, 1}, false)
	f.Add(bytes.Repeat([]byte("é"), 300), []byte{1, 200}, []byte{5, 50, 1}, true)
	f.Fuzz(func(t *testing.T, msg, cutBytes, chopBytes []byte, masked bool) {
		var cuts, chops []int
		for _, c := range cutBytes {
			cuts = append(cuts, int(c))
		}
		for _, c := range chopBytes {
			chops = append(chops, int(c))
		}
		stream := append(textFrames(msg, cuts, masked),
			wstest.Frame{Fin: true, Opcode: opBinary, Masked: masked, Payload: []byte{0xff}}.Encode()...)
		valid := utf8.Valid(msg)
		w := wschan.NewFrameWatch(masked, false, 1<<20)
		if ok := feedChopped(w, stream, chops); valid && !ok {
			t.Fatalf("valid message %q (cuts %v, chops %v) reported invalid", msg, cuts, chops)
		}
		// Byte by byte every message spans reads, so an invalid one must be caught.
		w1 := wschan.NewFrameWatch(masked, false, 1<<20)
		if ok := feedChopped(w1, stream, nil); ok != valid {
			t.Fatalf("byte-by-byte feed of %q: ok %v, want %v", msg, ok, valid)
		}
	})
}

// TestInvalidUTF8FailsFast checks the connection is failed with 1007 when
// the bad bytes arrive, not when the message is complete: the rest of the
// message is never sent.
func TestInvalidUTF8FailsFast(t *testing.T) {
	t.Parallel()
	valid := []byte("κόσμε")
	tests := []struct {
		name string
		data []byte
	}{
		{"bad first fragment", wstest.Frame{Opcode: opText, Masked: true, Payload: []byte{0xff, 0x41}}.Encode()},
		{"bad second fragment (6.4.1)", append(
			wstest.Frame{Opcode: opText, Masked: true, Payload: valid}.Encode(),
			wstest.Frame{Opcode: opCont, Masked: true, Payload: []byte{0xf4, 0x90, 0x80, 0x80}}.Encode()...)},
		{"bad chop of one frame (6.4.3)", func() []byte {
			f := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: append(append(bytes.Clone(valid), 0xf4, 0x90, 0x80, 0x80), bytes.Repeat([]byte("a"), 100)...)}.Encode()
			return f[:len(f)-100] // the rest of the frame is never sent
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, accepted := acceptedServer(t, nil)
			raw := wstest.DialRaw(t, u, nil)
			srv := serverChannel(t, accepted)
			if err := raw.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			if code, reason := raw.ReadClose(); code != 1007 {
				t.Fatalf("server answered %d %q, want 1007 before the message completes", code, reason)
			}
			wstest.WaitDone(t, srv)
			if wschan.CloseStatus(srv.Err()) != 1007 {
				t.Fatalf("server Err() = %v", srv.Err())
			}
		})
	}
	t.Run("client side, first frame in the handshake packet", func(t *testing.T) {
		t.Parallel()
		// Whether the second fragment arrives in the same read (checked on
		// delivery) or a later one (checked as it arrives), the answer is 1007.
		got := make(chan int, 1)
		u := wstest.RawServer(t, func(r *wstest.Raw) {
			_ = r.WriteFrame(wstest.Frame{Opcode: opText, Payload: []byte{0xc3}})
			_ = r.WriteFrame(wstest.Frame{Opcode: opCont, Payload: []byte{0x28}})
			code, _ := r.ReadClose()
			got <- code
		})
		ch := wstest.Dial(t, u, nil)
		wstest.WaitDone(t, ch)
		if ch.CloseCode() != 1007 {
			t.Fatalf("client CloseCode() = %v (%v), want 1007", ch.CloseCode(), ch.Err())
		}
		if code := <-got; code != 1007 {
			t.Fatalf("server received %d", code)
		}
	})
	t.Run("client side, valid text right behind the handshake", func(t *testing.T) {
		t.Parallel()
		msg := bytes.Repeat([]byte("€𝄞é"), 2000)
		u := wstest.RawServer(t, func(r *wstest.Raw) {
			stream := textFrames(msg, []int{1, 5000, 9001}, false)
			for len(stream) > 0 { // many small writes: many reads on the client
				n := min(777, len(stream))
				_ = r.Write(stream[:n])
				stream = stream[n:]
			}
			r.ReadClose()
		})
		ch := wstest.Dial(t, u, nil)
		m := wstest.Read(t, ch)
		if !bytes.Equal(m.Data, msg) {
			t.Fatalf("got %d bytes, want %d", len(m.Data), len(msg))
		}
	})
}

// BenchmarkFrameWatch measures the early UTF-8 check on a 16 KiB masked
// text frame that arrives in 4 KiB reads (the case it validates).
func BenchmarkFrameWatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"ascii", bytes.Repeat([]byte("x"), 16<<10)},
		{"mixed", wstest.RandomText(16<<10, 1)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			stream := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: tc.msg}.Encode()
			b.SetBytes(int64(len(tc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				w := wschan.NewFrameWatch(true, false, 1<<20)
				if !feedChopped(w, stream, []int{4096}) {
					b.Fatal("valid text refused")
				}
			}
		})
	}
}

// FuzzFrameWatchMatchesEngine feeds the same bytes to the frame watcher
// and to the engine, a byte at a time, as a server (masked frames) and as
// a client. Where the engine fails the connection, the watcher must have
// stopped at or before the start of the failing frame; where the watcher
// says a frame will be refused, the engine must refuse that frame and
// nothing before it.
func FuzzFrameWatchMatchesEngine(f *testing.F) {
	M := func(fin bool, rsv, op byte, p []byte) []byte {
		return wstest.Frame{Fin: fin, RSV: rsv, Opcode: op, Masked: true, Payload: p}.Encode()
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, seed := range [][]byte{
		cat(M(true, 0, opText, []byte("Hello")), M(true, 2, opText, []byte("x")), M(true, 0, opPing, nil)),
		cat(M(false, 0, opText, []byte("a")), M(true, 0, opCont, []byte("b")), M(false, 0, opCont, []byte("c"))),
		cat(M(true, 0, opBinary, nil), M(true, 0, 0xb, nil)),
		cat(M(false, 0, opBinary, []byte("12345678")), M(true, 0, opPing, []byte("p")), M(true, 0, opCont, bytes.Repeat([]byte("z"), 60))),
		cat(M(true, 0, opBinary, make([]byte, 65))),
		cat(M(false, 0, opPing, nil)),
		wstest.Frame{Fin: true, Opcode: opBinary, Masked: true, Length: 1 << 63}.Encode(),
		cat(M(true, 0, opBinary, []byte("ok")), wstest.Frame{Fin: true, Opcode: opBinary, Payload: []byte("unmasked")}.Encode()),
	} {
		f.Add(seed, []byte{1}, true)
		f.Add(seed, []byte{3, 50}, false)
	}
	const limit = 64
	f.Fuzz(func(t *testing.T, stream, chopBytes []byte, server bool) {
		if !server {
			stream = unmaskAll(stream)
		}
		failAt, how := engineOutcome(t, stream, server, limit)

		w := wschan.NewFrameWatch(server, false, limit)
		cut, verdict, off := len(stream), wschan.FrameOK, 0
		for i := 0; off < len(stream); i++ {
			n := 1
			if len(chopBytes) > 0 {
				n = max(1, int(chopBytes[i%len(chopBytes)]))
			}
			n = min(n, len(stream)-off)
			c, v := w.Feed(stream[off : off+n])
			if v != wschan.FrameOK {
				cut, verdict = off+c, v
				break
			}
			off += n
		}
		switch {
		case how == "failed" && cut >= failAt:
			t.Fatalf("engine failed at byte %d; the watcher let it through (verdict %d at %d)", failAt, verdict, cut)
		case verdict == wschan.FrameBad && how == "failed" && failAt <= cut:
			t.Fatalf("engine failed at byte %d, before the frame the watcher refused at %d", failAt, cut)
		case verdict == wschan.FrameBad && how == "closed" && failAt > cut,
			verdict == wschan.FrameBad && how == "eof" && frameEnd(stream, cut) <= uint64(len(stream)):
			t.Fatalf("the watcher refused the frame at %d; the engine read on to %d and %s", cut, failAt, how)
		}
	})
}

// frameEnd returns where the frame that holds byte at of stream ends (the
// watcher's cut falls inside the header of the frame it refuses when that
// header was split between reads), or MaxUint64 if its header is cut short.
func frameEnd(stream []byte, at int) uint64 {
	for i := 0; i < len(stream); {
		if i+2 > len(stream) {
			return math.MaxUint64
		}
		n := uint64(stream[i+1] & 0x7f)
		h := 2
		switch n {
		case 126:
			h = 4
		case 127:
			h = 10
		}
		if stream[i+1]&0x80 != 0 {
			h += 4
		}
		if i+h > len(stream) {
			return math.MaxUint64
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(stream[i+2:]))
		case 127:
			n = binary.BigEndian.Uint64(stream[i+2:])
		}
		end := uint64(i+h) + n
		if end < n || end > uint64(len(stream)) || end > uint64(at) {
			return end
		}
		i = int(end)
	}
	return math.MaxUint64
}

// engineOutcome runs the engine's read loop over stream, served a byte at
// a time, and reports how far it read and how it ended: "failed" (it
// refused a frame), "closed" (a close frame) or "eof".
func engineOutcome(t *testing.T, stream []byte, server bool, limit int) (at int, how string) {
	conn := &trickleConn{in: stream}
	var ws *gws.Conn
	h := &outcome{}
	if server {
		up := gws.NewUpgrader(h, &gws.ServerOption{ReadMaxPayloadSize: limit, Logger: quiet{}})
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
		var err error
		if ws, err = up.UpgradeFromConn(conn, bufio.NewReader(conn), r); err != nil {
			t.Fatal(err)
		}
	} else {
		conn.respond = true
		var err error
		ws, _, err = gws.NewClientFromConn(h, &gws.ClientOption{Addr: "ws://x/", ReadMaxPayloadSize: limit, Logger: quiet{}}, conn)
		if err != nil {
			t.Fatal(err)
		}
	}
	conn.pos = conn.skip // count from the first frame byte
	func() {
		defer func() {
			if r := recover(); r != nil {
				h.err = fmt.Errorf("panic: %v", r)
			}
		}()
		ws.ReadLoop()
	}()
	at = conn.pos - conn.skip
	var ce *gws.CloseError
	switch {
	case errors.Is(h.err, io.EOF), errors.Is(h.err, io.ErrUnexpectedEOF):
		return at, "eof"
	case errors.As(h.err, &ce):
		return at, "closed"
	}
	return at, "failed"
}

type outcome struct {
	gws.BuiltinEventHandler
	err error
}

func (o *outcome) OnClose(_ *gws.Conn, err error) { o.err = err }

type quiet struct{}

func (quiet) Error(...any) {}

// trickleConn serves in one byte per Read; as a server it first answers
// the engine's handshake request with a 101 response.
type trickleConn struct {
	net.Conn
	in       []byte
	pos      int
	skip     int // bytes of the handshake response before the frames
	respond  bool
	request  []byte
	answered bool
}

func (c *trickleConn) Read(p []byte) (int, error) {
	if c.pos >= len(c.in) {
		return 0, io.EOF
	}
	p[0] = c.in[c.pos]
	c.pos++
	return 1, nil
}

func (c *trickleConn) Write(p []byte) (int, error) {
	if c.respond && !c.answered {
		c.request = append(c.request, p...)
		if i := bytes.Index(c.request, []byte("\r\n\r\n")); i >= 0 {
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(c.request)))
			if err == nil {
				resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					wstest.AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"
				c.in = append([]byte(resp), c.in...)
				c.skip = len(resp)
			}
			c.answered = true
		}
	}
	return len(p), nil
}

func (c *trickleConn) Close() error                     { return nil }
func (c *trickleConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *trickleConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *trickleConn) SetDeadline(time.Time) error      { return nil }
func (c *trickleConn) SetReadDeadline(time.Time) error  { return nil }
func (c *trickleConn) SetWriteDeadline(time.Time) error { return nil }

// unmaskAll clears the mask bit of every frame header it can follow, so a
// masked seed becomes the server's version of the same frames.
func unmaskAll(stream []byte) []byte {
	out := bytes.Clone(stream)
	for i := 0; i+2 <= len(out); {
		masked := out[i+1]&0x80 != 0
		n := uint64(out[i+1] & 0x7f)
		h := 2
		switch n {
		case 126:
			if i+4 > len(out) {
				return out
			}
			n, h = uint64(binary.BigEndian.Uint16(out[i+2:])), 4
		case 127:
			if i+10 > len(out) {
				return out
			}
			n, h = binary.BigEndian.Uint64(out[i+2:]), 10
		}
		if !masked {
			i += h
		} else {
			if i+h+4 > len(out) {
				return out
			}
			out[i+1] &^= 0x80
			key := bytes.Clone(out[i+h : i+h+4])
			out = append(out[:i+h], out[i+h+4:]...)
			i += h
			for j := uint64(0); j < n && i < len(out); j++ {
				out[i] ^= key[j&3]
				i++
			}
			continue
		}
		if n > uint64(len(out)-i) {
			return out
		}
		i += int(n)
	}
	return out
}
