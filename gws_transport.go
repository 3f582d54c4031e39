package wschan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// gwsTransport is the net.Conn the gws engine reads and writes. It sits
// between the engine and the socket so that the channel, not the engine,
// decides:
//
//   - when the socket really closes: the engine closes its socket as soon as
//     it has written a close frame, which would cut the closing handshake
//     short; while hold is set, the engine's Close is ignored and the read
//     loop keeps running until the peer's close frame (or the deadline) ends
//     it;
//   - what close frame went out (ledger): every frame the engine writes is
//     one Write call, so a close frame is seen whole and its status code
//     recorded, and the engine's own close codes can be corrected;
//   - what the engine reads (guard): incoming frames are followed, and the
//     bytes from a frame the engine will fail the connection for are held
//     back until the messages before it are handled (see frameWatch);
//   - the handshake's bytes (hs): read-ahead served first, a header added to
//     the 101 response (or, over HTTP/2, the 101 kept off the wire), the
//     client's read cut at the response's end;
//   - when bytes last arrived, for the dead-peer check.
type gwsTransport struct {
	net.Conn

	hs     handshakeIO
	ledger closeLedger
	guard  readGuard

	upgraded atomic.Bool  // the handshake is over: writes are frames
	hold     atomic.Bool  // ignore the engine's Close (closing handshake, or handshake error body)
	lastRead atomic.Int64 // monotime of the last read that returned data
	readDead atomic.Bool  // the socket's read side failed: EOF, reset, closed

	closeOnce sync.Once
	closeErr  error

	// Writes after the handshake hold wmu: the engine's frames, and the
	// frames TrySend writes around the engine (try, made by the first).
	wmu sync.Mutex
	try *transportTry
}

// transportTry is a transport's state for TrySend: the socket, for one
// write attempt that does not wait, and the rest of a frame the socket
// took only part of, which a goroutine of its own writes out before any
// other frame.
type transportTry struct {
	raw  syscall.RawConn // nil when the connection has no socket of its own (TLS, HTTP/2)
	fn   func(fd uintptr) bool
	hb   [10]byte
	a, b []byte // what fn writes
	n    int    // what fn wrote
	err  error
	pend []byte
	kept atomic.Bool // pend is not empty (for tests)
}

// handshakeIO is the transport's part in the opening handshake.
type handshakeIO struct {
	pre []byte // bytes read ahead during the HTTP handshake, served first

	injectHeader string // "Name: value\r\n" added to the first write (the 101 response)

	// On an HTTP/2 stream (RFC 8441) the handshake's answer is a 200
	// that Accept sends through the ResponseWriter: the engine's 101
	// response is kept here instead of going on the wire.
	swallow  bool
	response []byte

	// On the client, the engine reads the handshake response through a
	// buffer of its own. Until the response's header block is over, reads
	// stop at its end (matched counts the "\r\n\r\n" seen so far), so
	// frames sent right behind it reach the engine through the guard.
	splitResponse bool
	matched       int
}

// readGuard follows incoming frames (see frameWatch); it is used only by
// the read loop's goroutine. When the watcher finds trouble, the read
// returns the bytes before it; the next read (the engine has handled
// those bytes) runs beforeFail, which lets the stream drain, then fail,
// which fails the connection with the trouble's code, and ends the
// engine's read loop. Nothing more is read from the socket.
type readGuard struct {
	watch      *frameWatch
	fail       func(code StatusCode, reason string)
	beforeFail func()
	trouble    *trouble
}

// closeLedger records the close frames of one connection: the one the
// channel asked for and the one that went out.
type closeLedger struct {
	mu         sync.Mutex
	sentClose  bool
	sentCode   StatusCode
	sentReason string
	ownSet     bool // the channel asked for a close frame: ownCode, ownReason
	ownCode    StatusCode
	ownReason  string
}

// trouble is what the watcher found: the connection fails with code.
type trouble struct {
	code   StatusCode
	reason string
	failed bool // fail has run
}

func (c *gwsTransport) Read(p []byte) (n int, err error) {
	if c.guard.trouble != nil {
		return c.readTrouble()
	}
	if len(c.hs.pre) > 0 {
		n = copy(p, c.hs.pre)
		c.hs.pre = c.hs.pre[n:]
	} else {
		n, err = c.Conn.Read(p)
		if n > 0 {
			c.lastRead.Store(monotime())
		}
		if err != nil && n == 0 && c.upgraded.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.readDead.Store(true)
		}
	}
	if c.hs.splitResponse && n > 0 {
		n = c.hs.cutResponse(p[:n])
	}
	if c.guard.watch != nil && n > 0 {
		if cut, v := c.guard.watch.feed(p[:n]); v != frameOK {
			w := c.guard.watch
			c.guard.watch = nil
			tr := &trouble{code: w.failCode, reason: w.failReason}
			if v == textBad {
				tr.code, tr.reason = StatusInvalidFramePayloadData, "invalid UTF-8"
			}
			c.guard.trouble = tr
			if cut > 0 {
				return cut, nil
			}
			return c.readTrouble()
		}
	}
	return n, err
}

