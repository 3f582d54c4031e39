package wschan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lxzan/gws"
)

// settings are the per-channel knobs shared by Dial and Accept, with
// defaults filled in.
type settings struct {
	readLimit     int
	pingInterval  time.Duration // 0: no pings
	pingTimeout   time.Duration // 0: pings only measure RTT
	closeTimeout  time.Duration
	onMessage     func(*Channel, Message)
	onPing        func(*Channel, []byte)
	onStateChange func(State, error)
}

func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// wsconn is one WebSocket connection under a Channel. A plain channel has
// one for its whole life; a reconnecting channel has one per connection.
type wsconn struct {
	ch       *Channel
	ws       *gws.Conn
	nc       *netConn
	protocol string

	localClose atomic.Bool   // this side started the closing handshake
	timedOut   atomic.Bool   // the dead-peer check ended the connection
	blocked    atomic.Bool   // the read loop waits for the stream's consumer
	inCallback atomic.Bool   // the read loop is inside an OnMessage or OnPing callback
	streamed   bool          // the read loop has put messages in the stream (read loop only)
	live       chan struct{} // reconnecting channels: closed once Send writes to this connection
	stopped    chan struct{} // closed when this side ends the connection (see stop)
	stopOnce   sync.Once
	aborted    atomic.Value  // error: a Send's context ended mid-write
	sem        chan struct{} // one Send writes at a time

	// Writes from goroutines other than the read loop hold wmu for reading;
	// end takes it for writing once, so that no write is under way or can
	// start when the engine recycles the connection's compression window
	// after the read loop (gws v1.8.9 does that without its write lock).
	wmu     sync.RWMutex
	wclosed bool

	// keepalive
	kmu      sync.Mutex
	timer    *time.Timer
	kstopped bool
	pingAt   atomic.Int64 // monotime the last ping was queued (its payload), 0 if none
	ponged   atomic.Bool  // the last ping was answered
	pingSent atomic.Int64 // monotime the last ping's write finished
	sendEnd  atomic.Int64 // monotime the last Send's turn ended
	pinging  atomic.Bool  // a ping write is under way

	ended     chan struct{} // closed when the connection is over
	endCode   StatusCode
	endReason string
	endErr    error
}

func newWSConn(ch *Channel, nc *netConn, ws *gws.Conn, protocol string, deflate bool) *wsconn {
	c := &wsconn{ch: ch, nc: nc, ws: ws, protocol: protocol, ended: make(chan struct{}), sem: make(chan struct{}, 1),
		stopped: make(chan struct{})}
	if ch.client && ch.rc != nil {
		c.live = make(chan struct{}) // see reconnector.open
	}
	bind(ws, c)
	nc.upgraded.Store(true)
	rules := frameRules{masked: !ch.client, deflate: deflate, limit: uint64(engineLimit(ch.set.readLimit))}
	nc.startWatch(rules, func() { _ = c.writeClose(StatusInvalidFramePayloadData, "invalid UTF-8") }, c.awaitDrain)
	return c
}

// writeClose sends this side's close frame (one the engine sends on its
// own is told apart: see netConn.Write).
func (c *wsconn) writeClose(code StatusCode, reason string) error {
	c.nc.closing(code, reason)
	return c.ws.WriteClose(uint16(code), []byte(reason))
}

// run serves the connection on the calling goroutine until it ends.
func (c *wsconn) run() {
	c.nc.lastRead.Store(monotime())
	c.startKeepalive()
	defer func() {
		// The engine panics on some malformed frames (for example a 64-bit
		// length with the top bit set). Fail the connection as a protocol
		// error instead of taking the process down.
		if r := recover(); r != nil {
			_ = c.writeClose(StatusProtocolError, "")
			c.end(fmt.Errorf("%w: malformed frame (%v)", ErrProtocol, r))
		}
	}()
	c.ws.ReadLoop()
}

