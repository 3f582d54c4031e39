package wschan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"time"
)

// The channel's connection logic (wsconn, keepalive, the closing handshake,
// the end's classification) sits on an engine through one seam: an
// engineConn is one WebSocket connection's frames, and it reports what
// arrives through connEvents. The engine owns framing, masking,
// fragmentation, permessage-deflate and the close frame's wire format.
// Today's engine is github.com/lxzan/gws, a goroutine per connection
// (gws.go, gws_transport.go); nothing of it appears outside those files.
//
// The seam is shaped so that an engine that cannot block in a callback (a
// poller) fits too: writes are whole operations the engine owns, the end
// comes as one record, and the one place the read side waits for the
// application (the stream's back-pressure, deliver; the drain before
// failing, awaitDrain) is a call the engine makes and may turn into
// "pause, then resume".

// engineConn is one connection on an engine. Writes may be called from any
// goroutine; the engine serialises them. After shutdown every write fails.
type engineConn interface {
	// bind sets where events go; it is called once, before serve.
	bind(ev connEvents)
	// serve runs the connection until it ends; the last event is end.
	serve()

	writeMessage(typ MessageType, p []byte) error
	writePing(p []byte) error
	writePong(p []byte) error
	// writeClose sends this side's close frame (see sentClose).
	writeClose(code StatusCode, reason string) error
	// setWriteDeadline bounds writes under way and to come (zero: none).
	setWriteDeadline(t time.Time) error

	// holdOpen keeps the socket open after the close frame has gone out,
	// until the peer's close frame, shutdown, or the deadline (closing
	// handshake).
	holdOpen(deadline time.Time)
	// abort closes the socket now: writes and the read side fail.
	abort()
	// shutdown aborts and returns once no write is under way; it runs
	// once, from end.
	shutdown()

	// lastRead is the monotime of the last bytes received.
	lastRead() int64
	// sentClose reports the close frame this side wrote, if any;
	// intendedClose the one writeClose was asked for, if any.
	sentClose() (StatusCode, string, bool)
	intendedClose() (StatusCode, string, bool)

	// blocking is called on the read side before it waits for the
	// application (a full stream, the drain before failing): an engine
	// that reads many connections on one goroutine lets the others go on.
	blocking()
}

// detachedEngine is an engineConn whose serve starts the connection on the
// engine's own goroutines and returns at once.
type detachedEngine interface{ detached() }

// connEvents is what an engine reports for one connection, from its read
// side, one at a time and in order.
type connEvents interface {
	// message delivers a complete data message; buf (nil or not) holds
	// the memory behind data and passes to whoever keeps the message.
	message(typ MessageType, data []byte, buf msgBuf)
	ping(p []byte)
	pong(p []byte)
	// drain runs before the engine fails the connection for something the
	// peer sent: see wsconn.awaitDrain.
	drain()
	// end reports how the connection ended; nothing follows it.
	end(cause endCause)
}

// endCause is why an engine's connection ended, in the engine's words
// translated to none.
type endCause struct {
	// peerClose: the peer sent a close frame with code peerCode and
	// peerReason; peerNoStatus when the frame had no payload at all (a
	// status code of 0 is an invalid code, not a missing one).
	peerClose    bool
	peerNoStatus bool
	peerCode     uint16
	peerReason   string
	// malformed: the engine could not parse what the peer sent (detail
	// says what); it has sent 1002.
	malformed bool
	detail    string
	// err is the transport's or the engine's error otherwise.
	err error
}

// Engine is what runs a server's connections: see AcceptOptions.Engine.
type Engine string

const (
	// EngineGoroutine reads each connection on a goroutine of its own
	// (github.com/lxzan/gws underneath). It is the default, and the only
	// engine of Dial.
	EngineGoroutine Engine = "goroutine"
	// EnginePoll keeps connections in the operating system's poller (epoll,
	// Linux only): a connection waiting for its peer holds no goroutine and
	// no read buffer, a few kilobytes in all. Connections it cannot run
	// (TLS, HTTP/2, other systems than Linux) run on
	// EngineGoroutine; the behaviour is the same on both.
	EnginePoll Engine = "poll"
)

