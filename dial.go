package wschan

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrInvalidURL is returned by Dial for a URL it cannot connect to: not
// parseable, a scheme other than ws, wss, http or https, or no host.
var ErrInvalidURL = errors.New("wschan: invalid WebSocket URL")

// DialOptions configure Dial. The zero value (or nil) means every default.
// Dial copies the struct; changing it afterwards has no effect.
type DialOptions struct {
	// Header holds extra request headers for the opening handshake, such as
	// Authorization, Cookie or Origin.
	Header http.Header

	// Subprotocols are offered to the server in order of preference. The
	// server's choice is reported by Channel.Protocol; a server that picks
	// one not offered fails the handshake. Default: none offered.
	Subprotocols []string

	// HandshakeTimeout bounds the whole opening: TCP connect, proxy, TLS and
	// the HTTP upgrade. Default DefaultHandshakeTimeout (10s). The context
	// passed to Dial can end it sooner.
	HandshakeTimeout time.Duration

	// TLSConfig is used for wss:// URLs. Default: the system roots and the
	// URL's host name.
	TLSConfig *tls.Config

	// Proxy returns the HTTP proxy to tunnel through (with CONNECT) for a
	// request, or nil for a direct connection. Default:
	// http.ProxyFromEnvironment, which honours HTTP_PROXY, HTTPS_PROXY and
	// NO_PROXY (ws:// uses the HTTP proxy, wss:// the HTTPS one; loopback
	// addresses never go through a proxy).
	Proxy func(*http.Request) (*url.URL, error)

	// NetDial opens the TCP connection (to the proxy, when there is one).
	// Default: a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// EnableCompression offers permessage-deflate (RFC 7692). Default off.
	EnableCompression bool

	// ReadLimit is the largest message accepted, in bytes; a larger one
	// closes the channel with 1009. Default DefaultReadLimit (32 MiB);
	// negative means the engine's maximum (2 GiB).
	ReadLimit int64

	// PingInterval is how often a keepalive ping is sent; RTT reports the
	// last answer. Default DefaultPingInterval (30s); negative disables
	// keepalive.
	PingInterval time.Duration

	// PingTimeout is how long a ping may go unanswered, while nothing else
	// arrives, before the peer is declared dead and the channel ends with
	// ErrTimeout and code 1006. Default DefaultPingTimeout (15s); negative
	// disables the dead-peer check but keeps the pings.
	PingTimeout time.Duration

	// CloseTimeout bounds Close: how long it waits for the peer's close frame
	// (and for writes queued before it). Default DefaultCloseTimeout (5s).
	CloseTimeout time.Duration

	// OnMessage, when set, is called for each message on the channel's read
	// goroutine instead of delivering it to Read and Messages: no hand-off
	// between goroutines, no allocation. m.Data is only valid during the call.
	// While it runs no further message is read; calling Send from it is fine.
	OnMessage func(ch *Channel, m Message)

	// OnPing, when set, is called on the read goroutine for each ping the
	// peer sends, before the pong that answers it is written (pongs are
	// automatic). payload is only valid during the call. It may Close the
	// channel, e.g. to stop a peer that floods pings; no pong follows then.
	OnPing func(ch *Channel, payload []byte)

	// OnStateChange, when set, is called on every state change with the new
	// state and, for StateReconnecting and StateClosed, the error that caused
	// it. It runs on the channel's goroutines and must not block.
	OnStateChange func(s State, err error)

	// Reconnect, when set, makes the channel redial after an abnormal end;
	// see ReconnectOptions. Default nil: the channel ends with its connection.
	Reconnect *ReconnectOptions

	// engine names the engine under the channel; Dial runs on
	// EngineGoroutine whatever it says. Tests set it when they run over
	// each engine (export_test.go).
	engine Engine
}

func (o *DialOptions) settings() settings {
	return settings{
		readLimit:     readLimit(o.ReadLimit),
		pingInterval:  durationOr(o.PingInterval, DefaultPingInterval),
		pingTimeout:   durationOr(o.PingTimeout, DefaultPingTimeout),
		closeTimeout:  durationOr(o.CloseTimeout, DefaultCloseTimeout),
		onMessage:     o.OnMessage,
		onPing:        o.OnPing,
		onStateChange: o.OnStateChange,
		engine:        o.engine,
	}
}

// Dial opens a WebSocket connection to rawURL (ws:// or wss://; http:// and
// https:// are taken as their WebSocket equivalents) and returns it as a
// Channel. ctx bounds the opening handshake only, not the channel's life.
//
// Errors: ErrInvalidURL for a bad URL; *HandshakeError (errors.As) when the
// server answered but not with a WebSocket upgrade; ErrTimeout when
// HandshakeTimeout or ctx's deadline passed; ctx.Err() when ctx was
// cancelled; otherwise the network or TLS error, wrapped.
//
// With opts.Reconnect set, Dial only checks the URL and options and returns
// at once; the channel connects in the background (see ReconnectOptions).
//
// In a browser (GOOS=js GOARCH=wasm) Dial opens the page's WebSocket
// object instead, and the Channel works the same, reconnect included;
// the options a browser cannot honour (Header, Proxy, TLSConfig, NetDial,
// PingInterval, PingTimeout, OnPing, EnableCompression, ReadLimit) fail
// Dial with ErrUnsupportedOption naming the field, Close sends only 1000
// and 3000-4999 (what the WebSocket API allows), and a failed dial
// cannot say why (the browser does not tell a page).
//
// Natively, Dial always opens a connection of its own and speaks HTTP/1.1 on it
// (wss:// offers only http/1.1 in ALPN). It does not do WebSockets over
// HTTP/2 (RFC 8441): net/http's Transport refuses the :protocol header an
// extended CONNECT needs (Go 1.26), golang.org/x/net/http2's Transport
// sends it but would be a second dependency of this package, and the
// gain, sharing an HTTP/2 connection already open, is not there for a
// Dial that owns its connection.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Channel, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	u, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := checkEngine(o.engine); err != nil {
		return nil, fmt.Errorf("wschan: dial: %w", err)
	}
	if err := checkDialOptions(&o); err != nil {
		return nil, fmt.Errorf("wschan: dial: %w", err)
	}
	ch := newChannel(o.settings(), true)
	if o.Reconnect != nil {
		startReconnector(ch, u, &o)
		return ch, nil
	}
	c, err := dialConn(ctx, u, &o, ch)
	if err != nil {
		return nil, err
	}
	ch.attach(c)
	ch.setState(StateOpen, nil)
	go c.run()
	return ch, nil
}

// parseURL checks a WebSocket URL and normalises its scheme to ws or wss.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	case "":
		return nil, fmt.Errorf("%w: %q has no scheme (write ws://%s or wss://%s)", ErrInvalidURL, raw, raw, raw)
	default:
		if u.Opaque != "" && strings.Trim(u.Opaque, "0123456789") == "" {
			// "localhost:8080" parses as scheme "localhost".
			return nil, fmt.Errorf("%w: %q has no scheme (write ws://%s or wss://%s)", ErrInvalidURL, raw, raw, raw)
		}
		return nil, fmt.Errorf("%w: scheme %q is not ws, wss, http or https", ErrInvalidURL, u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrInvalidURL, raw)
	}
	if p := u.Port(); p != "" {
		for _, r := range p {
			if r < '0' || r > '9' {
				return nil, fmt.Errorf("%w: port %q is not a number", ErrInvalidURL, p)
			}
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}