func (c *wsconn) deliver(m *gws.Message) {
	if m.Data.Len() > c.ch.set.readLimit {
		// Within the engine's allowance for deflate overhead, over ours.
		_ = m.Close()
		c.awaitDrain()
		_ = c.writeClose(StatusMessageTooBig, "message too big")
		return
	}
	typ := MessageType(m.Opcode)
	if typ == Text && !utf8.Valid(m.Bytes()) {
		// The engine's own check is off: it would fail the connection at
		// once, before the messages ahead of this one in the stream have
		// been answered.
		_ = m.Close()
		c.awaitDrain()
		_ = c.writeClose(StatusInvalidFramePayloadData, "invalid UTF-8")
		return
	}
	if f := c.ch.set.onMessage; f != nil {
		c.inCallback.Store(true)
		f(c.ch, Message{Type: typ, Data: m.Bytes()})
		c.inCallback.Store(false)
		_ = m.Close()
		return
	}
	// The stream takes ownership of the engine's buffer: no copy.
	msg := Message{Type: typ, Data: m.Bytes(), buf: m}
	c.streamed = true
	select {
	case c.ch.msgs <- msg:
		return
	default:
	}
	c.blocked.Store(true)
	select {
	case c.ch.msgs <- msg:
	case <-c.ch.closing:
		// Close was called: nobody will read this message.
	}
	c.blocked.Store(false)
	c.nc.lastRead.Store(monotime())
}

// awaitDrain runs on the read loop before the connection is failed for
// something the peer sent behind messages the stream has not handed out
// yet. A synchronous reader would have had those messages, and the chance
// to answer them, before it saw the trouble; so does the stream's
// consumer: a mark goes into the stream behind the last message, and the
// connection fails when the consumer asks for the message after it (Read
// takes the mark), when Close is called, or after the close timeout,
// whichever comes first. Meanwhile nothing more is read from the socket.
// With an OnMessage callback every message was handled before its
// successor was parsed: there is nothing to wait for.
func (c *wsconn) awaitDrain() {
	if !c.streamed {
		return
	}
	c.streamed = false
	mark := &drainMark{taken: make(chan struct{})}
	t := time.NewTimer(c.ch.set.closeTimeout)
	defer t.Stop()
	c.blocked.Store(true) // the keepalive waits, too
	defer c.blocked.Store(false)
	select {
	case c.ch.msgs <- Message{buf: mark}:
	case <-c.stopped:
		return
	case <-t.C:
		return
	}
	select {
	case <-mark.taken:
	case <-c.stopped:
		return
	case <-t.C:
		return
	}
	if c.live != nil {
		// A reconnecting channel buffers what is sent before the connection
		// is open: the answers go out when it is.
		select {
		case <-c.live:
		case <-c.stopped:
		case <-t.C:
		}
	}
}

// stop tells a read loop waiting in awaitDrain that this side is ending the
// connection: its close frame is out, or the socket is about to close.
func (c *wsconn) stop() { c.stopOnce.Do(func() { close(c.stopped) }) }

// drainMark stands in the stream behind the messages that arrived before
// trouble (see awaitDrain); Read takes it, never returns it.
type drainMark struct{ taken chan struct{} }

func (d *drainMark) Close() error {
	close(d.taken)
	return nil
}

// write sends one data message. Sends take turns on sem, so ctx bounds
// both the wait for the turn and a write blocked on a peer that does not
// read; if ctx ends mid-frame the connection cannot continue and is dropped.
func (c *wsconn) write(ctx context.Context, typ MessageType, data []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wschan: send: %w", err)
	}
	done := ctx.Done()
	if done == nil {
		c.sem <- struct{}{}
		if !c.lockWrite() {
			<-c.sem
			return c.sendErr(net.ErrClosed)
		}
		err := c.ws.WriteMessage(gws.Opcode(typ), data)
		c.wmu.RUnlock()
		c.releaseSend()
		if err != nil {
			return c.sendErr(err)
		}
		return nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-done:
		return fmt.Errorf("wschan: send: %w", ctx.Err())
	}
	defer c.releaseSend()
	if !c.lockWrite() {
		return c.sendErr(net.ErrClosed)
	}
	defer c.wmu.RUnlock()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		c.aborted.Store(ctx.Err())
		_ = c.nc.SetWriteDeadline(time.Unix(1, 0))
	})
	err := c.ws.WriteMessage(gws.Opcode(typ), data)
	if !stop() {
		<-fired
		if err == nil {
			// The frame went out whole before the deadline took effect:
			// take the deadline back, the connection is fine.
			_ = c.nc.SetWriteDeadline(time.Time{})
			c.aborted.Store(errNotAborted)
			return nil
		}
		return fmt.Errorf("wschan: send: %w", ctx.Err())
	}
	if err != nil {
		return c.sendErr(err)
	}
	return nil
}

// releaseSend ends a Send's turn, noting when for the keepalive.
func (c *wsconn) releaseSend() {
	c.sendEnd.Store(monotime())
	<-c.sem
}

