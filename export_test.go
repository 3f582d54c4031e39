package wschan

import (
	"io"
	"net"
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
// limit; beforeFail runs when trouble is found, before the engine sees it.
func WatchedReader(c net.Conn, server bool, beforeFail func()) io.Reader {
	nc := &netConn{Conn: c}
	nc.upgraded.Store(true)
	nc.startWatch(frameRules{masked: server, limit: 1 << 20}, func() {}, beforeFail)
	return nc
}
