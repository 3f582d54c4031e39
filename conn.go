package wschan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// wsconn is one WebSocket connection under a Channel, on an engine. A
// plain channel has one for its whole life; a reconnecting channel has one
// per connection. It takes turns to send, delivers what arrives to the
// stream or the callbacks, runs the keepalive, and does the closing
// handshake; classifyEnd says how it ended.
type wsconn struct {
	ch       *Channel
	e        engineConn
	k        keepalive
	protocol string

	localClose atomic.Bool           // this side started the closing handshake
	blocked    atomic.Bool           // the read loop waits for the stream's consumer
	inCallback atomic.Bool           // the read loop is inside an OnMessage or OnPing callback
	aborted    atomic.Pointer[error] // a Send's context ended mid-write: why; nil if none
	sem        lazyChan[struct{}]    // one Send writes at a time (see turn)
	sendEnd    atomic.Int64          // monotime the last Send's turn ended
	resumed    atomic.Int64          // monotime the read loop last stopped waiting for the consumer

	streamed bool          // the read loop has put messages in the stream (read loop only)
	failed   bool          // this side failed the connection: nothing more is processed (read loop only)
	live     chan struct{} // reconnecting channels: closed once Send writes to this connection
	stopped  signal        // this side ends the connection (see stop)

	ended     signal // the connection is over
	endCode   StatusCode
	endReason string
	endErr    error
}

var (
	_ connEvents    = (*wsconn)(nil)
	_ keepaliveConn = (*wsconn)(nil)
)

func newWSConn(ch *Channel, e engineConn, protocol string) *wsconn {
	c := &wsconn{ch: ch, e: e, protocol: protocol}
	c.k = keepalive{interval: ch.set.pingInterval, timeout: ch.set.pingTimeout, c: c, now: monotime, sched: tickHeapFor()}
	if ch.client && ch.rc != nil {
		c.live = make(chan struct{}) // see reconnector.open
	}
	e.bind(c)
	return c
}

// run serves the connection on the calling goroutine until it ends.
func (c *wsconn) run() {
	c.k.start()
	c.e.serve()
}

// start serves the connection on a goroutine of its own, or on the
// engine's.
func (c *wsconn) start() {
	if _, ok := c.e.(detachedEngine); ok {
		c.run()
		return
	}
	go c.run()
}

func (c *wsconn) message(typ MessageType, data []byte, buf msgBuf) {
	release := func() {
		if buf != nil {
			_ = buf.Close()
		}
	}
	if c.failed {
		// RFC 6455 7.1.7: once failed, what the peer sends is not processed.
		release()
		return
	}
	if len(data) > c.ch.set.readLimit {
		// Within the engine's allowance for deflate overhead, over ours.
		release()
		c.fail(StatusMessageTooBig, "message too big")
		return
	}
	if typ == Text && !utf8.Valid(data) {
		// Checked here, not by the engine: it would fail the connection at
		// once, before the messages ahead of this one in the stream have
		// been answered.
		release()
		c.fail(StatusInvalidFramePayloadData, "invalid UTF-8")
		return
	}
	if f := c.ch.set.onMessage; f != nil {
		c.inCallback.Store(true)
		f(c.ch, Message{Type: typ, Data: data})
		c.inCallback.Store(false)
		release()
		return
	}
	// The stream takes ownership of the engine's buffer: no copy.
	msg := Message{Type: typ, Data: data, buf: buf}
	c.streamed = true
	stream := c.ch.stream()
	select {
	case stream <- msg:
		return
	default:
	}
	c.blocked.Store(true)
	c.e.blocking()
	select {
	case stream <- msg:
	case <-c.ch.closing.C():
		// Close was called: nobody will read this message.
	}
	c.blocked.Store(false)
	c.resumed.Store(monotime())
}

func (c *wsconn) drain() { c.awaitDrain() }

// fail fails the connection for something the peer sent, once the stream
// has drained (see awaitDrain); the read loop processes nothing after it.
func (c *wsconn) fail(code StatusCode, reason string) {
	c.failed = true
	c.awaitDrain()
	_ = c.e.writeClose(code, reason)
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
	c.e.blocking()
	select {
	case c.ch.stream() <- Message{buf: mark}:
	case <-c.stopped.C():
		return
	case <-t.C:
		return
	}
	select {
	case <-mark.taken:
	case <-c.stopped.C():
		return
	case <-t.C:
		return
	}
	if c.live != nil {
		// A reconnecting channel buffers what is sent before the connection
		// is open: the answers go out when it is.
		select {
		case <-c.live:
		case <-c.stopped.C():
		case <-t.C:
		}
	}
}

// stop tells a read loop waiting in awaitDrain that this side is ending the
// connection: its close frame is out, or the socket is about to close.
func (c *wsconn) stop() { c.stopped.fire() }

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
		c.turn() <- struct{}{}
		err := c.e.writeMessage(typ, data)
		c.releaseSend()
		if err != nil {
			return c.sendErr(err)
		}
		return nil
	}
	select {
	case c.turn() <- struct{}{}:
	case <-done:
		return fmt.Errorf("wschan: send: %w", ctx.Err())
	}
	defer c.releaseSend()
	if cw, ok := c.e.(ctxWriter); ok {
		err := cw.writeMessageUntil(done, typ, data)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errWriteStopped):
			cerr := ctx.Err()
			c.aborted.Store(&cerr)
			c.e.abort()
			return fmt.Errorf("wschan: send: %w", cerr)
		}
		return c.sendErr(err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		err := ctx.Err()
		c.aborted.Store(&err)
		_ = c.e.setWriteDeadline(time.Unix(1, 0))
	})
	err := c.e.writeMessage(typ, data)
	if !stop() {
		<-fired
		if err == nil {
			// The frame went out whole before the deadline took effect:
			// take the deadline back, the connection is fine.
			_ = c.e.setWriteDeadline(time.Time{})
			c.aborted.Store(nil)
			return nil
		}
		return fmt.Errorf("wschan: send: %w", ctx.Err())
	}
	if err != nil {
		return c.sendErr(err)
	}
	return nil
}

