package wschan

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// netConn is the transport under one WebSocket connection. It sits between
// the engine and the socket so that the channel, not the engine, decides:
//
//   - when the socket really closes: the engine closes its socket as soon as
//     it has written a close frame, which would cut the closing handshake
//     short; while hold is set, the engine's Close is ignored and the read
//     loop keeps running until the peer's close frame (or the deadline) ends it;
//   - what close frame went out: every frame the engine writes is one Write
//     call, so a close frame is seen whole and its status code recorded;
//   - what the handshake response says: a header (the selected subprotocol)
//     can be added to the 101 response before it goes out;
//   - when bytes last arrived, for the dead-peer check.
type netConn struct {
	net.Conn

	pre []byte // bytes read ahead during the HTTP handshake, served first

	upgraded atomic.Bool  // the handshake is over: writes are frames
	hold     atomic.Bool  // ignore the engine's Close (closing handshake, or handshake error body)
	lastRead atomic.Int64 // monotonic nanoseconds of the last read that returned data

	injectHeader string // "Name: value\r\n" added to the first write (the 101 response)

	mu         sync.Mutex
	sentClose  bool
	sentCode   StatusCode
	sentReason string

	closeOnce sync.Once
	closeErr  error
}

// clock is the monotonic origin for lastRead.
var clockBase = time.Now()

func monotime() int64 { return int64(time.Since(clockBase)) }

func (c *netConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(monotime())
	}
	return n, err
}

func (c *netConn) Write(p []byte) (int, error) {
	if !c.upgraded.Load() {
		if c.injectHeader != "" {
			return c.writeInjected(p)
		}
		return c.Conn.Write(p)
	}
	if len(p) >= 2 && p[0]&0x0f == opClose {
		if code, reason, ok := parseCloseFrame(p); ok {
			c.mu.Lock()
			if !c.sentClose {
				c.sentClose, c.sentCode, c.sentReason = true, code, reason
			}
			c.mu.Unlock()
		}
	}
	return c.Conn.Write(p)
}

// writeInjected writes the handshake response p with injectHeader added
// before the blank line that ends the header block.
func (c *netConn) writeInjected(p []byte) (int, error) {
	h := c.injectHeader
	c.injectHeader = ""
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

// sent reports the close frame this side wrote, if any.
func (c *netConn) sent() (code StatusCode, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sentCode, c.sentReason, c.sentClose
}

// Close is what the engine calls; it is ignored while hold is set.
func (c *netConn) Close() error {
	if c.hold.Load() {
		return nil
	}
	return c.forceClose()
}

// forceClose closes the socket, once.
func (c *netConn) forceClose() error {
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
