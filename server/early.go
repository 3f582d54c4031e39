package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/prefixconn"
)

// Early handshakes: with the poll engine, a WebSocket handshake over plain
// TCP is read and answered here, with a buffer the size of the request (on
// the poller on Linux, early_linux.go; elsewhere on a goroutine of its
// own), instead of by the http.Server. What this saves
// is the http.Server's per-connection state, which a hijacking handler
// cannot hand back: a 4 KiB read buffer and a 4 KiB write buffer for every
// connection (pooled for requests that finish, garbage for ones that
// upgrade), over half of what a WebSocket handshake allocated. 19,000
// clients connecting at once left ~200 MiB of that for the collector,
// which the runtime kept from the system for minutes. Anything that is not
// a WebSocket upgrade (the page, /metrics, a malformed or oversized
// request) goes on to the http.Server with the bytes read so far, and gets
// the answers it always got.

// earlyListener is the http.Server's listener when handshakes are read
// early: it accepts from the real one, serves upgrades itself, and hands
// the other connections on through Accept.
type earlyListener struct {
	net.Listener
	s   *Server
	ctx context.Context // the requests' base context

	conns     chan net.Conn // for the http.Server
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	pending map[io.Closer]struct{} // connections whose request head is being read
	err     error                  // why accepting stopped
	wg      sync.WaitGroup         // the accept loop and the handshake goroutines
}

// earlyHandshakes reports whether the server reads WebSocket handshakes
// itself (see early.go): on the poll engine, over plain TCP.
func (s *Server) earlyHandshakes() bool {
	return s.cfg.Engine == wschan.EnginePoll && s.tls == nil && !s.cfg.ProxyProtocol
}

func (s *Server) newEarlyListener(ctx context.Context, ln net.Listener) *earlyListener {
	el := &earlyListener{Listener: ln, s: s, ctx: ctx, conns: make(chan net.Conn),
		closed: make(chan struct{}), pending: map[io.Closer]struct{}{}}
	el.wg.Go(el.acceptLoop)
	return el
}

func (el *earlyListener) acceptLoop() {
	var backoff time.Duration
	for {
		c, err := el.Listener.Accept()
		if err != nil {
			select {
			case <-el.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				el.stop(err)
				return
			}
			// Out of file descriptors and the like: as the http.Server
			// does, wait a little and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			el.s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-el.closed:
				return
			}
			continue
		}
		backoff = 0
		if el.readHeads(c) {
			continue // its head is read on the poller
		}
		el.mu.Lock()
		select {
		case <-el.closed:
			el.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		el.pending[c] = struct{}{}
		el.wg.Add(1)
		el.mu.Unlock()
		go el.handshake(c)
	}
}

// Accept returns the next connection for the http.Server.
func (el *earlyListener) Accept() (net.Conn, error) {
	select {
	case c := <-el.conns:
		return c, nil
	case <-el.closed:
		el.mu.Lock()
		defer el.mu.Unlock()
		if el.err != nil {
			return nil, el.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and drops the connections whose request is still
// being read; the handshakes under way in handlers go on (the server's
// drain ends them).
func (el *earlyListener) Close() error {
	err := el.Listener.Close()
	el.stop(nil)
	return err
}

func (el *earlyListener) stop(err error) {
	el.closeOnce.Do(func() {
		el.mu.Lock()
		el.err = err
		close(el.closed)
		for c := range el.pending {
			_ = c.Close()
		}
		el.mu.Unlock()
	})
}

// wait waits for the accept loop and every handshake goroutine.
func (el *earlyListener) wait() { el.wg.Wait() }

// handshake reads c's request head on this goroutine and serves it, or
// hands c on (where heads are not read on the poller).
func (el *earlyListener) handshake(c net.Conn) {
	defer el.wg.Done()
	buf, end, err := readHead(c, el.s.cfg.HandshakeTimeout, maxHeaderBytes)
	el.mu.Lock()
	delete(el.pending, c)
	el.mu.Unlock()
	select {
	case <-el.closed:
		_ = c.Close()
		return
	default:
	}
	if err != nil {
		// Timed out, or gone before a whole head: the http.Server closes
		// such connections without an answer too.
		_ = c.Close()
		return
	}
	el.serveHead(c, buf, end)
}

// serveHead serves c, whose request head is buf[:end], or hands it on to
// the http.Server with buf (end is 0 when buf holds no whole head).
func (el *earlyListener) serveHead(c net.Conn, buf []byte, end int) {
	var (
		req *http.Request
		err error
	)
	if end > 0 {
		req, err = http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(buf[:end]), end))
	}
	if end == 0 || err != nil || !wschan.IsWebSocketUpgrade(req) || (req.ProtoAtLeast(1, 1) && req.Host == "") {
		el.handOn(c, buf) // the http.Server answers as it always has
		return
	}
	el.serveUpgrade(c, req, buf[end:])
}

// maxHeaderBytes is the http.Server's MaxHeaderBytes (serve).
const maxHeaderBytes = 16 << 10

// readHead reads from c until the end of a request head, at most limit
// bytes, within timeout. end is the head's length (the bytes after it
// are the client's next ones), or 0 when limit bytes hold no whole head.
func readHead(c net.Conn, timeout time.Duration, limit int) (buf []byte, end int, err error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf = make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, 0, nil
			}
			buf = slices.Grow(buf, min(cap(buf), limit-len(buf)))
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		from := max(0, len(buf)-3)
		buf = buf[:len(buf)+n]
		if i := bytes.Index(buf[from:], []byte("\r\n\r\n")); i >= 0 {
			return buf, from + i + 4, nil
		}
		if !plausibleRequest(buf) {
			return buf, 0, nil // the http.Server answers it now (a TLS hello, say), as before
		}
		if rerr != nil {
			return buf, 0, rerr
		}
	}
}

