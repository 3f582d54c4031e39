//go:build !linux

package wschan

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// Without epoll every connection runs on the goroutine engine.

func pollable(net.Conn, bool) bool { return false }

func acceptPoll(net.Conn, *bufio.Reader, *http.Request, string, *settings) (engineConn, error) {
	return nil, errors.New("the poll engine needs Linux")
}
