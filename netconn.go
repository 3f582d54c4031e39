package wschan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// NetConn returns a net.Conn that reads and writes ch's messages of type
// typ as a byte stream, for running another protocol (TLS, HTTP, SSH, a
// database's wire protocol) through a WebSocket, as when tunnelling
// through a proxy that lets only WebSockets out.
//
// Each Write sends p as one message of type typ (a Text message must be
// UTF-8; a Write of zero bytes sends nothing). Read returns the bytes of
// one message after another with no boundaries, across as many Reads as a
// message needs; empty messages are skipped. A message of the other type
// is a protocol error: Read closes the channel with 1003 (unsupported
// data) and returns an error.
//
// Read and Write honour deadlines as a net.Conn's do: an operation whose
// deadline has passed fails at once with an error that matches
// os.ErrDeadlineExceeded (errors.Is) and is a net.Error with Timeout()
// true; a deadline set while an operation waits applies to it. A read that
// times out loses nothing: the next Read continues where the stream was.
// A write that times out while its message is half written leaves the
// WebSocket unusable (Send drops it, as a TCP write that timed out mid-way
// would have left the stream's state unknown); one that times out waiting
// for its turn sends nothing.
//
// Close sends a close frame with 1000 (normal closure) and waits for the
// peer's answer (see Channel.Close); Read and Write fail with net.ErrClosed
// afterwards, and a second Close returns an error matching net.ErrClosed.
// When the peer closes with 1000 or 1001, Read returns io.EOF once every
// byte sent before the close frame has been read; any other end is
// returned as the error that ended the channel (see Channel.Err).
//
// ctx bounds the net.Conn's life: once it ends, Read and Write fail with
// its error (the channel stays open until Close). LocalAddr and RemoteAddr
// return a placeholder address whose network is "websocket": a Channel
// does not expose its socket's addresses.
//
// All methods are safe for concurrent use, as net.Conn requires; Reads
// take turns. Use NetConn on a channel without Reconnect (bytes in flight
// when a connection drops would be lost from the stream), and do not read
// from ch by other means while the net.Conn is in use. NetConn uses only
// Channel's exported API.
func NetConn(ctx context.Context, ch *Channel, typ MessageType) net.Conn {
	nc := &netConn{ch: ch, typ: typ}
	nc.readDL.init(ctx)
	nc.writeDL.init(ctx)
	return nc
}

// netConn is NetConn's net.Conn.
type netConn struct {
	ch  *Channel
	typ MessageType

	readMu sync.Mutex // Reads take turns: cur and rest are theirs
	cur    Message    // the message being read, released when it is used up
	rest   []byte     // what is left of cur.Data

	readDL  deadline
	writeDL deadline
	closed  atomic.Bool
}

var _ net.Conn = (*netConn)(nil)

func (nc *netConn) Read(p []byte) (int, error) {
	nc.readMu.Lock()
	defer nc.readMu.Unlock()
	if nc.closed.Load() {
		return 0, nc.opErr("read", net.ErrClosed)
	}
	ctx := nc.readDL.context()
	if ctx.Err() != nil { // a deadline in the past fails at once, data or not
		return 0, nc.opErr("read", ctxCause(ctx))
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(nc.rest) == 0 {
		nc.cur.Release()
		m, err := nc.ch.Read(ctx)
		if err != nil {
			return 0, nc.readErr(ctx, err)
		}
		if m.Type != nc.typ {
			m.Release()
			_ = nc.ch.Close(StatusUnsupportedData, "expected "+nc.typ.String()+" messages")
			return 0, nc.opErr("read", fmt.Errorf("wschan: netconn: got a %s message, want %s", m.Type, nc.typ))
		}
		nc.cur, nc.rest = m, m.Data
	}
	n := copy(p, nc.rest)
	nc.rest = nc.rest[n:]
	if len(nc.rest) == 0 {
		nc.cur.Release() // the bytes have been copied out
		nc.rest = nil
	}
	return n, nil
}

// readErr maps an error from Channel.Read to what a net.Conn returns.
func (nc *netConn) readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nc.opErr("read", ctxCause(ctx))
	}
	if errors.Is(err, ErrClosed) {
		return nc.opErr("read", net.ErrClosed)
	}
	var ce *CloseError
	if errors.As(err, &ce) && ce.Remote && (ce.Code == StatusNormalClosure || ce.Code == StatusGoingAway) {
		return io.EOF
	}
	return nc.opErr("read", err)
}