// readTrouble fails the connection once the bytes before the trouble
// have been handled (the engine reads again only then).
func (c *gwsTransport) readTrouble() (int, error) {
	tr := c.guard.trouble
	if !tr.failed {
		tr.failed = true
		if c.guard.beforeFail != nil {
			c.guard.beforeFail()
		}
		c.guard.fail(tr.code, tr.reason)
	}
	return 0, errFailed
}

// cutResponse stops a client's read at the end of the handshake response's
// header block and keeps the rest for after the upgrade. It returns how
// much of b the read returns.
func (c *handshakeIO) cutResponse(b []byte) int {
	const end = "\r\n\r\n"
	for i, x := range b {
		switch {
		case x == end[c.matched]:
			c.matched++
		case x == '\r':
			c.matched = 1
		default:
			c.matched = 0
		}
		if c.matched == len(end) {
			c.splitResponse = false
			c.pre = append(bytes.Clone(b[i+1:]), c.pre...)
			return i + 1
		}
	}
	return len(b)
}

// startWatch follows incoming frames from now on (the handshake is over).
func (c *gwsTransport) startWatch(rules frameRules, fail func(StatusCode, string), beforeFail func()) {
	c.guard.watch = &frameWatch{rules: rules}
	c.guard.fail, c.guard.beforeFail = fail, beforeFail
}

// errFailed ends the engine's read loop once the guard has failed the
// connection.
var errFailed = errors.New("wschan: connection failed for what the peer sent")

func (c *gwsTransport) Write(p []byte) (int, error) {
	if !c.upgraded.Load() {
		if c.hs.swallow {
			c.hs.response = append(c.hs.response, p...)
			return len(p), nil
		}
		if c.hs.injectHeader != "" {
			return c.writeInjected(p)
		}
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writePending(); err != nil {
		return 0, err
	}
	if len(p) >= 2 && p[0]&0x0f == opClose {
		code, reason, ok := parseCloseFrame(p)
		own := ok && c.ledger.isOwn(code, reason)
		if !own && c.readDead.Load() {
			// The engine answers a transport failure (EOF mid-frame, reset)
			// with a close frame "1000 unexpected EOF". The peer is gone or
			// has stopped sending: the connection fails without a close
			// frame (1006 on both sides), as RFC 6455 7.1.5 describes.
			return len(p), nil
		}
		if ok {
			fixed := false
			if !own {
				code, reason, fixed = engineClose(code, reason)
			}
			c.ledger.record(code, reason)
			if fixed {
				if _, err := c.Conn.Write(closeFrameLike(p, code, reason)); err != nil {
					return 0, err
				}
				return len(p), nil
			}
		}
	}
	return c.Conn.Write(p)
}

// tryWrite writes one unmasked frame with opcode op and payload p around
// the engine (see tryWriter), if the socket takes it without waiting:
// false, with nothing written, when another write holds the socket, the
// rest of an earlier frame is still going out, or the socket takes none
// of it. The rest of a frame the socket took only part of goes out from a
// goroutine of its own, before any later frame; if that write fails, the
// connection is closed (the stream is mid-frame).
func (c *gwsTransport) tryWrite(op byte, p []byte) (bool, error) {
	if !c.upgraded.Load() || !c.wmu.TryLock() {
		return false, nil
	}
	defer c.wmu.Unlock()
	if _, _, closing := c.ledger.sent(); closing {
		return false, errConnShutDown // no data after this side's close frame
	}
	t := c.try
	if t == nil {
		t = &transportTry{}
		if sc, ok := c.Conn.(syscall.Conn); ok {
			t.raw, _ = sc.SyscallConn()
		}
		t.fn = t.write
		c.try = t
	}
	if t.raw == nil || t.pend != nil {
		return false, nil
	}
	hdr := frameHeader(&t.hb, op, false, len(p))
	total := len(hdr) + len(p)
	t.a, t.b, t.n, t.err = hdr, p, 0, nil
	err := t.raw.Write(t.fn) // fails only for a closed socket
	n := t.n
	if err == nil {
		err = t.err
	}
	t.a, t.b, t.err = nil, nil, nil
	switch {
	case err != nil && wouldBlock(err):
		return false, nil
	case err != nil:
		return false, err
	case n == total:
		return true, nil
	}
	h := min(n, len(hdr))
	t.pend = append(append(make([]byte, 0, total-n), hdr[h:]...), p[n-h:]...)
	t.kept.Store(true)
	go c.flushPending()
	return true, nil
}

// flushPending writes the rest of the frame a TrySend began, waiting for
// the socket as the engine's writes do; a failure closes the connection.
func (c *gwsTransport) flushPending() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writePending(); err != nil {
		_ = c.forceClose()
	}
}

