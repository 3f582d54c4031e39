//go:build linux

package wschan

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wschan/wschan/internal/frame"
	"github.com/wschan/wschan/internal/poll"
)

// The poll engine: server connections on the operating system's poller
// (internal/poll, epoll). A connection waiting for its peer holds no
// goroutine and no read buffer, only its socket, this struct, and the
// parser's state for a partial frame. Bytes are read by the poller's loop
// goroutines and parsed incrementally (internal/frame); events reach the
// channel inline on the loop, and a callback that waits hands the loop to
// another goroutine (poll.Registration.Blocking). Writes are non-blocking
// syscalls; a writer waits for the socket to drain only when the peer
// does not read, bounded by the write deadline as on the gws engine.
//
// It serves plain TCP (and Unix) sockets accepted over HTTP/1.1,
// permessage-deflate included (internal/frame's Inflater and Deflater,
// whose windows are all a compressing connection keeps between
// messages); TLS and HTTP/2 stay on gws (see pollable).

// pollConn is one connection on the poll engine.
type pollConn struct {
	fd     int
	reg    *poll.Registration
	ev     connEvents
	parser atomic.Pointer[frame.Parser] // only mid-frame or mid-message; see parsers
	borrow bool                         // events are consumed during the call (OnMessage): no copy
	pre    []byte                       // bytes the client sent behind its handshake
	limit  int                          // the engine's message limit (engineLimit of the read limit)

	// permessage-deflate, when negotiated: nil otherwise. The inflater is
	// used by the read side alone, the deflater under wmu (compression
	// order is wire order).
	inf       *frame.Inflater
	def       *frame.Deflater
	threshold int // smallest message compressed

	cl       atomic.Pointer[pollClosing] // made when the connection starts to close
	hold     atomic.Bool                 // closing handshake: keep reading until the peer's close frame
	lastRd   atomic.Int64
	closeOut atomic.Bool // a close frame went out: no more frames

	wmu      sync.Mutex   // one frame at a time
	pend     []byte       // the rest of a frame a TrySend began (under wmu)
	pendOut  atomic.Bool  // pend is not empty
	fdmu     sync.RWMutex // syscalls on fd hold it for reading; closing it for writing
	closed   bool         // fd is closed (under fdmu)
	aborted  atomic.Bool
	wready   atomic.Bool                   // the socket became writable since the last failed write
	wwait    atomic.Pointer[chan struct{}] // a waiting writer's wake-up, made on first use
	wwaiting atomic.Bool                   // a writer is in waitWritable: wake it
	deadline atomic.Int64                  // write deadline, Unix nanoseconds; 0: none

	finished bool // the end has been reported (read side only)
}

var _ engineConn = (*pollConn)(nil)

// pollable reports whether a hijacked connection can run on the poll
// engine: a socket of its own (not TLS, not a wrapper).
func pollable(conn net.Conn) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}

// acceptPoll completes the server handshake for r on its hijacked
// connection, whose read-ahead is in br, and moves the socket to the
// poller.
func acceptPoll(conn net.Conn, br *bufio.Reader, r *http.Request, protocol string, compression bool, set *settings) (*pollConn, error) {
	c := &pollConn{borrow: set.onMessage != nil, limit: engineLimit(set.readLimit)}
	var ext string
	if compression {
		// Negotiated as the gws engine does (frame.Negotiate matches it).
		if p, resp, ok := frame.Negotiate(r.Header.Values("Sec-WebSocket-Extensions")); ok {
			ext = resp
			c.inf = frame.NewInflater(p.ClientMaxWindowBits, !p.ClientNoContextTakeover)
			c.def = frame.NewDeflater(p.ServerMaxWindowBits, !p.ServerNoContextTakeover)
			c.threshold = p.ServerThreshold()
		}
	}
	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = append(resp, secAccept(r.Header.Get("Sec-WebSocket-Key"))...)
	resp = append(resp, "\r\n"...)
	if protocol != "" {
		resp = append(resp, "Sec-WebSocket-Protocol: "...)
		resp = append(resp, protocol...)
		resp = append(resp, "\r\n"...)
	}
	if ext != "" {
		resp = append(resp, "Sec-WebSocket-Extensions: "...)
		resp = append(resp, ext...)
		resp = append(resp, "\r\n"...)
	}
	resp = append(resp, "\r\n"...)
	if _, err := conn.Write(resp); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("handshake response: %w", err)
	}
	if n := br.Buffered(); n > 0 {
		pre, _ := br.Peek(n)
		c.pre = slices.Clone(pre)
	}
	fd, err := detach(conn)
	if err != nil {
		return nil, err
	}
	c.fd = fd
	c.reg = poll.New(c) // before serve adds the socket: the first Read may run at once
	if onDetach != nil {
		onDetach(conn, c)
	}
	return c, nil
}

