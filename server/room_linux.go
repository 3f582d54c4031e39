package server

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// limitUnsent caps at n the bytes the kernel holds for c that it has not
// sent yet (TCP_NOTSENT_LOWAT): a write waits while more are queued, and
// wakes as soon as the peer takes some. Without the cap a send buffer
// grows to megabytes behind a slow reader, and a write then waits until a
// third of it has drained: for a room member that reads slowly, longer
// than the write timeout, so its message in progress is abandoned and it
// is dropped with no close frame (1006) where it should read 1008 and why.
// The bytes in flight, which the peer's window allows, are not limited.
// Errors are ignored: the connection then works as before.
func limitUnsent(c net.Conn, n int) {
	sc, ok := rawConn(c).(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n)
	})
}

// rawConn returns the socket under c's TLS and PROXY protocol layers.
func rawConn(c net.Conn) net.Conn {
	for {
		switch u := c.(type) {
		case *tls.Conn:
			c = u.NetConn()
		case *proxyConn:
			c = u.Raw()
		default:
			return c
		}
	}
}
