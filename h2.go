package wschan

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// WebSockets over HTTP/2 (RFC 8441). The opening handshake is an extended
// CONNECT request (:method CONNECT, :protocol websocket) on one stream of
// an HTTP/2 connection, answered with 200; the stream then carries the
// WebSocket's frames: the request body one way, the response body the
// other. net/http hands such a request to the handler with Method
// "CONNECT", ProtoMajor 2, the path in URL.Path and the :protocol pseudo
// header as r.Header[":protocol"], but only when extended CONNECT is on,
// which in Go 1.26 is process-wide: GODEBUG=http2xconnect=1 at start-up
// (see Accept). Without it, the server does not offer extended CONNECT
// and browsers open their WebSockets over HTTP/1.1.

// isExtendedConnect reports whether r is an HTTP/2 extended CONNECT, for
// any protocol.
func isExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodConnect && r.Header.Get(":protocol") != ""
}

// checkExtendedConnect validates an HTTP/2 WebSocket request (RFC 8441,
// section 5) and returns the status and message to refuse it with, or 0:
// the same statuses as checkUpgrade gives the HTTP/1.1 request with the
// same fault. There is no Sec-WebSocket-Key: :protocol replaces it.
func checkExtendedConnect(r *http.Request) (int, string) {
	switch {
	case r.Method == http.MethodGet:
		// A plain HTTP/2 GET, the twin of a GET without Upgrade.
		return http.StatusUpgradeRequired, "this is a WebSocket endpoint: connect with a WebSocket client (over HTTP/2: extended CONNECT with :protocol websocket)"
	case r.Method != http.MethodConnect || r.Header.Get(":protocol") == "":
		return http.StatusMethodNotAllowed, "WebSocket handshake over HTTP/2 must use extended CONNECT, got " + r.Method
	case r.Header.Get(":protocol") != "websocket":
		return http.StatusUpgradeRequired, fmt.Sprintf("extended CONNECT for protocol %q: this is a WebSocket endpoint (:protocol websocket)", r.Header.Get(":protocol"))
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q: this server speaks 13", v)
	}
	return 0, ""
}

// h2Stream is an HTTP/2 stream as a net.Conn for the engine: Read is the
// request body, Write the response body, flushed after every write (the
// engine writes one frame per call).
//
// The ResponseWriter may only be used while the handler runs: Accept's
// documentation asks an HTTP/2 handler to wait for the channel's end, and
// the channel ends only after its engine has shut down, when no write is
// under way or can start (gwsConn.shutdown).
type h2Stream struct {
	body   io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	local  net.Addr
	remote net.Addr

	writing atomic.Int32 // writes under way
	closed  atomic.Bool
}

var _ net.Conn = (*h2Stream)(nil)

func newH2Stream(w http.ResponseWriter, r *http.Request) *h2Stream {
	s := &h2Stream{body: r.Body, w: w, rc: http.NewResponseController(w), remote: h2Addr(r.RemoteAddr)}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.local = a
	} else {
		s.local = h2Addr("")
	}
	return s
}

func (s *h2Stream) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *h2Stream) Write(p []byte) (int, error) {
	s.writing.Add(1)
	defer s.writing.Add(-1)
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	return n, err
}

// Close ends reading at once and fails a write under way by resetting the
// stream; without one, the stream ends cleanly when the handler returns.
func (s *h2Stream) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.body.Close()
	if s.writing.Load() > 0 { // seen after closed is set: a later write fails on closed
		_ = s.rc.SetWriteDeadline(time.Unix(1, 0))
	}
	return err
}

// Deadlines map to the stream's. HTTP/2 treats a passed deadline as the
// end of the stream (the read side fails for good, a write deadline
// resets it), which the channel only does when the connection is over.
func (s *h2Stream) SetDeadline(t time.Time) error {
	return errors.Join(s.SetReadDeadline(t), s.SetWriteDeadline(t))
}

func (s *h2Stream) SetReadDeadline(t time.Time) error {
	if s.closed.Load() {
		return nil
	}
	return s.rc.SetReadDeadline(t)
}

func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	if s.closed.Load() {
		return nil
	}
	return s.rc.SetWriteDeadline(t)
}

func (s *h2Stream) LocalAddr() net.Addr  { return s.local }
func (s *h2Stream) RemoteAddr() net.Addr { return s.remote }

// h2Addr is a peer address as net/http reports it (host:port).
type h2Addr string

func (h2Addr) Network() string  { return "tcp" }
func (a h2Addr) String() string { return string(a) }
