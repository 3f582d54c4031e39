package wschan

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// AcceptOptions configure Accept. The zero value (or nil) means every
// default. Accept copies the struct.
type AcceptOptions struct {
	// Subprotocols the server speaks. The first protocol in the client's
	// offer that is in this list is selected. Default: none (the handshake
	// succeeds without a subprotocol, whatever the client offers).
	Subprotocols []string

	// SelectSubprotocol, when set, replaces Subprotocols: it gets the
	// client's offer in order and returns the one to use, or "" for none. It
	// must return one of offered (anything else selects none).
	SelectSubprotocol func(r *http.Request, offered []string) string

	// OriginPatterns allow cross-origin browser requests whose Origin host
	// matches one of these path.Match patterns (case-insensitive), e.g.
	// "example.com" or "*.example.com"; "*" allows every origin. Requests
	// without an Origin header (non-browser clients) and same-origin
	// requests are always allowed. Default: same origin only, which stops
	// other web sites from using a visitor's cookies on this endpoint.
	OriginPatterns []string

	// EnableCompression negotiates permessage-deflate (RFC 7692) when the
	// client offers it. Default off.
	EnableCompression bool

	// ReadLimit, PingInterval, PingTimeout, CloseTimeout, OnMessage,
	// OnPing and OnStateChange mean what they mean in DialOptions, with the
	// same defaults.
	ReadLimit     int64
	PingInterval  time.Duration
	PingTimeout   time.Duration
	CloseTimeout  time.Duration
	OnMessage     func(ch *Channel, m Message)
	OnPing        func(ch *Channel, payload []byte)
	OnStateChange func(s State, err error)

	// Engine runs the connection: EngineGoroutine (the default, "") or
	// EnginePoll, which holds far less memory per waiting connection.
	Engine Engine
}

func (o *AcceptOptions) settings() settings {
	return settings{
		readLimit:     readLimit(o.ReadLimit),
		pingInterval:  durationOr(o.PingInterval, DefaultPingInterval),
		pingTimeout:   durationOr(o.PingTimeout, DefaultPingTimeout),
		closeTimeout:  durationOr(o.CloseTimeout, DefaultCloseTimeout),
		onMessage:     o.OnMessage,
		onPing:        o.OnPing,
		onStateChange: o.OnStateChange,
		engine:        cmp.Or(o.Engine, defaultEngine),
	}
}

// Accept completes the server side of the opening handshake on an HTTP
// request and returns the connection as a Channel. Call it from an
// http.Handler; the handler may return as soon as Accept has, the channel
// lives on its own goroutine until it ends.
//
// When the request is not an acceptable WebSocket handshake, Accept writes
// the HTTP error response itself (400, 403, 405 or 426, with a one-line
// explanation) and returns an error matching ErrNotWebSocket or
// ErrOriginNotAllowed. An HTTP/2 request with a fault gets the status its
// HTTP/1.1 twin gets.
//
// # HTTP/2
//
// Accept also takes WebSockets over HTTP/2 (RFC 8441): an extended CONNECT
// request with :protocol websocket, answered with 200 on the same stream,
// which lets a browser carry a page's WebSocket on the page's HTTP/2
// connection. Two things are the caller's:
//
//   - Turn extended CONNECT on. In Go 1.26 net/http offers it only when the
//     process starts with GODEBUG=http2xconnect=1 in its environment (a
//     //go:debug line does not work; an http.HTTP2Config field is proposed
//     in golang/go#53208). It is a process-wide switch, so the library does
//     not flip it: without it the server does not offer extended CONNECT
//     and browsers use HTTP/1.1 for their WebSockets, as before. Register
//     the route for method CONNECT as well as GET (a "GET /ws" pattern does
//     not match CONNECT).
//   - Keep the handler running until the channel ends (<-ch.Done()): an
//     HTTP/2 WebSocket is a stream of the connection, not the connection,
//     and the stream ends when the handler returns. A handler that waits
//     works for both protocols.
//
// Dial speaks HTTP/1.1 only; see Dial.
func Accept(w http.ResponseWriter, r *http.Request, opts *AcceptOptions) (*Channel, error) {
	var o AcceptOptions
	if opts != nil {
		o = *opts
	}
	h2 := r.ProtoMajor == 2 // RFC 8441: the WebSocket is this request's stream (h2.go)
	if status, msg := checkUpgrade(r); status != 0 {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
			if !h2 { // connection-specific headers do not exist in HTTP/2
				w.Header().Set("Connection", "Upgrade")
				w.Header().Set("Upgrade", "websocket")
			}
		}
		if status == http.StatusMethodNotAllowed {
			allow := http.MethodGet
			if h2 {
				allow = http.MethodConnect
			}
			w.Header().Set("Allow", allow)
		}
		http.Error(w, msg, status)
		return nil, fmt.Errorf("wschan: accept: %w: %s", ErrNotWebSocket, msg)
	}
	if err := checkOrigin(r, o.OriginPatterns); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	protocol := selectProtocol(r, &o)
	if h2 {
		return acceptStream(w, r, protocol, &o)
	}

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "WebSocket upgrade is not possible on this connection", http.StatusInternalServerError)
		return nil, fmt.Errorf("wschan: accept: hijack: %w", err)
	}
	_ = conn.SetDeadline(time.Time{}) // the http.Server's timeouts do not apply any more
	set := o.settings()
	ch := newChannel(set, false)
	if err := checkEngine(set.engine); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	var e engineConn
	if set.engine == EnginePoll && pollable(conn) {
		e, err = acceptPoll(conn, brw.Reader, r, protocol, o.EnableCompression, &set)
	} else {
		e, err = acceptGWS(conn, brw.Reader, r, protocol, o.EnableCompression, set.readLimit)
	}
	if err != nil {
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	c := newWSConn(ch, e, protocol)
	ch.attach(c)
	ch.setState(StateOpen, nil)
	c.start()
	return ch, nil
}

