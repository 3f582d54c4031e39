package wschan

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan/internal/frame"
)

// FuzzParserMatchesEngine feeds the same bytes, split at fuzzed points,
// to the incremental parser (internal/frame) and to a server Channel on the
// engine the library runs on today, and requires the same messages, in
// order, and the same close code: the peer's (from its close frame), the
// one this side failed the connection with, or 1006 when the bytes simply
// ran out.
func FuzzParserMatchesEngine(f *testing.F) {
	M := func(fin bool, rsv, op byte, p []byte) []byte {
		return maskedFrame(fin, rsv, op, p)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, seed := range [][]byte{
		cat(M(true, 0, 1, []byte("Hello")), M(true, 0, 2, []byte{0, 1, 2})),
		cat(M(false, 0, 1, []byte("frag")), M(true, 0, 9, []byte("p")), M(true, 0, 0, []byte("ment"))),
		cat(M(true, 0, 1, []byte("a")), M(true, 2, 1, []byte("b"))),
		cat(M(false, 0, 1, []byte{0xce}), M(true, 0, 0, []byte{0xba})),
		cat(M(false, 0, 1, []byte{0xff}), M(true, 0, 0xb, nil)),
		cat(M(true, 0, 2, make([]byte, 300))),
		cat(M(true, 0, 8, []byte{0x03, 0xe8, 'o', 'k'}), M(true, 0, 1, []byte("after"))),
		cat(M(true, 0, 8, []byte{0x03, 0xe8, 0xff})),
		cat(M(true, 0, 8, []byte{0x03})),
		cat(M(true, 0, 0, []byte("x"))),
	} {
		f.Add(seed, []byte{7})
		f.Add(seed, []byte{1, 3})
	}
	const limit = 200
	f.Fuzz(func(t *testing.T, stream, chops []byte) {
		want := engineRun(t, stream, chops, limit, false)
		got, _ := parserRun(stream, chops, limit, false)
		if got.String() != want.String() {
			t.Fatalf("stream %x in chops %v:\nparser %s\nengine %s", stream, chops, got, want)
		}
	})
}

// FuzzParserMatchesEngineDeflate is FuzzParserMatchesEngine with
// permessage-deflate negotiated (context takeover both ways, as the
// library configures the engine): the parser and a frame.Inflater must
// deliver the same messages and close with the same code as the engine.
//
// One difference is allowed, where the engine departs from RFC 7692: with
// deflate negotiated, gws v1.8.9 ignores RSV2 and RSV3, and RSV1 on
// continuation and control frames, where section 6 has the connection
// failed (the parser does: 1002). When the parser fails for that, the
// engine must have delivered the same messages up to there.
func FuzzParserMatchesEngineDeflate(f *testing.F) {
	M := func(fin bool, rsv, op byte, p []byte) []byte {
		return maskedFrame(fin, rsv, op, p)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	// Seeds are compressed as a client would, with the context of the
	// seed's messages before (the engine negotiates context takeover): z
	// starts a seed's context, d goes on with it.
	var d *frame.Deflater
	z := func(p []byte) []byte { d = frame.NewDeflater(12, true); return d.Deflate(nil, p) }
	flipped := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i%len(b)] ^= 0x55; return b }
	var final bytes.Buffer // a deflate stream that ends in a final block
	fw, _ := flate.NewWriter(&final, flate.BestSpeed)
	_, _ = fw.Write([]byte("final"))
	_ = fw.Close()
	hello := z([]byte("hello, hello"))
	helloAgain := d.Deflate(nil, []byte("hello, hello"))
	long := z(bytes.Repeat([]byte("0123456789"), 15))
	mid := z(bytes.Repeat([]byte("0123456789"), 50)) // over the read limit, within the engine's
	bomb := z(make([]byte, 5000))
	small := z([]byte{0, 1, 2})
	after := d.Deflate(nil, []byte("after"))
	for _, seed := range [][]byte{
		cat(M(true, 4, 1, hello), M(true, 4, 1, helloAgain)),
		cat(M(true, 4, 2, small), M(true, 0, 1, []byte("plain")), M(true, 4, 1, after)),
		cat(M(false, 4, 1, long[:len(long)/2]), M(true, 0, 9, []byte("p")), M(true, 0, 0, long[len(long)/2:])),
		cat(M(true, 4, 2, bomb)),
		cat(M(true, 4, 2, mid)),
		cat(M(true, 4, 1, z([]byte("ok"))), M(true, 4, 1, flipped(d.Deflate(nil, []byte("corrupt data here")), 3))),
		cat(M(true, 4, 1, long[:len(long)-3])),
		cat(M(true, 4, 1, z([]byte{'a', 0xff, 'b'}))),
		cat(M(true, 4, 2, z(nil)), M(true, 4, 2, []byte{0})),
		cat(M(true, 4, 1, append(final.Bytes(), 0xde, 0xad))),
		cat(M(false, 4, 1, z([]byte("x"))), M(true, 4, 0, nil)),
		cat(M(true, 4, 9, nil), M(true, 2, 1, []byte("rsv2"))),
		cat(M(true, 4, 8, []byte{0x03, 0xe8})),
		cat(M(true, 0, 8, []byte{0x03, 0xe8}), M(true, 4, 1, z([]byte("after close")))),
	} {
		f.Add(seed, []byte{7})
		f.Add(seed, []byte{1, 3})
		f.Add(seed, []byte{255})
	}
	const limit = 200
	f.Fuzz(func(t *testing.T, stream, chops []byte) {
		want := engineRun(t, stream, chops, limit, true)
		got, rsv := parserRun(stream, chops, limit, true)
		if rsv && len(got.msgs) <= len(want.msgs) && slices.Equal(got.msgs, want.msgs[:len(got.msgs)]) {
			return // the engine ignores reserved bits that the RFC has fail the connection
		}
		if got.String() != want.String() {
			t.Fatalf("stream %x in chops %v:\nparser %s\nengine %s", stream, chops, got, want)
		}
	})
}

