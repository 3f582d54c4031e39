package wschan

import (
	"errors"

	"golang.org/x/sys/unix"
)

// canTryWrite: TrySend on the goroutine engine writes the socket once,
// without waiting, through its syscall.RawConn.
const canTryWrite = true

// write is a transportTry's one attempt: a and b with one system call.
func (t *transportTry) write(fd uintptr) bool {
	t.n, t.err = writev(int(fd), t.a, t.b)
	return true // done: never wait for the socket
}

func wouldBlock(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)
}