// acceptStream is Accept's second half for an HTTP/2 extended CONNECT:
// the engine runs on the request's stream, and the handshake's answer is
// 200 through w, with the subprotocol and the extensions the engine chose.
func acceptStream(w http.ResponseWriter, r *http.Request, protocol string, o *AcceptOptions) (*Channel, error) {
	set := o.settings()
	if err := checkEngine(set.engine); err != nil {
		http.Error(w, "WebSocket engine unavailable", http.StatusInternalServerError)
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	s := newH2Stream(w, r)
	// The http.Server's timeouts do not apply any more, as for a hijacked
	// HTTP/1.1 connection.
	_ = s.SetDeadline(time.Time{})
	e, header, err := acceptGWSStream(s, r, o.EnableCompression, set.readLimit)
	if err != nil {
		http.Error(w, "WebSocket handshake failed", http.StatusBadRequest)
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	if protocol != "" {
		w.Header().Set("Sec-WebSocket-Protocol", protocol)
	}
	if ext := header.Get("Sec-WebSocket-Extensions"); ext != "" {
		w.Header().Set("Sec-WebSocket-Extensions", ext)
	}
	w.WriteHeader(http.StatusOK)
	if err := s.rc.Flush(); err != nil {
		e.shutdown()
		_ = s.Close()
		return nil, fmt.Errorf("wschan: accept: %w", err)
	}
	ch := newChannel(set, false)
	c := newWSConn(ch, e, protocol)
	ch.attach(c)
	ch.setState(StateOpen, nil)
	go c.run()
	return ch, nil
}

// IsWebSocketUpgrade reports whether r asks for a WebSocket upgrade (over
// HTTP/2: an extended CONNECT with :protocol websocket), so one URL can
// serve both a web page and a WebSocket endpoint.
func IsWebSocketUpgrade(r *http.Request) bool {
	if r.ProtoMajor == 2 {
		return isExtendedConnect(r) && r.Header.Get(":protocol") == "websocket"
	}
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// checkUpgrade validates the handshake request (RFC 6455, section 4.2.1) and
// returns the HTTP status and message to refuse it with, or 0.
func checkUpgrade(r *http.Request) (int, string) {
	if r.ProtoMajor == 2 {
		return checkExtendedConnect(r)
	}
	if !r.ProtoAtLeast(1, 1) || r.ProtoMajor != 1 {
		return http.StatusBadRequest, "WebSocket handshake needs HTTP/1.1, got " + r.Proto
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "WebSocket handshake must use GET, got " + r.Method
	}
	if !IsWebSocketUpgrade(r) {
		return http.StatusUpgradeRequired, "this is a WebSocket endpoint: connect with a WebSocket client (Connection: Upgrade, Upgrade: websocket)"
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return http.StatusUpgradeRequired, fmt.Sprintf("unsupported Sec-WebSocket-Version %q: this server speaks 13", v)
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return http.StatusBadRequest, "missing or invalid Sec-WebSocket-Key"
	}
	return 0, ""
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// checkOrigin applies the origin policy described at AcceptOptions.OriginPatterns.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: malformed Origin %q", ErrOriginNotAllowed, origin)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	host := strings.ToLower(u.Host)
	for _, p := range patterns {
		p = strings.ToLower(p)
		if p == "*" {
			return nil
		}
		if ok, err := path.Match(p, host); err != nil {
			return fmt.Errorf("wschan: bad origin pattern %q: %w", p, err)
		} else if ok {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (allow it with AcceptOptions.OriginPatterns)", ErrOriginNotAllowed, origin)
}

// offeredProtocols splits the client's Sec-WebSocket-Protocol headers.
func offeredProtocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func selectProtocol(r *http.Request, o *AcceptOptions) string {
	offered := offeredProtocols(r)
	if len(offered) == 0 {
		return ""
	}
	if o.SelectSubprotocol != nil {
		if p := o.SelectSubprotocol(r, offered); slices.Contains(offered, p) && validToken(p) {
			return p
		}
		return ""
	}
	for _, p := range offered {
		if slices.Contains(o.Subprotocols, p) && validToken(p) {
			return p
		}
	}
	return ""
}

// validToken reports whether s is an HTTP token (RFC 7230), as a subprotocol
// name must be; it keeps header injection out of the response.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