// tryWrite sends one data message if that needs no waiting (see
// Channel.TrySend). A refused message does not count as a Send for the
// keepalive: only one that went out does.
func (c *wsconn) tryWrite(typ MessageType, data []byte) (bool, error) {
	if c.localClose.Load() || c.ended.fired() {
		// Set before this side's close frame is written: a TrySend that
		// finds the frame's write holding the socket must not read that
		// as "would wait".
		return false, c.sendErr(net.ErrClosed)
	}
	tw, ok := c.e.(tryWriter)
	if !ok || !tw.tryable() {
		return false, nil
	}
	if typ == Text && !utf8.Valid(data) {
		return false, ErrInvalidUTF8
	}
	select {
	case c.turn() <- struct{}{}:
	default:
		return false, nil // a Send is under way
	}
	sent, err := tw.tryWriteMessage(typ, data)
	if sent {
		c.releaseSend()
	} else {
		<-c.turn()
	}
	if err != nil {
		return false, c.sendErr(err)
	}
	return sent, nil
}

// turn is the Sends' semaphore: sending on it takes the turn.
func (c *wsconn) turn() chan struct{} { return c.sem.get(1) }

// releaseSend ends a Send's turn, noting when for the keepalive.
func (c *wsconn) releaseSend() {
	c.sendEnd.Store(monotime())
	<-c.turn()
}

func (c *wsconn) sendErr(err error) error {
	select {
	case <-c.ended.C():
		return fmt.Errorf("wschan: send: %w", c.endErr)
	default:
	}
	if c.localClose.Load() {
		return fmt.Errorf("wschan: send: %w", ErrClosed)
	}
	return fmt.Errorf("wschan: send: %w: %w", ErrConnectionLost, err)
}

// closeHandshake sends a close frame and waits, up to the close timeout, for
// the peer's close frame; then the socket is closed.
func (c *wsconn) closeHandshake(code StatusCode, reason string) error {
	select {
	case <-c.ended.C():
		return nil
	default:
	}
	c.localClose.Store(true)
	// One deadline bounds a write stuck behind a slow peer, the close frame
	// itself, and the wait for the peer's answer.
	c.e.holdOpen(time.Now().Add(c.ch.set.closeTimeout))
	err := c.e.writeClose(code, reason)
	c.stop()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.e.abort()
	}
	if c.inCallback.Load() {
		// Called from an OnMessage callback: the read loop is this goroutine
		// and finishes the handshake when the callback returns.
		return nil
	}
	<-c.ended.C()
	return nil
}

// end runs once, when the engine is done with the connection.
func (c *wsconn) end(cause endCause) {
	if c.ended.fired() {
		return
	}
	c.k.stop()
	c.e.shutdown()
	c.k.wait()
	r := endRecord{cause: cause, localClose: c.localClose.Load(), timedOut: c.k.timedOut.Load(),
		pingTimeout: c.ch.set.pingTimeout}
	if a := c.aborted.Load(); a != nil {
		r.aborted = *a
	}
	r.sent.code, r.sent.reason, r.sent.ok = c.e.sentClose()
	r.intended.code, r.intended.reason, r.intended.ok = c.e.intendedClose()
	c.endCode, c.endReason, c.endErr = classifyEnd(r)
	c.ch.connEnded(c) // a plain channel finishes before anyone waiting on ended wakes
	c.ended.fire()
}

// The keepalive's view of the connection (keepaliveConn).

func (c *wsconn) lastRead() int64 { return max(c.e.lastRead(), c.resumed.Load()) }

func (c *wsconn) lastSendEnd() int64 { return c.sendEnd.Load() }

func (c *wsconn) writePing(p []byte) error { return c.e.writePing(p) }

func (c *wsconn) abort() { c.e.abort() }

// busy reports whether the connection waits on something with its own
// bound: the read loop on the stream's consumer or a callback, or a Send
// writing (its context bounds it; a slow reader of a large message sends
// nothing back while it reads).
func (c *wsconn) busy() bool {
	return c.blocked.Load() || c.inCallback.Load() || len(c.sem.made()) > 0
}

// ping runs the OnPing hook, then answers (unless the hook closed).
func (c *wsconn) ping(p []byte) {
	if c.failed {
		return
	}
	if f := c.ch.set.onPing; f != nil {
		c.inCallback.Store(true)
		f(c.ch, p)
		c.inCallback.Store(false)
	}
	_ = c.e.writePong(p) // refused by the engine once a close frame is out
}

func (c *wsconn) pong(p []byte) {
	if rtt, ok := c.k.pong(p); ok {
		c.ch.rtt.Store(int64(rtt))
	}
}
