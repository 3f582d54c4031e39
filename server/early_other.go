//go:build !linux

package server

import "net"

// readHeads: heads are read on the poller on Linux only (early_linux.go);
// elsewhere each is read on a goroutine of its own.
func (el *earlyListener) readHeads(net.Conn) bool { return false }
