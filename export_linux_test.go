package wschan

import "golang.org/x/sys/unix"

// resetEngine resets a poll engine connection's socket.
func resetEngine(e engineConn) {
	p := e.(*pollConn)
	p.fdmu.RLock()
	if !p.closed {
		_ = unix.SetsockoptLinger(p.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	p.fdmu.RUnlock()
	p.abort()
}

func (c *pollConn) pendingBytes() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.pend)
}

// HoldsParser reports whether ch's connection, on the poll engine, holds a
// frame parser (it should only while a frame or message is partly read).
func HoldsParser(ch *Channel) bool {
	c := ch.cur.Load()
	if c == nil {
		return false
	}
	p, ok := c.e.(*pollConn)
	return ok && p.parser.Load() != nil
}