// writePending writes what is left of a frame TrySend began, if anything.
// It runs under wmu.
func (c *gwsTransport) writePending() error {
	if c.try == nil || c.try.pend == nil {
		return nil
	}
	_, err := c.Conn.Write(c.try.pend)
	c.try.pend = nil
	c.try.kept.Store(false)
	return err
}

// engineClose corrects the close code of a close frame the engine sends
// on its own. Its only 1011 (internal error) is for a message it could not
// inflate, which is the peer's doing: one that inflates beyond the read
// limit (1009), or compressed data that is corrupt or cut short (1007).
func engineClose(code StatusCode, reason string) (StatusCode, string, bool) {
	switch {
	case code != StatusInternalError:
		return code, reason, false
	case reason == "gws: message too large":
		return StatusMessageTooBig, "message too big", true
	}
	return StatusInvalidFramePayloadData, "invalid compressed data", true
}

// closeFrameLike returns a close frame carrying code and reason in place
// of the close frame p, masked with p's key if p is masked.
func closeFrameLike(p []byte, code StatusCode, reason string) []byte {
	body := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	body = append(body, reason...)
	f := []byte{p[0], byte(len(body))}
	if p[1]&0x80 != 0 {
		key := p[2:6]
		f[1] |= 0x80
		f = append(f, key...)
		for j := range body {
			body[j] ^= key[j&3]
		}
	}
	return append(f, body...)
}

// writeInjected writes the handshake response p with injectHeader added
// before the blank line that ends the header block.
func (c *gwsTransport) writeInjected(p []byte) (int, error) {
	h := c.hs.injectHeader
	c.hs.injectHeader = ""
	end := len(p) - 2 // p ends in "\r\n\r\n"; insert before the final "\r\n"
	if end < 2 || string(p[end:]) != "\r\n" || string(p[end-2:end]) != "\r\n" {
		return c.Conn.Write(p)
	}
	buf := make([]byte, 0, len(p)+len(h))
	buf = append(buf, p[:end]...)
	buf = append(buf, h...)
	buf = append(buf, "\r\n"...)
	if _, err := c.Conn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// record notes the close frame that went out (the first one only).
func (c *closeLedger) record(code StatusCode, reason string) {
	c.mu.Lock()
	if !c.sentClose {
		c.sentClose, c.sentCode, c.sentReason = true, code, reason
	}
	c.mu.Unlock()
}

// closing notes the close frame the channel is about to ask the engine for,
// so that it can be told from one the engine sends on its own.
func (c *closeLedger) closing(code StatusCode, reason string) {
	c.mu.Lock()
	if !c.ownSet {
		c.ownSet, c.ownCode, c.ownReason = true, code, reason
	}
	c.mu.Unlock()
}

func (c *closeLedger) isOwn(code StatusCode, reason string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownSet && c.ownCode == code && c.ownReason == reason
}

// intended reports the close frame the channel asked for, if any.
func (c *closeLedger) intended() (code StatusCode, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownCode, c.ownReason, c.ownSet
}

// sent reports the close frame this side wrote, if any.
func (c *closeLedger) sent() (code StatusCode, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sentCode, c.sentReason, c.sentClose
}

// Close is what the engine calls; it is ignored while hold is set.
func (c *gwsTransport) Close() error {
	if c.hold.Load() {
		return nil
	}
	return c.forceClose()
}

// forceClose closes the socket, once.
func (c *gwsTransport) forceClose() error {
	c.closeOnce.Do(func() { c.closeErr = c.Conn.Close() })
	return c.closeErr
}

const opClose = 0x8

// parseCloseFrame reads the status code and reason from a complete close
// frame as the engine writes it (one frame per write, masked when sent by a
// client). A frame without a body reports StatusNoStatusReceived.
func parseCloseFrame(p []byte) (StatusCode, string, bool) {
	if len(p) < 2 || p[0]&0x0f != opClose {
		return 0, "", false
	}
	n := int(p[1] & 0x7f)
	if n > 125 {
		return 0, "", false // control frames carry at most 125 bytes
	}
	i := 2
	var key [4]byte
	masked := p[1]&0x80 != 0
	if masked {
		if len(p) < i+4 {
			return 0, "", false
		}
		copy(key[:], p[i:i+4])
		i += 4
	}
	if len(p) < i+n {
		return 0, "", false
	}
	var body [125]byte
	copy(body[:n], p[i:i+n])
	if masked {
		for j := 0; j < n; j++ {
			body[j] ^= key[j&3]
		}
	}
	code, reason, err := parseClosePayload(body[:n])
	if err != nil {
		return 0, "", false
	}
	return code, reason, true
}
