package frame

import (
	"bufio"
	"encoding/binary"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692), as the engine the library trusts (gws
// v1.8.9, configured with context takeover on both sides) does it, so that
// a peer sees no difference between the two engines. Where gws departs
// from the RFC, the doc comments below say so.
//
// Compression is github.com/klauspost/compress/flate, which gws uses: the
// same encoder at the same settings makes the same bytes.

// The window sizes gws negotiates when context takeover is on: 1<<12 =
// 4 KiB each way, whatever the client offers.
const (
	serverWindowBits = 12
	clientWindowBits = 12
)

// serverThreshold is the smallest message gws compresses when it does
// not keep its compression context between messages.
const serverThreshold = 512

// Params are the permessage-deflate parameters in force on a connection
// (RFC 7692, section 7.1).
type Params struct {
	// ServerNoContextTakeover: the server compresses each message on its
	// own; else with the messages before it as a dictionary.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover: the same for the client's messages.
	ClientNoContextTakeover bool
	// ServerMaxWindowBits: the server's messages refer back at most
	// 1<<ServerMaxWindowBits bytes (8 to 15).
	ServerMaxWindowBits int
	// ClientMaxWindowBits: the same for the client's messages.
	ClientMaxWindowBits int
}

// Negotiate answers a client's Sec-WebSocket-Extensions header, given as
// its values (http.Header.Values), as a server that offers
// permessage-deflate with context takeover on both sides. It reports
// whether the extension is accepted, its parameters, and the value of the
// response's Sec-WebSocket-Extensions header.
//
// The answer is exactly gws v1.8.9's, including where gws departs from RFC
// 7692 section 7.1:
//   - only the first header value is read, and the extension is accepted
//     when that value contains "permessage-deflate" anywhere (a second
//     offer, or a parameter that gws cannot read, does not refuse it);
//   - the parameters are read from every ";"-separated element of that
//     value, whichever offer they belong to; server_no_context_takeover
//     and client_no_context_takeover are honoured, the window bits the
//     client asks for are not;
//   - the answer always names server_max_window_bits=12 and
//     client_max_window_bits=12, even to a client that offered no
//     client_max_window_bits (section 7.1.2.2 forbids that; browsers and
//     Autobahn offer it).
func Negotiate(values []string) (p Params, response string, ok bool) {
	if len(values) == 0 || !strings.Contains(values[0], "permessage-deflate") {
		return Params{}, "", false
	}
	p = Params{ServerMaxWindowBits: serverWindowBits, ClientMaxWindowBits: clientWindowBits}
	for s := range strings.SplitSeq(values[0], ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(s), "=")
		switch name {
		case "server_no_context_takeover":
			p.ServerNoContextTakeover = true
		case "client_no_context_takeover":
			p.ClientNoContextTakeover = true
		}
	}
	return p, p.String(), true
}

// String returns p as a Sec-WebSocket-Extensions header value, in the
// order gws writes it.
func (p Params) String() string {
	s := "permessage-deflate"
	if p.ServerNoContextTakeover {
		s += "; server_no_context_takeover"
	}
	if p.ClientNoContextTakeover {
		s += "; client_no_context_takeover"
	}
	if p.ServerMaxWindowBits != 15 {
		s += "; server_max_window_bits=" + strconv.Itoa(p.ServerMaxWindowBits)
	}
	if p.ClientMaxWindowBits != 15 {
		s += "; client_max_window_bits=" + strconv.Itoa(p.ClientMaxWindowBits)
	}
	return s
}

// ServerThreshold is the smallest message a server compresses under p,
// as gws decides it: every message when it keeps its context (gws adds
// every message it sends to its window, compressed or not, so it must
// compress them all), else messages of 512 bytes or more.
func (p Params) ServerThreshold() int {
	if p.ServerNoContextTakeover {
		return serverThreshold
	}
	return 0
}

// flateTail ends every message given to the inflater: the 0x00 0x00 0xff
// 0xff that RFC 7692 section 7.2.2 has the sender strip, then an empty
// final stored block, so that the stream ends (as gws reads it).
var flateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Inflater inflates the compressed messages of one direction of one
// connection: the client's on a server, made with NewInflater(
// p.ClientMaxWindowBits, !p.ClientNoContextTakeover). It is not safe for
// concurrent use.
//
// Between messages an Inflater holds, besides itself (a few words), only
// its window with context takeover: the last 1<<windowBits bytes it
// inflated, which the next message may refer to (4 KiB as negotiated by
// Negotiate; allocated at the first message, up to that size). Without
// context takeover it holds nothing. The decompressor itself (about 40 KiB
// of tables and history) is taken from a pool for each message and given
// back.
type Inflater struct {
	takeover bool
	size     int    // the window's size
	window   []byte // with takeover: the end of what was inflated so far
}

// NewInflater returns an inflater for a peer that compresses with a
// window of 1<<windowBits bytes (8 to 15), keeping the context between
// messages if contextTakeover is set.
func NewInflater(windowBits int, contextTakeover bool) *Inflater {
	return &Inflater{takeover: contextTakeover, size: 1 << windowBits}
}

// inflateReaders pools decompressors: they are large and a message needs
// one only while it is being inflated.
var inflateReaders = sync.Pool{New: func() any {
	r := new(inflateReader)
	r.br = bufio.NewReaderSize(&r.src, 2048)
	r.fr = flate.NewReader(r.br)
	return r
}}

// inflateReader is a pooled decompressor with the input it reads from.
type inflateReader struct {
	fr  io.ReadCloser // implements flate.Resetter
	br  *bufio.Reader // over src: the decompressor's fast path for byte reads
	src tailReader
}