// errNotAborted clears wsconn.aborted (an atomic.Value cannot hold nil).
var errNotAborted = errors.New("not aborted")

func (c *wsconn) sendErr(err error) error {
	select {
	case <-c.ended:
		return fmt.Errorf("wschan: send: %w", c.endErr)
	default:
	}
	if c.localClose.Load() {
		return fmt.Errorf("wschan: send: %w", ErrClosed)
	}
	return fmt.Errorf("wschan: send: %w: %w", ErrConnectionLost, err)
}

// lockWrite takes wmu for a write from outside the read loop, or reports
// that the connection is over.
func (c *wsconn) lockWrite() bool {
	c.wmu.RLock()
	if c.wclosed {
		c.wmu.RUnlock()
		return false
	}
	return true
}

// closeHandshake sends a close frame and waits, up to the close timeout, for
// the peer's close frame; then the socket is closed.
func (c *wsconn) closeHandshake(code StatusCode, reason string) error {
	select {
	case <-c.ended:
		return nil
	default:
	}
	c.localClose.Store(true)
	c.nc.closing(code, reason)
	c.nc.hold.Store(true)
	// One deadline bounds a write stuck behind a slow peer, the close frame
	// itself, and the wait for the peer's answer.
	_ = c.nc.SetDeadline(time.Now().Add(c.ch.set.closeTimeout))
	err := net.ErrClosed
	if c.lockWrite() {
		err = c.writeClose(code, reason)
		c.wmu.RUnlock()
	}
	c.stop()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.nc.hold.Store(false)
		_ = c.nc.forceClose()
	}
	if c.inCallback.Load() {
		// Called from an OnMessage callback: the read loop is this goroutine
		// and finishes the handshake when the callback returns.
		return nil
	}
	<-c.ended
	return nil
}

// end runs once, when the engine's read loop is over.
func (c *wsconn) end(err error) {
	select {
	case <-c.ended:
		return
	default:
	}
	c.stopKeepalive()
	c.nc.hold.Store(false)
	_ = c.nc.forceClose() // fails any write still blocked on the socket
	c.wmu.Lock()
	c.wclosed = true
	c.wmu.Unlock()
	c.endCode, c.endReason, c.endErr = c.classify(err)
	c.ch.connEnded(c) // a plain channel finishes before anyone waiting on ended wakes
	close(c.ended)
}