// detach takes a socket away from Go's poller: a duplicate of its
// descriptor, non-blocking, and the original closed.
func detach(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		_ = conn.Close()
		return -1, errors.New("connection has no socket")
	}
	fd, err := poll.Take(sc)
	_ = conn.Close()
	return fd, err
}

// secAccept is Sec-WebSocket-Accept for key (RFC 6455, section 4.2.2).
func secAccept(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func (c *pollConn) bind(ev connEvents) { c.ev = ev }

// serve registers the socket with the poller and returns: the poller
// runs the connection from now on.
func (c *pollConn) serve() {
	c.lastRd.Store(monotime())
	if err := c.reg.Add(c.fd); err != nil {
		c.finished = true
		c.ev.end(endCause{err: err})
		return
	}
	// Bytes may have arrived before the registration: read once now.
	c.reg.Kick()
}

// detached marks serve as returning at once: the caller need not run it
// on a goroutine of its own.
func (c *pollConn) detached() {}

// Read is called by the poller when the socket is readable.
func (c *pollConn) Read(buf []byte) bool {
	if c.finished {
		return false
	}
	if pre := c.pre; pre != nil {
		c.pre = nil
		if !c.feed(pre) {
			return false
		}
	}
	for range 8 {
		n, err := c.read(buf)
		switch {
		case n > 0:
			c.lastRd.Store(monotime())
			if !c.feed(buf[:n]) {
				return false
			}
			if n < len(buf) && !c.reg.HungUp() {
				return false // the socket is drained: the poller says when there is more
			}
		case errors.Is(err, unix.EAGAIN):
			return false
		case errors.Is(err, unix.EINTR):
		default:
			if err == nil {
				err = io.EOF
			}
			if c.aborted.Load() {
				err = errConnShutDown
			}
			c.finish(endCause{err: err})
			return false
		}
	}
	return true // read its share: the poller comes back after the others
}

// read reads from the socket unless it is closed.
func (c *pollConn) read(buf []byte) (int, error) {
	c.fdmu.RLock()
	defer c.fdmu.RUnlock()
	if c.closed {
		return 0, errConnShutDown
	}
	// A raw system call: the socket is non-blocking, so the call never
	// waits, and the scheduler need not hear of it.
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))), uintptr(len(buf)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// errStop stops the parser's events once the connection is over.
var errStop = errors.New("stop")

// parsers holds the parsers of connections that are between messages:
// a connection has one only while a frame or message of its is partly
// read (or its stream ended), so an idle connection holds none.
var parsers = sync.Pool{New: func() any { return new(frame.Parser) }}

// feed parses b and reports whether the connection goes on.
func (c *pollConn) feed(b []byte) bool {
	p := c.parser.Load()
	if p == nil {
		p = parsers.Get().(*frame.Parser)
		p.Reset(frame.Config{Masked: true, MaxMessage: c.limit, Deflate: c.inf != nil})
		c.parser.Store(p)
	}
	err := p.Feed(b, c.emit)
	if err == nil && p.Idle() {
		// The events emitted are over (a callback's data is valid only
		// during the call; the stream's are copies).
		c.parser.Store(nil)
		parsers.Put(p)
	}
	if err == nil {
		if c.aborted.Load() {
			c.finish(endCause{err: errConnShutDown})
			return false
		}
		return true
	}
	var fe *frame.Error
	if errors.As(err, &fe) {
		// As the gws engine's guard does: let the stream drain, then
		// fail with the code (see wsconn.awaitDrain).
		c.ev.drain()
		_ = c.writeClose(StatusCode(fe.Code), fe.Reason)
		c.finish(endCause{err: errFailed})
		return false
	}
	if !c.finished {
		c.finish(endCause{err: errConnShutDown})
	}
	return false
}

// emit delivers one parsed event.
func (c *pollConn) emit(e frame.Event) error {
	switch e.Kind {
	case frame.Text, frame.Binary:
		typ := Binary
		if e.Kind == frame.Text {
			typ = Text
		}
		data := e.Data
		if e.Compressed {
			return c.inflated(typ, data)
		}
		if !c.borrow {
			// The stream keeps the message; the parser's buffer is reused.
			data = slices.Clone(data)
			if data == nil {
				data = []byte{}
			}
		}
		c.ev.message(typ, data, nil)
	case frame.Ping:
		c.ev.ping(e.Data)
	case frame.Pong:
		c.ev.pong(e.Data)
	case frame.Close:
		c.peerClosed(e.Code, e.Reason)
		return errStop
	}
	if c.aborted.Load() {
		c.finish(endCause{err: errConnShutDown})
		return errStop
	}
	return nil
}

// inflated delivers a compressed message: into a pooled buffer lent to
// a callback, or a buffer of its own for the stream.
func (c *pollConn) inflated(typ MessageType, data []byte) error {
	var dst []byte
	var pooled *[]byte
	if c.borrow {
		pooled = inflateBufs.Get().(*[]byte)
		dst = (*pooled)[:0]
	}
	out, err := c.inf.Inflate(dst, data, c.limit)
	if err != nil {
		if pooled != nil {
			inflateBufs.Put(pooled)
		}
		// The connection fails with the code (feed), and the reason the
		// gws engine gives (engineClose).
		var fe *frame.Error
		if errors.As(err, &fe) {
			reason := "invalid compressed data"
			if fe.Code == frame.CodeMessageTooBig {
				reason = "message too big"
			}
			return &frame.Error{Code: fe.Code, Reason: reason}
		}
		return err
	}
	if out == nil {
		out = []byte{}
	}
	c.ev.message(typ, out, nil)
	if pooled != nil {
		if cap(out) <= 1<<20 {
			*pooled = out[:0]
		}
		inflateBufs.Put(pooled)
	}
	if c.aborted.Load() {
		c.finish(endCause{err: errConnShutDown})
		return errStop
	}
	return nil
}

var inflateBufs = sync.Pool{New: func() any { return new([]byte) }}

// peerClosed answers the peer's close frame as the gws engine does (the
// code back for 1000–1015 and 3000–4999 alike is 1000, the application's
// own code for 3000–4999; nothing for no status), unless this side's close
// frame is out, and ends the connection.
func (c *pollConn) peerClosed(code int, reason string) {
	if c.closeOut.Load() {
		// The answer to this side's close frame: as on the gws engine, the
		// end is this side's (see classifyEnd).
		c.finish(endCause{err: errCloseAnswered})
		return
	}
	cause := endCause{peerClose: true, peerCode: uint16(code), peerReason: reason}
	if code == int(StatusNoStatusReceived) {
		cause.peerCode, cause.peerNoStatus = 0, true
	}
	if !c.closeOut.Load() {
		var payload []byte
		switch {
		case cause.peerNoStatus:
		case code >= 3000:
			payload = binary.BigEndian.AppendUint16(nil, uint16(code))
		default:
			payload = binary.BigEndian.AppendUint16(nil, uint16(StatusNormalClosure))
		}
		_ = c.writeCloseFrame(payload)
	}
	c.finish(cause)
}

// finish reports the end, once.
func (c *pollConn) finish(cause endCause) {
	if c.finished {
		return
	}
	c.finished = true
	c.stopHold()
	c.ev.end(cause)
}

// Writable is called by the poller when the socket may take writes.
func (c *pollConn) Writable() {
	c.wakeWriter()
	c.flushPending()
}

func (c *pollConn) wakeWriter() {
	c.wready.Store(true)
	if !c.wwaiting.Load() {
		return // nobody waits (the common case: every event says the socket is writable)
	}
	if w := c.wwait.Load(); w != nil {
		select {
		case *w <- struct{}{}:
		default:
		}
	}
}

func (c *pollConn) writeMessage(typ MessageType, p []byte) error {
	return c.writeMessageUntil(nil, typ, p)
}

// writeMessageUntil is writeMessage that stops waiting for a peer that
// does not read when stop is closed (see ctxWriter).
func (c *pollConn) writeMessageUntil(stop <-chan struct{}, typ MessageType, p []byte) error {
	if c.closeOut.Load() {
		return errCloseSent
	}
	return c.write(byte(typ), p, c.def != nil && len(p) >= c.threshold, stop)
}

func (c *pollConn) writePing(p []byte) error { return c.writeFrame(opPing, p) }

func (c *pollConn) writePong(p []byte) error { return c.writeFrame(opPong, p) }

func (c *pollConn) writeClose(code StatusCode, reason string) error {
	c.closer().ledger.closing(code, reason)
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	payload = append(payload, reason...)
	return c.writeCloseFrame(payload)
}

// writeCloseFrame sends a close frame with payload (empty: no status)
// and, unless the closing handshake holds the socket open, closes it, as
// the gws engine does.
func (c *pollConn) writeCloseFrame(payload []byte) error {
	if c.closeOut.Swap(true) {
		return errCloseSent
	}
	code, reason := StatusNoStatusReceived, ""
	if len(payload) >= 2 {
		code, reason = StatusCode(binary.BigEndian.Uint16(payload)), string(payload[2:])
	}
	c.closer().ledger.record(code, reason)
	err := c.write(opClose, payload, false, nil)
	if !c.hold.Load() {
		c.abort()
	}
	return err
}

// errCloseAnswered ends a connection whose closing handshake this side
// started.
var errCloseAnswered = errors.New("the peer answered this side's close frame")

// errCloseSent refuses frames after this side's close frame.
var errCloseSent = fmt.Errorf("close frame sent: %w", net.ErrClosed)

const (
	opPing = 0x9
	opPong = 0xa
)

func (c *pollConn) writeFrame(op byte, p []byte) error {
	if c.closeOut.Load() {
		return errCloseSent
	}
	return c.write(op, p, false, nil)
}

// write sends one unmasked frame, whole (compressed if compress), after
// what a TrySend left unsent: it waits for the socket to drain while the
// peer does not read, up to the write deadline, or until stop is closed. A
// write that fails leaves the stream mid-frame, or the peer unreachable:
// the connection is dropped, as on the gws engine. One that stop ends is
// left to the caller (errWriteStopped).
func (c *pollConn) write(op byte, p []byte, compress bool, stop <-chan struct{}) (err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if op != opClose && c.closeOut.Load() {
		return errCloseSent // the close frame went out while this waited for wmu
	}
	defer func() {
		if err != nil && !errors.Is(err, errWriteStopped) {
			c.abort() // after fdmu is released (deferred below)
		}
	}()
	var hb [10]byte
	hdr, p, buf := c.encode(&hb, op, p, compress)
	if buf != nil {
		defer putDeflateBuf(buf)
	}
	c.fdmu.RLock()
	defer c.fdmu.RUnlock()
	if c.closed {
		return errConnShutDown
	}
	if c.pendOut.Load() {
		if err := c.writeAll(c.pend, nil, stop); err != nil {
			return err
		}
		c.pend = nil
		c.pendOut.Store(false)
	}
	return c.writeAll(hdr, p, stop)
}

// writeAll writes a then b, waiting for the socket as write does. It runs
// under wmu and fdmu (read).
func (c *pollConn) writeAll(a, b []byte, stop <-chan struct{}) error {
	for len(a)+len(b) > 0 {
		if c.aborted.Load() {
			return errConnShutDown
		}
		select {
		case <-stop:
			return errWriteStopped
		default:
		}
		if d := c.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
			return fmt.Errorf("write: %w", os.ErrDeadlineExceeded)
		}
		c.wready.Store(false)
		n, err := writev(c.fd, a, b)
		if n > 0 {
			h := min(n, len(a))
			a, b = a[h:], b[n-h:]
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			c.waitWritable(stop)
		case errors.Is(err, unix.EINTR):
		default:
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// tryable: see tryWriter.
func (c *pollConn) tryable() bool { return true }

// tryWriteMessage writes a data message if the socket takes it now (see
// tryWriter): false, with nothing sent, when another write holds the
// connection, a frame left by an earlier call is still unsent, or the
// socket takes none of the frame. What the socket does not take of a frame
// it has begun (or of a compressed frame: the deflater has moved on) is
// kept in pend and goes out before anything else.
func (c *pollConn) tryWriteMessage(typ MessageType, p []byte) (bool, error) {
	if !c.wmu.TryLock() {
		return false, nil
	}
	ok, err := c.tryWriteLocked(byte(typ), p, c.def != nil && len(p) >= c.threshold)
	c.wmu.Unlock()
	if err != nil {
		if err != errCloseSent && err != errConnShutDown {
			c.abort() // the stream may be mid-frame
		}
		return false, err
	}
	c.flushPending()
	return ok, nil
}

func (c *pollConn) tryWriteLocked(op byte, p []byte, compress bool) (bool, error) {
	if c.closeOut.Load() {
		return false, errCloseSent // the close frame went out before wmu was taken
	}
	c.fdmu.RLock()
	defer c.fdmu.RUnlock()
	if c.closed || c.aborted.Load() {
		return false, errConnShutDown
	}
	if c.pendOut.Load() {
		if done, err := c.flushLocked(); !done || err != nil {
			return false, err
		}
	}
	var hb [10]byte
	hdr, p, buf := c.encode(&hb, op, p, compress)
	if buf != nil {
		defer putDeflateBuf(buf)
	}
	c.wready.Store(false)
	n, err := writev(c.fd, hdr, p)
	switch {
	case err == nil:
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		n = 0
	default:
		return false, fmt.Errorf("write: %w", err)
	}
	if n == len(hdr)+len(p) {
		return true, nil
	}
	if n == 0 && !compress {
		return false, nil
	}
	h := min(n, len(hdr))
	c.pend = append(append(c.pend[:0], hdr[h:]...), p[n-h:]...)
	c.pendOut.Store(true)
	return true, nil
}

// flushLocked writes what is left in pend without waiting; done reports
// that nothing is left. It runs under wmu and fdmu (read).
func (c *pollConn) flushLocked() (done bool, err error) {
	for len(c.pend) > 0 {
		c.wready.Store(false)
		n, err := writev(c.fd, c.pend, nil)
		if n > 0 {
			c.pend = c.pend[n:]
		}
		switch {
		case err == nil:
			if n == 0 {
				return false, nil
			}
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case errors.Is(err, unix.EINTR):
		default:
			return false, fmt.Errorf("write: %w", err)
		}
	}
	c.pend = nil
	c.pendOut.Store(false)
	return true, nil
}

// flushPending writes what a TrySend left unsent once the socket has room.
// It runs when the socket becomes writable and after every TrySend: whoever
// lets go of wmu with pend not empty looks again at wready, so a socket
// that became writable while another held wmu is not missed.
func (c *pollConn) flushPending() {
	for c.pendOut.Load() && c.wready.Load() {
		if !c.wmu.TryLock() {
			return // the holder looks again when it lets go
		}
		c.fdmu.RLock()
		var err error
		if c.closed || c.aborted.Load() {
			c.pend = nil // nothing more goes out
			c.pendOut.Store(false)
		} else {
			_, err = c.flushLocked()
		}
		c.fdmu.RUnlock()
		c.wmu.Unlock()
		if err != nil {
			c.abort()
			return
		}
	}
}

// encode returns the header of a frame with opcode op, in hb, and its
// payload: p, or p compressed into buf (not nil then), which the caller
// gives back with putDeflateBuf once the frame is out. It runs under wmu:
// compression order is wire order.
func (c *pollConn) encode(hb *[10]byte, op byte, p []byte, compress bool) (hdr, payload []byte, buf *[]byte) {
	if compress {
		buf = deflateBufs.Get().(*[]byte)
		*buf = c.def.Deflate((*buf)[:0], p)
		p = *buf
	}
	return frameHeader(hb, op, compress, len(p)), p, buf
}

func putDeflateBuf(buf *[]byte) {
	if cap(*buf) > 1<<20 {
		*buf = nil
	}
	deflateBufs.Put(buf)
}

var deflateBufs = sync.Pool{New: func() any { return new([]byte) }}

// writev writes a then b with one system call.
func writev(fd int, a, b []byte) (int, error) {
	var iov [2]unix.Iovec
	n := 0
	for _, s := range [2][]byte{a, b} {
		if len(s) > 0 {
			iov[n].Base = &s[0]
			iov[n].SetLen(len(s))
			n++
		}
	}
	r, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n)) // non-blocking: see read
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// waitWritable waits until the socket may take writes, the write deadline
// passes, or the connection is aborted.
func (c *pollConn) waitWritable(stop <-chan struct{}) {
	w := c.wwait.Load()
	if w == nil {
		ch := make(chan struct{}, 1)
		c.wwait.Store(&ch)
		w = &ch
	}
	// Waiting is announced before the conditions are looked at: a wake-up
	// after the look finds the flag and sends, one before it is seen in
	// wready.
	c.wwaiting.Store(true)
	defer c.wwaiting.Store(false)
	if c.wready.Load() || c.aborted.Load() {
		return
	}
	if c.reg != nil {
		c.reg.Blocking() // a callback's Send on the loop: let the loop go on
	}
	var timeout <-chan time.Time
	if d := c.deadline.Load(); d != 0 {
		t := time.NewTimer(time.Until(time.Unix(0, d)))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-*w:
	case <-timeout:
	case <-stop:
	}
}

func (c *pollConn) setWriteDeadline(t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = t.UnixNano()
	}
	c.deadline.Store(d)
	c.wakeWriter()
	return nil
}

// holdOpen keeps the socket open after the close frame until the peer's
// close frame or the deadline.
func (c *pollConn) holdOpen(deadline time.Time) {
	c.hold.Store(true)
	cl := c.closer()
	cl.holdMu.Lock()
	defer cl.holdMu.Unlock()
	if cl.holdT != nil {
		cl.holdT.Stop()
	}
	cl.holdT = time.AfterFunc(time.Until(deadline), c.abort)
	_ = c.setWriteDeadline(deadline)
}

func (c *pollConn) stopHold() {
	c.hold.Store(false)
	cl := c.cl.Load()
	if cl == nil {
		return
	}
	cl.holdMu.Lock()
	if cl.holdT != nil {
		cl.holdT.Stop()
		cl.holdT = nil
	}
	cl.holdMu.Unlock()
}

// abort shuts the socket down: reads see the end, writes fail. The
// descriptor stays open (its number is not reused under a write or read
// under way) until shutdown.
func (c *pollConn) abort() {
	c.hold.Store(false)
	c.aborted.Store(true)
	c.fdmu.RLock()
	if !c.closed {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	}
	c.fdmu.RUnlock()
	c.wakeWriter()
}

func (c *pollConn) shutdown() {
	c.abort()
	c.fdmu.Lock()
	defer c.fdmu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.reg != nil {
		c.reg.Deregister(c.fd)
	}
	_ = unix.Close(c.fd)
}

func (c *pollConn) lastRead() int64 { return c.lastRd.Load() }

func (c *pollConn) blocking() {
	if c.reg != nil {
		c.reg.Blocking()
	}
}

func (c *pollConn) sentClose() (StatusCode, string, bool) {
	if cl := c.cl.Load(); cl != nil {
		return cl.ledger.sent()
	}
	return 0, "", false
}

func (c *pollConn) intendedClose() (StatusCode, string, bool) {
	if cl := c.cl.Load(); cl != nil {
		return cl.ledger.intended()
	}
	return 0, "", false
}

// pollClosing is what a connection needs once it starts to close: idle
// connections do without it.
type pollClosing struct {
	ledger closeLedger
	holdMu sync.Mutex
	holdT  *time.Timer // ends the closing handshake's wait (holdOpen)
}

// closer returns the connection's closing state, made on first use.
func (c *pollConn) closer() *pollClosing {
	if cl := c.cl.Load(); cl != nil {
		return cl
	}
	c.cl.CompareAndSwap(nil, new(pollClosing))
	return c.cl.Load()
}
