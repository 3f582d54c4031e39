package wschan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

// The gws engine: github.com/lxzan/gws, one goroutine per connection
// running its read loop. This file and gws_transport.go are the only ones
// that know it; everything else sees an engineConn.

// gwsConn is one connection on gws.
type gwsConn struct {
	ws *gws.Conn
	t  *gwsTransport
	ev connEvents

	rules frameRules // what the guard expects of incoming frames

	// Writes hold wmu for reading; shutdown takes it for writing once, so
	// that no write is under way or can start when the engine recycles the
	// connection's compression window after the read loop (gws v1.8.9 does
	// that without its write lock).
	wmu     sync.RWMutex
	wclosed bool
}

var _ engineConn = (*gwsConn)(nil)

// newGWSConn wraps an upgraded gws connection.
func newGWSConn(ws *gws.Conn, t *gwsTransport, server, deflate bool, readLimit int) *gwsConn {
	g := &gwsConn{ws: ws, t: t, rules: frameRules{masked: server, deflate: deflate, limit: uint64(engineLimit(readLimit))}}
	ws.Session().(*slot).g = g
	t.upgraded.Store(true)
	return g
}

func (g *gwsConn) bind(ev connEvents) {
	g.ev = ev
	g.t.startWatch(g.rules, func(code StatusCode, reason string) { _ = g.writeClose(code, reason) }, ev.drain)
}

func (g *gwsConn) serve() {
	g.t.lastRead.Store(monotime())
	defer func() {
		// The engine panics on some malformed frames (for example a 64-bit
		// length with the top bit set). Fail the connection as a protocol
		// error instead of taking the process down.
		if r := recover(); r != nil {
			_ = g.writeClose(StatusProtocolError, "")
			g.ev.end(endCause{malformed: true, detail: fmt.Sprint(r)})
		}
	}()
	g.ws.ReadLoop()
}

func (g *gwsConn) writeMessage(typ MessageType, p []byte) error {
	return g.locked(func() error { return g.ws.WriteMessage(gws.Opcode(typ), p) })
}

// tryWriteMessage writes a data message around the engine when the socket
// takes it at once (see tryWriter), on a connection that is tryable.
func (g *gwsConn) tryWriteMessage(typ MessageType, p []byte) (bool, error) {
	g.wmu.RLock()
	defer g.wmu.RUnlock()
	if g.wclosed {
		return false, errConnShutDown
	}
	sent, err := g.t.tryWrite(byte(typ), p)
	if err != nil && err != errConnShutDown {
		_ = g.t.forceClose() // the stream may be mid-frame
	}
	return sent, err
}

// tryable: see tryWriter. Only a server's connection over a socket of
// its own, without permessage-deflate: a client masks its frames, and a
// compressed message needs the engine's compression window.
func (g *gwsConn) tryable() bool {
	_, plain := g.t.Conn.(syscall.Conn)
	return canTryWrite && plain && g.rules.masked && !g.rules.deflate
}

func (g *gwsConn) writePing(p []byte) error {
	return g.locked(func() error { return g.ws.WritePing(p) })
}

// writePong runs on the read loop (from the ping event): the connection
// cannot have been recycled under it.
func (g *gwsConn) writePong(p []byte) error { return g.ws.WritePong(p) }

func (g *gwsConn) writeClose(code StatusCode, reason string) error {
	g.t.ledger.closing(code, reason) // tells this frame from one the engine sends on its own
	return g.locked(func() error { return g.ws.WriteClose(uint16(code), []byte(reason)) })
}

// locked runs a write unless the connection has been shut down.
func (g *gwsConn) locked(write func() error) error {
	g.wmu.RLock()
	defer g.wmu.RUnlock()
	if g.wclosed {
		return errConnShutDown
	}
	return write()
}

// errConnShutDown is what a write after shutdown returns.
var errConnShutDown = fmt.Errorf("connection shut down: %w", net.ErrClosed)

func (g *gwsConn) setWriteDeadline(t time.Time) error { return g.t.SetWriteDeadline(t) }

