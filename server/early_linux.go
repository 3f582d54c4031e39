//go:build linux

package server

import (
	"bytes"
	"net"
	"os"
	"sync"
	"time"

	"github.com/wschan/wschan/internal/poll"
	"golang.org/x/sys/unix"
)

// Request heads on the poller: on Linux the early listener takes each
// accepted socket out of Go's poller at once (and accepts the clients
// waiting behind it with accept4 directly) and reads its request head on
// the poll engine's poller, so a connection whose client has not sent its
// whole head yet holds a small buffer and its socket, no goroutine and no
// socket in Go's poller. Only a whole head (or bytes that cannot be one)
// becomes a net.Conn, for the handler or the http.Server, and the engine
// takes the socket back from it at once. A burst of clients connecting
// together used to be that many goroutines and sockets in Go's poller at
// once; the runtime keeps the poller's per-socket memory for good, and the
// heap the burst left for minutes (BENCHMARKS.md, "Request heads on the
// poller").

// readHeads takes c, just accepted, out of Go's poller and reads its head
// on this package's; then it accepts, the same way, every other client
// already waiting, without Go's poller. False when c has no socket (the
// caller then reads its head on a goroutine).
//
// Only a plain *net.TCPListener's connections: a listener of another type
// (one that limits or filters what it accepts, say) is accepted through,
// and its connections' heads are read on goroutines as before.
func (el *earlyListener) readHeads(c net.Conn) bool {
	ln, ok := el.Listener.(*net.TCPListener)
	if !ok {
		return false
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false
	}
	fd, err := poll.Take(tc)
	if err != nil {
		return false
	}
	_ = tc.Close()
	el.startHead(fd)
	raw, err := ln.SyscallConn()
	if err != nil {
		return true
	}
	// At most drainMax at a time: Control holds the listener, whose Close
	// (stopping the server) waits for it.
	_ = raw.Control(func(s uintptr) {
		for range drainMax {
			fd, _, err := unix.Accept4(int(s), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch {
			case err == nil:
				el.startHead(fd)
			case err == unix.ECONNABORTED || err == unix.EINTR:
				// that client is gone; the next may be waiting
			default:
				return // EAGAIN: none left; anything else: Accept sees it too
			}
		}
	})
	return true
}

// drainMax is how many waiting clients readHeads accepts after one.
const drainMax = 256

// headConn is an accepted socket whose request head is being read on the
// poller.
type headConn struct {
	el    *earlyListener
	fd    int
	reg   *poll.Registration
	timer *time.Timer // the handshake timeout

	mu   sync.Mutex
	done bool   // the socket has moved on, or is closed
	buf  []byte // the head so far
}

// startHead watches fd until its head is whole, for at most the
// handshake timeout.
func (el *earlyListener) startHead(fd int) {
	h := &headConn{el: el, fd: fd}
	h.reg = poll.New(h)
	el.mu.Lock()
	select {
	case <-el.closed:
		el.mu.Unlock()
		_ = unix.Close(fd)
		return
	default:
	}
	el.pending[h] = struct{}{}
	el.mu.Unlock()
	// Under mu, so that neither the timeout nor a Read can close fd (and
	// its number go to another socket) before Add has seen it.
	h.mu.Lock()
	if h.done {
		// The listener stopped in between and closed fd: its number may be
		// another socket's by now.
		h.mu.Unlock()
		return
	}
	h.timer = time.AfterFunc(el.s.cfg.HandshakeTimeout, h.expire)
	err := h.reg.Add(fd)
	h.mu.Unlock()
	if err != nil {
		el.s.log.Warn("handshake not read: the poller refused the socket", "err", err)
		h.expire()
		return
	}
	h.reg.Kick() // the head may be there already
}

// Read reads what the client sent, until the head is whole, cannot be a
// request, or fills maxHeaderBytes; see poll.Handler.
func (h *headConn) Read(scratch []byte) bool {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return false
	}
	for {
		n, err := unix.Read(h.fd, scratch[:min(len(scratch), maxHeaderBytes-len(h.buf))])
		if n > 0 {
			from := max(0, len(h.buf)-3)
			h.buf = append(h.buf, scratch[:n]...)
			end := 0
			if i := bytes.Index(h.buf[from:], []byte("\r\n\r\n")); i >= 0 {
				end = from + i + 4
			}
			if end > 0 || !plausibleRequest(h.buf) || len(h.buf) >= maxHeaderBytes {
				h.done = true
				h.reg.Deregister(h.fd)
				h.mu.Unlock()
				h.finish(end)
				return false
			}
			continue
		}
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			h.mu.Unlock()
			return false
		}
		// Gone before a whole head (EOF or an error): closed without an
		// answer, as the http.Server does.
		h.mu.Unlock()
		h.expire()
		return false
	}
}

// Writable: see poll.Handler; nothing is written while the head is read.
func (h *headConn) Writable() {}

// finish serves the socket, its head whole (end > 0) or not, as a
// net.Conn.
func (h *headConn) finish(end int) {
	h.timer.Stop()
	el := h.el
	el.mu.Lock()
	delete(el.pending, h)
	select {
	case <-el.closed:
		el.mu.Unlock()
		_ = unix.Close(h.fd)
		return
	default:
	}
	el.wg.Add(1)
	el.mu.Unlock()
	defer el.wg.Done()
	f := os.NewFile(uintptr(h.fd), "")
	c, err := net.FileConn(f) // a duplicate of the socket
	_ = f.Close()
	if err != nil {
		el.s.log.Warn("handshake dropped: socket not usable", "err", err)
		return
	}
	if c.RemoteAddr() == nil {
		// The client reset the connection already (getpeername fails):
		// nobody is left to answer.
		_ = c.Close()
		return
	}
	// On the poller's goroutine, as the engine runs its callbacks: a burst
	// of clients is then served as fast as their heads are read, not
	// thousands of goroutines at once. A handler that holds the loop (a
	// write that waits, a busy room's lock) has the poller hand the loop to
	// another goroutine after 10 ms (internal/poll).
	el.serveHead(c, h.buf, end)
}

// expire closes the socket of a head that did not come whole in time (or
// whose client left), and forgets it.
func (h *headConn) expire() {
	if h.close() {
		h.el.mu.Lock()
		delete(h.el.pending, h)
		h.el.mu.Unlock()
	}
}

// Close closes the socket unless it has moved on (the listener's stop,
// which forgets every pending head itself).
func (h *headConn) Close() error {
	h.close()
	return nil
}

func (h *headConn) close() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return false
	}
	h.done = true
	h.reg.Deregister(h.fd)
	if h.timer != nil {
		h.timer.Stop()
	}
	// Read what the client sent that the poller has not read yet: closing
	// a socket with unread bytes resets the connection, and the client
	// should see it end, as it did when the http.Server closed it.
	var discard [512]byte
	for range 128 {
		if n, err := unix.Read(h.fd, discard[:]); n <= 0 || err != nil {
			break
		}
	}
	_ = unix.Close(h.fd)
	return true
}
