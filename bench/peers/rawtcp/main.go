// Command rawtcp is the loopback limit for scripts/bench-peers: a TCP server
// that writes back every byte it reads, with no WebSocket framing, masking
// or handshake. One goroutine per connection; its read buffer starts at
// 4 KiB (the read buffer of gws and of net/http) and doubles, up to 64 KiB,
// while reads fill it, so a 16 KiB message is not split into four reads.
package main

import (
	"net"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

func main() {
	addr := peer.Flags()
	ln := peer.Listen("rawtcp", addr)
	go func() {
		<-peer.Signaled().Done()
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go echo(c)
	}
}

func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n == len(buf) && len(buf) < 64<<10 {
			buf = make([]byte, 2*len(buf))
		}
	}
}