func (g *gwsConn) holdOpen(deadline time.Time) {
	g.t.hold.Store(true)
	_ = g.t.SetDeadline(deadline)
}

func (g *gwsConn) abort() {
	g.t.hold.Store(false)
	_ = g.t.forceClose() // fails any write still blocked on the socket
}

func (g *gwsConn) shutdown() {
	g.abort()
	g.wmu.Lock()
	g.wclosed = true
	g.wmu.Unlock()
}

func (g *gwsConn) lastRead() int64 { return g.t.lastRead.Load() }

// blocking: the read loop is this connection's own goroutine.
func (g *gwsConn) blocking() {}

func (g *gwsConn) sentClose() (StatusCode, string, bool) { return g.t.ledger.sent() }

func (g *gwsConn) intendedClose() (StatusCode, string, bool) { return g.t.ledger.intended() }

// discardLogger keeps the engine quiet: the library never logs.
type discardLogger struct{}

func (discardLogger) Error(...any) {}

// slot is the engine's per-connection session storage, holding just the
// gwsConn it belongs to (the engine's default is a map per connection).
type slot struct{ g *gwsConn }

func (*slot) Len() int                     { return 0 }
func (*slot) Load(string) (any, bool)      { return nil, false }
func (*slot) Delete(string)                {}
func (*slot) Store(string, any)            {}
func (*slot) Range(func(string, any) bool) {}
func newSlot() gws.SessionStorage          { return new(slot) }
func gwsOf(s *gws.Conn) *gwsConn           { return s.Session().(*slot).g }

var _ gws.SessionStorage = (*slot)(nil)

// handler turns the engine's callbacks into connEvents. It is stateless;
// the connection is found through the session slot.
type handler struct{}

var _ gws.Event = handler{}

func (handler) OnOpen(*gws.Conn) {}

func (handler) OnPing(s *gws.Conn, payload []byte) { gwsOf(s).ev.ping(payload) }

func (handler) OnPong(s *gws.Conn, payload []byte) { gwsOf(s).ev.pong(payload) }

func (handler) OnMessage(s *gws.Conn, m *gws.Message) {
	gwsOf(s).ev.message(MessageType(m.Opcode), m.Bytes(), m)
}

func (handler) OnClose(s *gws.Conn, err error) {
	var cause endCause
	var gce *gws.CloseError
	if errors.As(err, &gce) { // the peer sent a close frame
		cause = endCause{peerClose: true, peerCode: gce.Code, peerReason: string(gce.Reason)}
		if gce.Code == 0 {
			// The engine reports an empty payload and a status of 0 alike;
			// it answers the first with an empty close frame, the second
			// with 1002.
			sent, _, _ := gwsOf(s).sentClose()
			cause.peerNoStatus = sent != StatusProtocolError
		}
	} else {
		cause.err = err
	}
	gwsOf(s).ev.end(cause)
}

func deflate(on bool) gws.PermessageDeflate {
	return gws.PermessageDeflate{
		Enabled:               on,
		ServerContextTakeover: true,
		ClientContextTakeover: true,
	}
}

