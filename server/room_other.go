//go:build !linux

package server

import "net"

// limitUnsent does nothing on this system: see room_linux.go.
func limitUnsent(net.Conn, int) {}
