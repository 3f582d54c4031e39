//go:build !linux

package wschan

func resetEngine(engineConn) { panic("no other engine here") }
