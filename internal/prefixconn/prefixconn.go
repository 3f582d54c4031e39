// Package prefixconn provides a net.Conn that first serves bytes already
// read from its connection: read ahead by a proxy's answer on the client
// side, or by a server that looked at a request before handing it on.
package prefixconn

import "net"

// Conn reads pre before reading from the embedded connection.
type Conn struct {
	net.Conn
	pre []byte
}

// New returns c serving pre first. pre is not copied.
func New(c net.Conn, pre []byte) *Conn { return &Conn{Conn: c, pre: pre} }

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
