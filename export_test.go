package wschan

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// Internals exposed to the external test package.
var (
	ParseClosePayload = parseClosePayload
	ParseCloseFrame   = parseCloseFrame
	ParseURL          = parseURL
)

// FrameWatch exposes the incoming frame follower to tests.
type FrameWatch = frameWatch

// NewFrameWatch returns a watcher for frames that must be masked or not,
// with or without permessage-deflate, and a frame and message limit.
func NewFrameWatch(masked, deflate bool, limit uint64) *FrameWatch {
	return &frameWatch{rules: frameRules{masked: masked, deflate: deflate, limit: limit}}
}

// The verdicts of FrameWatch.Feed.
const (
	FrameOK  = int(frameOK)
	FrameBad = int(frameBad)
	TextBad  = int(textBad)
)

// Feed observes one read and returns the cut and the verdict.
func (w *frameWatch) Feed(p []byte) (cut, verdict int) {
	c, v := w.feed(p)
	return c, int(v)
}

// WatchedReader returns the transport's reader over c after the upgrade,
// following frames as a server (masked) or a client would, with a 1 MiB
// limit; when trouble is found, beforeFail runs, then fail with the close
// code the connection fails with.
func WatchedReader(c net.Conn, server bool, beforeFail func(), fail func(code int)) io.Reader {
	t := &gwsTransport{Conn: c}
	t.upgraded.Store(true)
	t.startWatch(frameRules{masked: server, limit: 1 << 20}, func(code StatusCode, _ string) { fail(int(code)) }, beforeFail)
	return t
}

func init() {
	// The package's tests run on each engine in turn: scripts/test sets
	// WSCHAN_TEST_ENGINE for the second run.
	if e := os.Getenv("WSCHAN_TEST_ENGINE"); e != "" {
		if err := checkEngine(Engine(e)); err != nil {
			panic("WSCHAN_TEST_ENGINE: " + err.Error())
		}
		defaultEngine = Engine(e)
	}
}

// Engines are the engines behaviour tests run over: for each, set it on
// the options with UseEngine.
var Engines = engines

// UseEngine makes the channels Accept or Dial creates with o (an
// *AcceptOptions or *DialOptions) run on the named engine.
func UseEngine(o any, name Engine) {
	switch o := o.(type) {
	case *AcceptOptions:
		o.Engine = name
	case *DialOptions:
		o.engine = name
	default:
		panic(fmt.Sprintf("UseEngine(%T)", o))
	}
}

// ResetConn drops an accepted connection as the kernel does for a process
// that dies: no close frame, the socket reset. c is the net.Conn the
// server accepted; an engine that moved the socket away from it (the poll
// engine) is found through detached.
func ResetConn(c net.Conn) {
	if e, ok := detached.Load(c); ok {
		resetEngine(e.(engineConn))
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// detached maps accepted connections to the engine connections that took
// their sockets.
var detached sync.Map

func init() { onDetach = func(c net.Conn, e engineConn) { detached.Store(c, e) } }

// EngineOf reports the engine under ch's current connection ("" if none).
func EngineOf(ch *Channel) Engine {
	c := ch.cur.Load()
	if c == nil {
		return ""
	}
	if _, ok := c.e.(*gwsConn); ok {
		return EngineGoroutine
	}
	return EnginePoll
}

// TrySendKept reports whether ch's connection holds the rest of a frame a
// TrySend began and the socket did not take.
func TrySendKept(ch *Channel) bool {
	c := ch.cur.Load()
	if c == nil {
		return false
	}
	p, ok := c.e.(interface{ pendingBytes() int })
	return ok && p.pendingBytes() > 0
}

func (g *gwsConn) pendingBytes() int {
	if t := g.t.try; t != nil && t.kept.Load() {
		return 1
	}
	return 0
}
