//go:build js

package wschan

// The browser's half of Dial (GOOS=js): the page's WebSocket object under
// the same Channel. The browser does the handshake, TLS, framing, masking,
// UTF-8 checks, compression and pongs; this file turns its events into
// connEvents and its methods into an engineConn.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"
)

// checkDialOptions refuses, by name, the options a browser cannot honour,
// and turns off the keepalive (browsers answer pings but cannot send
// them, and do not tell a page about pings).
func checkDialOptions(o *DialOptions) error {
	var bad string
	switch {
	case len(o.Header) > 0:
		bad = "Header (a browser sets the handshake's headers itself; use Subprotocols or the URL)"
	case o.Proxy != nil:
		bad = "Proxy (the browser uses its own proxy settings)"
	case o.TLSConfig != nil:
		bad = "TLSConfig (the browser verifies certificates itself)"
	case o.NetDial != nil:
		bad = "NetDial (the browser opens the connection)"
	case o.PingInterval != 0 || o.PingTimeout != 0:
		bad = "PingInterval/PingTimeout (a browser cannot send pings)"
	case o.OnPing != nil:
		bad = "OnPing (a browser does not report pings)"
	case o.EnableCompression:
		bad = "EnableCompression (the browser negotiates compression itself)"
	case o.ReadLimit != 0:
		bad = "ReadLimit (the browser receives whole messages before the page sees them)"
	}
	if bad != "" {
		return fmt.Errorf("%w: %s", ErrUnsupportedOption, bad)
	}
	o.PingInterval, o.PingTimeout = -1, -1
	o.ReadLimit = -1
	return nil
}

// dialConn opens one WebSocket with the browser and waits until it is
// open; the connection is returned not yet running.
func dialConn(ctx context.Context, u *url.URL, o *DialOptions, ch *Channel) (c *wsconn, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("wschan: dial %s: %w", u.Redacted(), err)
		}
	}()
	timeout := durationOr(o.HandshakeTimeout, DefaultHandshakeTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	protocols := make([]any, len(o.Subprotocols))
	for i, p := range o.Subprotocols {
		protocols[i] = p
	}
	j, err := newJSConn(u.String(), protocols)
	if err != nil {
		return nil, err
	}
	select {
	case <-j.opened:
	case <-j.failed:
		j.release()
		return nil, errors.New("the browser could not open the WebSocket (a browser does not tell a page why: " +
			"refused, DNS, TLS, an HTTP status other than 101, or the server's origin check)")
	case <-ctx.Done():
		j.abort()
		j.release()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: handshake not completed in time: %w", ErrTimeout, context.DeadlineExceeded)
		}
		return nil, ctx.Err()
	}
	return newWSConn(ch, j, j.ws.Get("protocol").String()), nil
}

// jsConn is one browser WebSocket as an engineConn.
type jsConn struct {
	ws    js.Value
	ev    connEvents
	funcs []js.Func

	opened, failed chan struct{}
	openOnce       sync.Once

	mu    sync.Mutex
	queue []jsEvent     // events from the browser, in order
	wake  chan struct{} // signalled when queue grows

	last     atomic.Int64 // monotime of the last message
	shut     atomic.Bool
	closeMu  sync.Mutex
	intended closeFrame // what writeClose was asked for
	sent     closeFrame // what went to the browser's close()
	hold     *time.Timer
}

var _ engineConn = (*jsConn)(nil)

// jsEvent is a message or the end, as the browser reported it.
type jsEvent struct {
	end    bool
	typ    MessageType
	data   []byte
	code   int
	reason string
	local  bool // ended by this side (abort, or the close deadline), not the browser
}

func newJSConn(rawURL string, protocols []any) (j *jsConn, err error) {
	defer func() {
		if r := recover(); r != nil { // the constructor throws on a bad URL or protocol
			err = fmt.Errorf("%w: %v", ErrInvalidURL, r)
		}
	}()
	ctor := js.Global().Get("WebSocket")
	if ctor.IsUndefined() {
		return nil, errors.New("this JavaScript environment has no WebSocket")
	}
	ws := ctor.New(rawURL, js.ValueOf(protocols))
	ws.Set("binaryType", "arraybuffer")
	j = &jsConn{ws: ws, opened: make(chan struct{}), failed: make(chan struct{}), wake: make(chan struct{}, 1)}
	j.on("open", func(js.Value) { j.openOnce.Do(func() { close(j.opened) }) })
	j.on("message", func(e js.Value) {
		d := e.Get("data")
		if d.Type() == js.TypeString {
			j.push(jsEvent{typ: Text, data: []byte(d.String())})
			return
		}
		u8 := js.Global().Get("Uint8Array").New(d)
		b := make([]byte, u8.Get("length").Int())
		js.CopyBytesToGo(b, u8)
		j.push(jsEvent{typ: Binary, data: b})
	})
	j.on("close", func(e js.Value) {
		j.push(jsEvent{end: true, code: e.Get("code").Int(), reason: e.Get("reason").String()})
		select {
		case <-j.opened:
		default:
			close(j.failed)
		}
	})
	return j, nil
}