// tailReader reads a message, then flateTail.
type tailReader struct {
	msg  []byte
	tail []byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	if len(t.msg) == 0 {
		if len(t.tail) == 0 {
			return 0, io.EOF
		}
		n := copy(p, t.tail)
		t.tail = t.tail[n:]
		return n, nil
	}
	n := copy(p, t.msg)
	t.msg = t.msg[n:]
	return n, nil
}

// Inflate appends to dst the message compressed in src (an Event's Data
// when Compressed is set: the message's frames' payloads, without the
// tail) and returns the extended slice. A message that inflates to more
// than limit bytes is an *Error with code 1009 (CodeMessageTooBig), found
// without inflating more than limit+1 bytes (a negative limit counts as
// 0); corrupt or truncated data is
// an *Error with code 1007 (CodeInvalidPayload). After an error the
// inflater's context is lost: the connection must be failed.
//
// As gws does, Inflate reads the compressed data up to the end of its
// final block, if it has one, and ignores what follows.
func (f *Inflater) Inflate(dst, src []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	r := inflateReaders.Get().(*inflateReader)
	r.src = tailReader{msg: src, tail: flateTail[:]}
	r.br.Reset(&r.src)
	var dict []byte
	if f.takeover {
		dict = f.window
	}
	_ = r.fr.(flate.Resetter).Reset(r.br, dict) // copies dict; never fails
	start := len(dst)
	var err error
	for {
		got := len(dst) - start
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(max(1024, got, 2*len(src)), limit+1-got))
		}
		room := min(cap(dst)-len(dst), limit+1-got)
		n, rerr := r.fr.Read(dst[len(dst) : len(dst)+room])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			err = &Error{CodeMessageTooBig, "message inflates beyond the limit"}
			break
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = &Error{CodeInvalidPayload, "invalid compressed data: " + rerr.Error()}
			break
		}
	}
	r.src = tailReader{}
	r.br.Reset(&r.src)
	_ = r.fr.(flate.Resetter).Reset(r.br, nil)
	inflateReaders.Put(r)
	if err != nil {
		return dst[:start], err
	}
	if f.takeover {
		f.window = slide(f.window, dst[start:], f.size)
	}
	return dst, nil
}

// slide appends b to the window w of at most size bytes, dropping its
// oldest bytes, and returns it. Its array grows only to what it holds.
func slide(w, b []byte, size int) []byte {
	if len(b) >= size {
		b = b[len(b)-size:]
	}
	if keep := size - len(b); len(w) > keep {
		w = append(w[:0], w[len(w)-keep:]...)
	}
	if need := len(w) + len(b); need > cap(w) {
		w = append(make([]byte, 0, min(size, max(need, 2*cap(w)))), w...)
	}
	return append(w, b...)
}

// Deflater compresses the messages of one direction of one connection:
// the server's on a server, made with NewDeflater(p.ServerMaxWindowBits,
// !p.ServerNoContextTakeover). It compresses as gws does, with the same
// encoder: with a window under 32 KiB, klauspost/compress's windowed
// encoder; with 32 KiB, its level 1 (BestSpeed). It is not safe for
// concurrent use.
//
// Between messages a Deflater holds, besides itself, only its window with
// context takeover: the last 1<<windowBits bytes it compressed (4 KiB as
// negotiated by Negotiate). Without context takeover it holds nothing. The
// encoder (about 1 MiB with a 4 KiB window, measured; gws keeps 32 per
// upgrader) is taken from a pool for each message and given back.
type Deflater struct {
	takeover bool
	bits     int
	window   []byte
}

// NewDeflater returns a deflater that compresses with a window of
// 1<<windowBits bytes (8 to 15), keeping the context between messages if
// contextTakeover is set.
func NewDeflater(windowBits int, contextTakeover bool) *Deflater {
	return &Deflater{takeover: contextTakeover, bits: windowBits}
}

// deflateWriters pools encoders by window bits (index 8 to 15).
var deflateWriters [16]sync.Pool

// deflateWriter is a pooled encoder with the buffer it writes to.
type deflateWriter struct {
	fw  *flate.Writer
	out appendWriter
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func getDeflateWriter(bits int) *deflateWriter {
	if w, ok := deflateWriters[bits].Get().(*deflateWriter); ok {
		return w
	}
	w := new(deflateWriter)
	if bits == 15 {
		w.fw, _ = flate.NewWriter(nil, flate.BestSpeed)
	} else {
		w.fw, _ = flate.NewWriterWindow(nil, 1<<bits)
	}
	return w
}

// Deflate appends message src, compressed, to dst and returns the
// extended slice: the payload of a frame with RSV1 set, without the final
// 0x00 0x00 0xff 0xff (RFC 7692 section 7.2.1). An empty message
// compresses to one byte, 0x00.
func (d *Deflater) Deflate(dst, src []byte) []byte {
	w := getDeflateWriter(d.bits)
	w.out.b = dst
	var dict []byte
	if d.takeover {
		dict = d.window
	}
	w.fw.ResetDict(&w.out, dict)
	_, _ = w.fw.Write(src) // appendWriter does not fail
	_ = w.fw.Flush()
	dst = w.out.b
	if n := len(dst); n >= 4 && binary.BigEndian.Uint32(dst[n-4:]) == 0xffff {
		dst = dst[:n-4]
	}
	w.out.b = nil
	w.fw.ResetDict(nil, nil) // drops the references to dst and dict
	deflateWriters[d.bits].Put(w)
	if d.takeover {
		d.window = slide(d.window, src, 1<<d.bits)
	}
	return dst
}