// defaultEngine is Accept's engine when AcceptOptions.Engine is empty.
// Tests of the whole package run over another one by setting it
// (WSCHAN_TEST_ENGINE, export_test.go).
var defaultEngine = EngineGoroutine

// onDetach, in tests, learns which engine connection took the socket of
// an accepted net.Conn (export_test.go: ResetConn).
var onDetach func(net.Conn, engineConn)

// engines are the engines a channel can run on; the first is the default.
var engines = []Engine{EngineGoroutine, EnginePoll}

// checkEngine refuses an engine that is not in engines.
func checkEngine(e Engine) error {
	if e == "" || slices.Contains(engines, e) {
		return nil
	}
	return fmt.Errorf("unknown engine %q (want %q or %q)", e, EngineGoroutine, EnginePoll)
}

// readLimit maps a ReadLimit option to bytes: 0 is the default, negative
// the largest an engine can address.
func readLimit(n int64) int {
	switch {
	case n == 0:
		return DefaultReadLimit
	case n < 0 || n > maxEngineLimit:
		return maxEngineLimit
	}
	return int(n)
}

const maxEngineLimit = math.MaxInt32 - 1<<20

// engineLimit is the limit given to the engine for a message limit of n.
// The engine applies one number to both the frame on the wire and the
// inflated message; a compressed message of exactly n bytes that deflate
// could not shrink is longer than n on the wire: 5 bytes per stored block,
// and small windows make small blocks (measured: +0.03% with a 32 KiB
// window, +0.22% with the 4 KiB window this engine negotiates with context
// takeover). So the engine gets 1/32 more room, and the channel holds the
// message itself to exactly n (deliver).
func engineLimit(n int) int {
	return min(n+n>>5+1024, math.MaxInt32)
}

// clockBase is the monotonic origin of monotime.
var clockBase = time.Now()

// monotime is a monotonic clock reading in nanoseconds, cheap to store in
// an atomic.
func monotime() int64 { return int64(time.Since(clockBase)) }

// ctxWriter is an engine that can stop waiting for a peer that does not
// read by itself, when a channel closes: a Send with a context that can
// end then needs no deadline armed around its write (context.AfterFunc
// costs four allocations and a lock per message).
type ctxWriter interface {
	// writeMessageUntil is writeMessage that gives up with errWriteStopped
	// when stop is closed; the caller then drops the connection, as when
	// a deadline ends a write on other engines.
	writeMessageUntil(stop <-chan struct{}, typ MessageType, p []byte) error
}

var errWriteStopped = errors.New("write stopped")

// tryWriter is an engine that can write a message without waiting: a
// TrySend. tryWriteMessage returns false, having sent nothing, when the
// message cannot go out without waiting for the socket or another write;
// true when it is sent, or begun and the rest kept by the engine, to go
// out as the socket drains and before any later frame.
type tryWriter interface {
	// tryable reports whether tryWriteMessage can ever write on this
	// connection.
	tryable() bool
	tryWriteMessage(typ MessageType, p []byte) (bool, error)
}

// frameHeader puts the header of an unmasked final frame with opcode op
// and a payload of n bytes in hb.
func frameHeader(hb *[10]byte, op byte, compressed bool, n int) []byte {
	hb[0] = 0x80 | op
	if compressed {
		hb[0] |= 0x40 // RSV1
	}
	switch {
	case n < 126:
		hb[1] = byte(n)
		return hb[:2]
	case n <= 0xffff:
		hb[1] = 126
		binary.BigEndian.PutUint16(hb[2:], uint16(n))
		return hb[:4]
	}
	hb[1] = 127
	binary.BigEndian.PutUint64(hb[2:], uint64(n))
	return hb[:10]
}