// on registers a handler for the WebSocket's event; handlers must not
// block (they run on the browser's event loop), so they only queue.
func (j *jsConn) on(event string, f func(js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(args[0])
		return nil
	})
	j.funcs = append(j.funcs, fn)
	j.ws.Set("on"+event, fn)
}

func (j *jsConn) push(e jsEvent) {
	j.mu.Lock()
	j.queue = append(j.queue, e)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// release unregisters the handlers.
func (j *jsConn) release() {
	for _, e := range []string{"open", "message", "close"} {
		j.ws.Set("on"+e, js.Null())
	}
	for _, f := range j.funcs {
		f.Release()
	}
}

func (j *jsConn) bind(ev connEvents) { j.ev = ev }

// serve hands the browser's events to the channel until the end.
func (j *jsConn) serve() {
	j.last.Store(monotime())
	for {
		j.mu.Lock()
		q := j.queue
		j.queue = nil
		j.mu.Unlock()
		for _, e := range q {
			if !e.end {
				j.last.Store(monotime())
				j.ev.message(e.typ, e.data, nil)
				continue
			}
			j.shutdown()
			j.release()
			j.ev.end(j.cause(e))
			return
		}
		<-j.wake
	}
}

// cause translates the browser's close event.
func (j *jsConn) cause(e jsEvent) endCause {
	j.closeMu.Lock()
	localClose := j.intended.ok
	j.closeMu.Unlock()
	switch {
	case e.local:
		return endCause{err: fmt.Errorf("connection closed by this side: %w", net.ErrClosed)}
	case localClose:
		// The browser reports the peer's answer to our close frame: the
		// closing handshake this side started is complete.
		return endCause{err: net.ErrClosed}
	case e.code == int(StatusAbnormalClosure):
		return endCause{err: errors.New("the browser reports the connection lost (1006)")}
	case e.code == int(StatusNoStatusReceived):
		return endCause{peerClose: true}
	}
	return endCause{peerClose: true, peerCode: uint16(e.code), peerReason: e.reason}
}

func (j *jsConn) writeMessage(typ MessageType, p []byte) (err error) {
	if j.shut.Load() || j.ws.Get("readyState").Int() != 1 {
		return errConnShutDown
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("browser WebSocket send: %v", r)
		}
	}()
	if typ == Text {
		j.ws.Call("send", string(p))
		return nil
	}
	u8 := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(u8, p)
	j.ws.Call("send", u8)
	return nil
}

// errNoPing: browsers send no pings (the keepalive is off in the browser).
var errNoPing = errors.New("a browser cannot send pings")

func (j *jsConn) writePing([]byte) error { return errNoPing }

// writePong does nothing: the browser answers pings itself.
func (j *jsConn) writePong([]byte) error { return nil }

// writeClose asks the browser to close with code and reason. The
// WebSocket API sends only 1000 and 3000-4999; other codes fail here.
func (j *jsConn) writeClose(code StatusCode, reason string) (err error) {
	j.closeMu.Lock()
	if !j.intended.ok {
		j.intended = closeFrame{code: code, reason: reason, ok: true}
	}
	j.closeMu.Unlock()
	if code != StatusNormalClosure && (code < 3000 || code > 4999) {
		return fmt.Errorf("%w: a browser may close with 1000 or 3000-4999 only, not %d", ErrInvalidClose, int(code))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("browser WebSocket close: %v", r)
		}
	}()
	j.ws.Call("close", int(code), reason)
	j.closeMu.Lock()
	if !j.sent.ok {
		j.sent = closeFrame{code: code, reason: reason, ok: true}
	}
	j.closeMu.Unlock()
	return nil
}

func (j *jsConn) setWriteDeadline(time.Time) error { return nil }

// holdOpen ends the connection at deadline if the browser has not
// reported the end by then.
func (j *jsConn) holdOpen(deadline time.Time) {
	j.closeMu.Lock()
	defer j.closeMu.Unlock()
	if j.hold == nil {
		j.hold = time.AfterFunc(time.Until(deadline), j.abort)
	}
}

// abort closes the WebSocket (without a status: the API cannot drop a
// connection) and ends serve now.
func (j *jsConn) abort() {
	func() {
		defer func() { _ = recover() }()
		j.ws.Call("close")
	}()
	j.push(jsEvent{end: true, local: true})
}

func (j *jsConn) shutdown() {
	if j.shut.Swap(true) {
		return
	}
	j.closeMu.Lock()
	if j.hold != nil {
		j.hold.Stop()
	}
	j.closeMu.Unlock()
}

func (j *jsConn) lastRead() int64 { return j.last.Load() }

// blocking: the browser's events come on a goroutine of this connection's.
func (j *jsConn) blocking() {}

func (j *jsConn) sentClose() (StatusCode, string, bool) {
	j.closeMu.Lock()
	defer j.closeMu.Unlock()
	return j.sent.code, j.sent.reason, j.sent.ok
}

func (j *jsConn) intendedClose() (StatusCode, string, bool) {
	j.closeMu.Lock()
	defer j.closeMu.Unlock()
	return j.intended.code, j.intended.reason, j.intended.ok
}
