package server

import "syscall"

func errAddrInUse() error { return syscall.EADDRINUSE }