// plausibleRequest reports whether b can be the start of an HTTP/1.x
// request: a method in capitals, and a request line ending in HTTP/1.x
// once it is whole. What cannot goes to the http.Server at once, which
// answers it 400 without waiting for a head that will not come.
func plausibleRequest(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if b[0] < 'A' || b[0] > 'Z' {
		return false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return true
	}
	line := bytes.TrimSuffix(b[:i], []byte("\r"))
	sp := bytes.LastIndexByte(line, ' ')
	return sp > 0 && bytes.HasPrefix(line[sp+1:], []byte("HTTP/1.")) && bytes.Count(line, []byte(" ")) == 2
}

// handOn gives c to the http.Server, which reads read first.
func (el *earlyListener) handOn(c net.Conn, read []byte) {
	select {
	case el.conns <- prefixconn.New(c, read):
	case <-el.closed:
		_ = c.Close()
	}
}

// serveUpgrade runs the server's handler for a WebSocket upgrade request
// read early; rest is what the client sent after the head.
func (el *earlyListener) serveUpgrade(c net.Conn, req *http.Request, rest []byte) {
	w := &upgradeWriter{c: c, rest: rest, header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			el.s.log.Error("handler panic", "err", p, "stack", string(debug.Stack()))
			if !w.hijacked {
				_ = c.Close()
			}
		}
	}()
	req.RemoteAddr = c.RemoteAddr().String()
	req = req.WithContext(withConn(el.ctx, c))
	el.s.mux.ServeHTTP(w, req)
	if !w.hijacked {
		w.finish(req.Method == http.MethodHead, el.s.cfg.WriteTimeout)
	}
}

// upgradeWriter is the http.ResponseWriter of an upgrade request read
// early: Accept hijacks it; a refusal is written, whole, when the handler
// returns, and the connection closed.
type upgradeWriter struct {
	c        net.Conn
	rest     []byte
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *upgradeWriter) Header() http.Header { return w.header }

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Hijack hands the connection to the WebSocket engine, with what the
// client sent after its request in the reader's buffer.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(w.rest), w.c), max(512, len(w.rest)))
	if len(w.rest) > 0 {
		if _, err := br.Peek(len(w.rest)); err != nil {
			return nil, nil, fmt.Errorf("early bytes: %w", err)
		}
	}
	return w.c, bufio.NewReadWriter(br, bufio.NewWriterSize(w.c, 64)), nil
}

// finish writes the response the handler made and closes the connection
// (an upgrade request that was refused does not keep it alive).
func (w *upgradeWriter) finish(head bool, timeout time.Duration) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	h := w.header
	if h.Get("Content-Type") == "" && w.body.Len() > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	h.Set("Content-Length", strconv.Itoa(w.body.Len()))
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %03d %s\r\n", status, http.StatusText(status))
	_ = h.Write(&out)
	out.WriteString("\r\n")
	if !head {
		out.Write(w.body.Bytes())
	}
	_ = w.c.SetWriteDeadline(time.Now().Add(timeout))
	_, err := w.c.Write(out.Bytes())
	// Close as the http.Server does after an answer it closes on: stop
	// writing, let the client read the answer, then go (closing at once
	// could reset the connection under the answer if the client sent more).
	if tc, ok := w.c.(*net.TCPConn); ok && err == nil {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	_ = w.c.Close()
}
