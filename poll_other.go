//go:build !linux

package wschan

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// Without epoll every connection runs on the goroutine engine.

func pollable(net.Conn) bool { return false }

func acceptPoll(net.Conn, *bufio.Reader, *http.Request, string, bool, *settings) (engineConn, error) {
	return nil, errors.New("the poll engine needs Linux")
}