func (nc *netConn) Write(p []byte) (int, error) {
	if nc.closed.Load() {
		return 0, nc.opErr("write", net.ErrClosed)
	}
	ctx := nc.writeDL.context()
	if ctx.Err() != nil {
		return 0, nc.opErr("write", ctxCause(ctx))
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := nc.ch.Send(ctx, nc.typ, p); err != nil {
		switch {
		case ctx.Err() != nil:
			err = ctxCause(ctx)
		case errors.Is(err, ErrClosed):
			err = net.ErrClosed
		}
		return 0, nc.opErr("write", err)
	}
	return len(p), nil
}

func (nc *netConn) Close() error {
	if nc.closed.Swap(true) {
		return nc.opErr("close", net.ErrClosed)
	}
	nc.readDL.close() // a Read or Write under way returns now
	nc.writeDL.close()
	return nc.ch.Close(StatusNormalClosure, "")
}

func (nc *netConn) LocalAddr() net.Addr  { return netConnAddr{} }
func (nc *netConn) RemoteAddr() net.Addr { return netConnAddr{} }

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.readDL.set(t)
	nc.writeDL.set(t)
	return nil
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	nc.readDL.set(t)
	return nil
}

func (nc *netConn) SetWriteDeadline(t time.Time) error {
	nc.writeDL.set(t)
	return nil
}

func (nc *netConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "websocket", Err: err}
}

// netConnAddr is the placeholder address of a NetConn.
type netConnAddr struct{}

func (netConnAddr) Network() string { return "websocket" }
func (netConnAddr) String() string  { return "websocket" }

// ctxCause is why ctx ended: os.ErrDeadlineExceeded for a deadline,
// net.ErrClosed after Close, else the error of the context NetConn was
// given.
func ctxCause(ctx context.Context) error {
	switch c := context.Cause(ctx); c {
	case os.ErrDeadlineExceeded, net.ErrClosed:
		return c
	}
	return ctx.Err()
}

// deadline is a net.Conn deadline as a context, which the Channel's
// blocking methods take. The context lives until the deadline passes (it
// is then cancelled with os.ErrDeadlineExceeded as its cause) or its
// parent ends; moving a deadline that has not passed re-arms the timer of
// the same context, so an operation already waiting on it sees the new
// deadline; moving one that has passed starts a new context.
type deadline struct {
	parent context.Context

	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer // fires cancel; belongs to ctx
	closed bool        // the net.Conn is closed: ctx stays cancelled
}

func (d *deadline) init(parent context.Context) {
	d.parent = parent
	d.ctx, d.cancel = context.WithCancelCause(parent)
}

// context returns the context operations started now wait on.
func (d *deadline) context() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

// set moves the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.stopTimer()
	var dur time.Duration
	if !t.IsZero() {
		if dur = time.Until(t); dur <= 0 {
			d.cancel(os.ErrDeadlineExceeded)
			return
		}
	}
	if d.ctx.Err() != nil {
		d.ctx, d.cancel = context.WithCancelCause(d.parent)
	}
	if dur > 0 {
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { cancel(os.ErrDeadlineExceeded) })
	}
}

// close cancels the context for good, with net.ErrClosed as its cause.
func (d *deadline) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.stopTimer()
	d.cancel(net.ErrClosed)
}

// stopTimer stops the timer; if it has fired, it waits until ctx is
// cancelled, so that a late timer cannot cancel a context moved past it.
func (d *deadline) stopTimer() {
	if d.timer != nil && !d.timer.Stop() {
		<-d.ctx.Done()
	}
	d.timer = nil
}
