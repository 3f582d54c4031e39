package server

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
)

// Scenarios are routes that misbehave on purpose, for testing clients.
// Each is bounded by the server's limits.

// Scenario describes one route for the page and --help.
type Scenario struct {
	Path, Summary string
}

// Scenarios lists the test routes.
func Scenarios() []Scenario {
	return []Scenario{
		{"/ws/close/{code}?after=N&reason=TEXT", "echo N messages (default 0), then close with that code and reason"},
		{"/ws/delay/{duration}", "echo each message after a delay, e.g. 500ms (at most " + maxScenarioDelay.String() + ")"},
		{"/ws/silent", "accept, then never reply and never answer pings (client timeouts)"},
		{"/ws/drop", "accept, then drop the TCP connection without a close frame (1006 on the client)"},
	}
}

func (s *Server) handleCloseScenario(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("code"))
	code := wschan.StatusCode(n)
	if err != nil || !code.Sendable() {
		http.Error(w, "close code must be one that may be sent: 1000-1003, 1007-1014 or 3000-4999", http.StatusBadRequest)
		return
	}
	after := int64(0)
	if a := r.URL.Query().Get("after"); a != "" {
		if after, err = strconv.ParseInt(a, 10, 64); err != nil || after < 0 || after > 1_000_000 {
			http.Error(w, "after must be a number of messages from 0 to 1000000", http.StatusBadRequest)
			return
		}
	}
	reason := r.URL.Query().Get("reason")
	if len(reason) > wschan.MaxCloseReason || !utf8.ValidString(reason) {
		http.Error(w, fmt.Sprintf("reason must be UTF-8 of at most %d bytes", wschan.MaxCloseReason), http.StatusBadRequest)
		return
	}
	s.serveEcho(w, r, echoOptions{closeAfter: after, closeCode: code, closeReason: reason, closeAtOnce: after == 0})
}

func (s *Server) handleDelayScenario(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.PathValue("duration"))
	if err != nil || d < 0 || d > maxScenarioDelay {
		http.Error(w, "duration must be like 250ms or 2s, at most "+maxScenarioDelay.String(), http.StatusBadRequest)
		return
	}
	if d == 0 {
		s.handleEcho(w, r)
		return
	}
	s.serveEcho(w, r, echoOptions{delay: d})
}

// The silent and drop scenarios must break the protocol the library keeps,
// so they complete the handshake themselves on the raw connection.

func (s *Server) handleSilentScenario(w http.ResponseWriter, r *http.Request) {
	s.rawScenario(w, r, func(c net.Conn, br *bufio.Reader) {
		// Read and discard, never answer, until the client leaves, the idle
		// timeout passes, or the server drains.
		buf := make([]byte, 4096)
		for {
			if s.cfg.IdleTimeout > 0 {
				_ = c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			}
			if _, err := br.Read(buf); err != nil {
				return
			}
		}
	})
}

func (s *Server) handleDropScenario(w http.ResponseWriter, r *http.Request) {
	s.rawScenario(w, r, func(c net.Conn, _ *bufio.Reader) {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset: no close frame, no orderly FIN
		}
	})
}

func (s *Server) rawScenario(w http.ResponseWriter, r *http.Request, serve func(net.Conn, *bufio.Reader)) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !wschan.IsWebSocketUpgrade(r) || r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		s.m.handshakes.WithLabelValues(outcomeBadRequest, r.Proto).Inc()
		http.Error(w, "this is a WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
		return
	}
	c := s.client(r)
	if ok, why := s.admit(c); !ok || s.draining.Load() {
		s.m.handshakes.WithLabelValues(outcomeLimit, r.Proto).Inc()
		w.Header().Set("Retry-After", "10")
		http.Error(w, why, http.StatusServiceUnavailable)
		if ok {
			s.release(c)
		}
		return
	}
	defer s.release(c)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{})
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n")
	if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		b.WriteString("Sec-WebSocket-Protocol: " + strings.TrimSpace(strings.Split(p, ",")[0]) + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return
	}
	s.m.handshakes.WithLabelValues(outcomeAccepted, r.Proto).Inc()
	if !s.trackRaw(conn) {
		return
	}
	defer s.untrackRaw(conn)
	s.log.Info("scenario connection open", c.logAttrs("path", r.URL.Path)...)
	serve(conn, brw.Reader)
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