// classify turns the engine's reason for ending into the channel's close
// code, reason and error.
func (c *wsconn) classify(err error) (StatusCode, string, error) {
	var gce *gws.CloseError
	if errors.As(err, &gce) { // the peer sent a close frame
		code, reason := StatusCode(gce.Code), string(gce.Reason)
		if gce.Code == 0 {
			return StatusNoStatusReceived, "", &CloseError{Code: StatusNoStatusReceived, Remote: true}
		}
		if code.Sendable() && utf8.ValidString(reason) {
			return code, reason, &CloseError{Code: code, Reason: reason, Remote: true}
		}
		sent, sentReason, ok := c.nc.sent()
		if !ok {
			sent = StatusProtocolError
		}
		return sent, sentReason, fmt.Errorf("%w: invalid close frame (code %d): %w", ErrProtocol, gce.Code,
			&CloseError{Code: sent, Reason: sentReason})
	}
	if errors.Is(err, ErrProtocol) { // recovered engine panic
		return StatusProtocolError, "", fmt.Errorf("%w: %w", err, &CloseError{Code: StatusProtocolError})
	}
	if c.localClose.Load() {
		code, reason, ok := c.nc.sent()
		if !ok { // the socket failed before the close frame could go out
			code, reason, _ = c.nc.intended()
		}
		return code, reason, ErrClosed
	}
	if c.timedOut.Load() {
		return StatusAbnormalClosure, "", fmt.Errorf("%w: peer did not answer a ping within %v", ErrTimeout, c.ch.set.pingTimeout)
	}
	if a, ok := c.aborted.Load().(error); ok && a != errNotAborted {
		return StatusAbnormalClosure, "", fmt.Errorf("%w: send abandoned mid-message: %w", ErrConnectionLost, a)
	}
	if code, reason, ok := c.nc.sent(); ok {
		ce := &CloseError{Code: code, Reason: reason}
		switch code {
		case StatusMessageTooBig:
			return code, reason, fmt.Errorf("%w: %w", ErrMessageTooBig, ce)
		case StatusProtocolError, StatusInvalidFramePayloadData, StatusUnsupportedData,
			StatusPolicyViolation, StatusMandatoryExtension, StatusInternalError:
			return code, reason, fmt.Errorf("%w: %w", ErrProtocol, ce)
		}
	}
	return StatusAbnormalClosure, "", fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// Keepalive: a timer (no goroutine while it waits) sends a ping every
// interval; a ping that gets no answer for pingTimeout, while nothing else
// arrives and the connection is not busy (see alive), ends the connection.

func (c *wsconn) startKeepalive() {
	iv := c.ch.set.pingInterval
	if iv <= 0 {
		return
	}
	c.kmu.Lock()
	c.timer = time.AfterFunc(iv, c.tick)
	c.kmu.Unlock()
}

func (c *wsconn) stopKeepalive() {
	c.kmu.Lock()
	c.kstopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.kmu.Unlock()
}

func (c *wsconn) tick() {
	iv, to := c.ch.set.pingInterval, c.ch.set.pingTimeout
	now := monotime()
	queued := c.pinging.Load() // before pingSent: writePing stores that first
	at, sent := c.pingAt.Load(), c.pingSent.Load()
	var next time.Duration
	var ping bool
	switch {
	case queued && to > 0 && !c.busy():
		// The ping still waits behind another write: nothing can answer
		// it. The timeout counts from the latest of its queueing, the last
		// Send and the last read, so a peer that floods pings and reads
		// nothing (the read loop stuck on a pong) is ended, and a slow
		// reader of a large Send is not, as soon as that Send is over.
		base := max(at, c.sendEnd.Load(), c.nc.lastRead.Load())
		if now-base >= int64(to) {
			c.timedOut.Store(true)
			_ = c.nc.forceClose()
			return
		}
		next = time.Duration(base + int64(to) - now)
	case queued:
		next = iv
		if to > 0 && to < iv {
			next = to
		}
	case at != 0 && to > 0 && !c.alive(at) && now-sent >= int64(to):
		c.timedOut.Store(true)
		_ = c.nc.forceClose()
		return
	case at != 0 && to > 0 && !c.alive(at):
		next = time.Duration(sent + int64(to) - now)
	case at == 0 || now-at >= int64(iv):
		ping = true
		next = iv
		if to > 0 && to < iv {
			next = to
		}
	default:
		next = time.Duration(at + int64(iv) - now)
	}
	if ping {
		// The ping is written on its own goroutine: a write stuck behind a
		// peer that stopped reading must not stop the timer that ends such
		// a connection.
		c.pinging.Store(true)
		c.pingAt.Store(now) // before ponged: a late pong to the last ping must not count
		c.ponged.Store(false)
		go c.writePing(now)
	}
	c.kmu.Lock()
	if !c.kstopped {
		c.timer.Reset(next)
	}
	c.kmu.Unlock()
}

// writePing writes the ping queued at id (its payload) and notes when it
// went out: the ping timeout counts from then.
func (c *wsconn) writePing(id int64) {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(id))
	if c.lockWrite() {
		_ = c.ws.WritePing(p[:])
		c.wmu.RUnlock()
	}
	c.pingSent.Store(monotime())
	c.pinging.Store(false)
}

// alive reports whether the peer showed signs of life since the ping at
// at, or the connection is busy.
func (c *wsconn) alive(at int64) bool {
	return c.ponged.Load() || c.busy() || c.nc.lastRead.Load() > at
}

// busy reports whether the connection waits on something with its own
// bound: the read loop on the stream's consumer or a callback, or a Send
// writing (its context bounds it; a slow reader of a large message sends
// nothing back while it reads).
func (c *wsconn) busy() bool {
	return c.blocked.Load() || c.inCallback.Load() || len(c.sem) > 0
}

// ping runs the OnPing hook, then answers (unless the hook closed).
func (c *wsconn) ping(p []byte) {
	if f := c.ch.set.onPing; f != nil {
		c.inCallback.Store(true)
		f(c.ch, p)
		c.inCallback.Store(false)
	}
	_ = c.ws.WritePong(p) // refused by the engine once a close frame is out
}

func (c *wsconn) pong(p []byte) {
	if len(p) != 8 {
		return
	}
	at := int64(binary.BigEndian.Uint64(p))
	if at != c.pingAt.Load() || c.ponged.Load() {
		return
	}
	c.ponged.Store(true)
	// From when the ping went out if that is known yet (it may have waited
	// behind a large write), else from when it was queued.
	c.ch.rtt.Store(monotime() - max(at, c.pingSent.Load()))
}