// offersDeflate reports whether a handshake header names permessage-deflate,
// as the engine decides it (on both sides: the first Sec-WebSocket-Extensions
// value contains the name).
func offersDeflate(h http.Header) bool {
	return strings.Contains(h.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
}

// upgraderKey is what makes two Accept configurations need different
// upgraders.
type upgraderKey struct {
	compression bool
	readLimit   int
}

// upgraders caches one upgrader per configuration: an upgrader holds the
// engine's buffer pools, which are shared by its connections. The key
// space is the handful of configurations a program uses.
var upgraders sync.Map // upgraderKey → *gws.Upgrader

func upgraderFor(k upgraderKey) *gws.Upgrader {
	if u, ok := upgraders.Load(k); ok {
		return u.(*gws.Upgrader)
	}
	u := gws.NewUpgrader(handler{}, &gws.ServerOption{
		ReadMaxPayloadSize:  engineLimit(k.readLimit),
		WriteMaxPayloadSize: math.MaxInt32,
		CheckUtf8Enabled:    false, // see wsconn.message and frameWatch
		PermessageDeflate:   deflate(k.compression),
		Logger:              discardLogger{},
		NewSession:          newSlot,
	})
	actual, _ := upgraders.LoadOrStore(k, u)
	return actual.(*gws.Upgrader)
}

// acceptGWS completes the server handshake for request r on its hijacked
// connection, whose read-ahead is in br, selecting protocol (if not "").
func acceptGWS(conn net.Conn, br *bufio.Reader, r *http.Request, protocol string, compression bool, readLimit int) (*gwsConn, error) {
	t := &gwsTransport{Conn: conn}
	if n := br.Buffered(); n > 0 {
		// Frames the client sent right behind its request.
		pre, _ := br.Peek(n)
		t.hs.pre = slices.Clone(pre)
	}
	br.Reset(t)
	if protocol != "" {
		t.hs.injectHeader = "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	up := upgraderFor(upgraderKey{compression: compression, readLimit: readLimit})
	ws, err := up.UpgradeFromConn(t, br, r)
	if err != nil {
		return nil, err
	}
	return newGWSConn(ws, t, true, compression && offersDeflate(r.Header), readLimit), nil
}

// acceptGWSStream completes the server handshake for an HTTP/2 extended
// CONNECT r (RFC 8441) on its stream. The engine knows only HTTP/1.1
// upgrades: it is shown the upgrade request r stands for (RFC 8441 drops
// Sec-WebSocket-Key; a stand-in takes its place), and its 101 response is
// kept off the wire by the transport; the caller answers 200 with the
// response's headers, returned here (Sec-WebSocket-Extensions).
func acceptGWSStream(stream net.Conn, r *http.Request, compression bool, readLimit int) (*gwsConn, http.Header, error) {
	t := &gwsTransport{Conn: stream}
	t.hs.swallow = true
	req := &http.Request{Method: http.MethodGet, URL: r.URL, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.Header.Clone(), Host: r.Host, RemoteAddr: r.RemoteAddr}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Key", "d3NjaGFuIG92ZXIgaDIgIQ==")
	req.Header.Del("Sec-WebSocket-Protocol") // Accept answers it
	up := upgraderFor(upgraderKey{compression: compression, readLimit: readLimit})
	ws, err := up.UpgradeFromConn(t, bufio.NewReader(t), req)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(t.hs.response)), req)
	if err != nil {
		_ = t.forceClose()
		return nil, nil, fmt.Errorf("engine handshake response: %w", err)
	}
	t.hs.swallow, t.hs.response = false, nil
	return newGWSConn(ws, t, true, compression && offersDeflate(r.Header), readLimit), resp.Header, nil
}

// dialGWS performs the client handshake on raw. On failure resp, when not
// nil, is the server's answer, its body still readable; the caller closes
// raw.
func dialGWS(raw net.Conn, url string, header http.Header, timeout time.Duration, compression bool, readLimit int) (*gwsConn, *http.Response, error) {
	t := &gwsTransport{Conn: raw}
	t.hs.splitResponse = true
	t.hold.Store(true) // the engine closes its conn when it gives up
	ws, resp, err := gws.NewClientFromConn(handler{}, &gws.ClientOption{
		Addr:                url,
		RequestHeader:       header,
		HandshakeTimeout:    timeout,
		ReadMaxPayloadSize:  engineLimit(readLimit),
		WriteMaxPayloadSize: math.MaxInt32,
		CheckUtf8Enabled:    false, // see wsconn.message and frameWatch
		PermessageDeflate:   deflate(compression),
		Logger:              discardLogger{},
		NewSession:          newSlot,
	}, t)
	if err != nil {
		return nil, resp, err
	}
	t.hold.Store(false)
	return newGWSConn(ws, t, false, compression && offersDeflate(resp.Header), readLimit), resp, nil
}

// handshakeReason is the engine's handshake error as a reason for a user.
func handshakeReason(err error) string { return strings.TrimPrefix(err.Error(), "gws: ") }