// runResult is what one side made of a stream.
type runResult struct {
	msgs []string // "text:..." or "binary:<hex>"
	code int
}

func (r runResult) String() string { return fmt.Sprintf("%q then %d", r.msgs, r.code) }

func describe(typ MessageType, data []byte) string {
	if typ == Text {
		return "text:" + string(data)
	}
	return fmt.Sprintf("binary:%x", data)
}

// parserRun feeds stream to a frame.Parser in the given chops, and, with
// deflate, inflates compressed messages with a frame.Inflater. The limit
// policy is the library's: frames and inflated messages are held to the
// engine's limit, whole messages to the read limit. rsv reports a failure
// for reserved bits that the engine does not check with deflate on.
func parserRun(stream, chops []byte, limit int, deflate bool) (_ runResult, rsv bool) {
	stream = bytes.Clone(stream) // Feed unmasks in place
	p := frame.NewParser(frame.Config{Masked: true, MaxMessage: engineLimit(limit), Deflate: deflate})
	inf := frame.NewInflater(12, true) // as the engine negotiates
	var r runResult
	emit := func(ev frame.Event) error {
		switch ev.Kind {
		case frame.Text, frame.Binary:
			if ev.Compressed {
				data, err := inf.Inflate(nil, ev.Data, engineLimit(limit))
				if err != nil {
					return err
				}
				ev.Data = data
			}
			if len(ev.Data) > limit {
				return &frame.Error{Code: int(StatusMessageTooBig), Reason: "message too big"}
			}
			// The size first, then the text, as wsconn.message does.
			if ev.Compressed && ev.Kind == frame.Text && !utf8.Valid(ev.Data) {
				return &frame.Error{Code: frame.CodeInvalidPayload, Reason: "invalid UTF-8"}
			}
			typ := Binary
			if ev.Kind == frame.Text {
				typ = Text
			}
			r.msgs = append(r.msgs, describe(typ, ev.Data))
		case frame.Close:
			r.code = ev.Code
		}
		return nil
	}
	for i := 0; len(stream) > 0; i++ {
		n := min(len(stream), chopAt(chops, i))
		err := p.Feed(stream[:n], emit)
		stream = stream[n:]
		var fe *frame.Error
		switch {
		case errors.As(err, &fe):
			rsv := deflate && fe.Code == frame.CodeProtocolError &&
				(strings.Contains(fe.Reason, "RSV") || strings.Contains(fe.Reason, "reserved bits"))
			return runResult{r.msgs, fe.Code}, rsv
		case r.code != 0: // the peer closed: what follows is not read
			return r, false
		}
	}
	if r.code == 0 {
		r.code = int(StatusAbnormalClosure)
	}
	return r, false
}

func chopAt(chops []byte, i int) int {
	if len(chops) == 0 {
		return 1
	}
	return max(1, int(chops[i%len(chops)]))
}

// engineRun runs a server Channel (callback mode, no keepalive) over a
// connection that serves stream in the given chops, then ends.
func engineRun(t *testing.T, stream, chops []byte, limit int, deflate bool) runResult {
	conn := &chopConn{in: stream, chops: chops}
	var r runResult
	set := settings{
		readLimit:    limit,
		closeTimeout: time.Second,
		onMessage:    func(_ *Channel, m Message) { r.msgs = append(r.msgs, describe(m.Type, m.Data)) },
	}
	ch := newChannel(set, false)
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	if deflate {
		req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
	}
	e, err := acceptGWS(conn, bufio.NewReader(conn), req, "", deflate, limit)
	if err != nil {
		t.Fatal(err)
	}
	c := newWSConn(ch, e, "")
	ch.attach(c)
	c.run()
	<-ch.Done()
	r.code = int(ch.CloseCode())
	if ce, ok := errors.AsType[*CloseError](ch.Err()); ok && ce.Remote && r.code == int(StatusNoStatusReceived) {
		r.code = 1005
	}
	return r
}

// chopConn serves in, a chop at a time, then EOF; writes are dropped.
type chopConn struct {
	net.Conn
	in    []byte
	chops []byte
	i     int
}

func (c *chopConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.in), chopAt(c.chops, c.i))
	c.i++
	copy(p, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}

func (c *chopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chopConn) Close() error                     { return nil }
func (c *chopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *chopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *chopConn) SetDeadline(time.Time) error      { return nil }
func (c *chopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chopConn) SetWriteDeadline(time.Time) error { return nil }

// maskedFrame encodes one client frame with a fixed mask.
func maskedFrame(fin bool, rsv, op byte, p []byte) []byte {
	b0 := op & 0x0f
	if fin {
		b0 |= 0x80
	}
	b0 |= (rsv & 7) << 4
	out := []byte{b0}
	switch n := len(p); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	default:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key[:]...)
	for i, b := range p {
		out = append(out, b^key[i&3])
	}
	return out
}
