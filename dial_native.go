//go:build !js

package wschan

// The native half of Dial: TCP, proxy, TLS and the HTTP/1.1 upgrade on
// the gws engine. The browser's is in dial_js.go.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wschan/wschan/internal/prefixconn"
)

// checkDialOptions refuses options this platform cannot honour: none.
func checkDialOptions(*DialOptions) error { return nil }

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "wss" || u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// dialConn performs one opening handshake and returns the connection, not
// yet running.
func dialConn(ctx context.Context, u *url.URL, o *DialOptions, ch *Channel) (c *wsconn, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("wschan: dial %s: %w", u.Redacted(), err)
		}
	}()
	timeout := durationOr(o.HandshakeTimeout, DefaultHandshakeTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	raw, err := openTransport(ctx, u, o)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer func() {
		if !stop() && err == nil {
			err = ctxErr(ctx, ctx.Err())
		}
		if err != nil {
			_ = raw.Close()
		}
	}()
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)

	header := o.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if len(o.Subprotocols) > 0 {
		// Set under the non-canonical key on purpose: the engine would insist
		// that the server pick one; RFC 6455 lets it pick none.
		header.Del("Sec-WebSocket-Protocol")
		header["Sec-WebSocket-Protocol"] = []string{strings.Join(o.Subprotocols, ", ")}
	}
	e, resp, err := dialGWS(raw, u.String(), header, time.Until(deadline), o.EnableCompression, ch.set.readLimit)
	if err != nil {
		if resp != nil && ctx.Err() == nil {
			return nil, handshakeError(resp, err)
		}
		return nil, ctxErr(ctx, err)
	}
	protocol := resp.Header.Get("Sec-WebSocket-Protocol")
	if protocol != "" && !slices.Contains(o.Subprotocols, protocol) {
		return nil, &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header,
			Reason: fmt.Sprintf("server selected subprotocol %q, which was not offered", protocol)}
	}
	_ = raw.SetDeadline(time.Time{})
	return newWSConn(ch, e, protocol), nil
}

// handshakeError describes a response that is not a WebSocket upgrade,
// with the first bytes of its body.
func handshakeError(resp *http.Response, err error) *HandshakeError {
	he := &HandshakeError{StatusCode: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		he.Reason = handshakeReason(err)
	}
	if resp.Body != nil {
		he.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	return he
}

// ctxErr explains an error that happened while ctx was ending.
func ctxErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w: handshake not completed in time: %w", ErrTimeout, context.DeadlineExceeded)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The socket's deadline is the context's: the same timeout, seen first.
		return fmt.Errorf("%w: handshake not completed in time: %w", ErrTimeout, context.DeadlineExceeded)
	}
	return err
}

// openTransport connects TCP (through the proxy, if any) and TLS for wss.
func openTransport(ctx context.Context, u *url.URL, o *DialOptions) (net.Conn, error) {
	netDial := o.NetDial
	if netDial == nil {
		netDial = new(net.Dialer).DialContext
	}
	proxy := o.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	target := hostPort(u)
	httpScheme := map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	purl, err := proxy(&http.Request{URL: &url.URL{Scheme: httpScheme, Host: u.Host}, Header: http.Header{}})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	var conn net.Conn
	if purl == nil {
		conn, err = netDial(ctx, "tcp", target)
		if err != nil {
			return nil, err
		}
	} else {
		conn, err = dialProxy(ctx, netDial, purl, target)
		if err != nil {
			return nil, err
		}
	}
	if u.Scheme != "wss" {
		return conn, nil
	}
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// dialProxy opens a tunnel to target through an HTTP proxy with CONNECT.
func dialProxy(ctx context.Context, netDial func(context.Context, string, string) (net.Conn, error), purl *url.URL, target string) (net.Conn, error) {
	if purl.Scheme != "http" && purl.Scheme != "" {
		return nil, fmt.Errorf("proxy %s: only http:// proxies are supported", purl.Redacted())
	}
	paddr := purl.Host
	if purl.Port() == "" {
		paddr = net.JoinHostPort(purl.Hostname(), "80")
	}
	conn, err := netDial(ctx, "tcp", paddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", purl.Redacted(), err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if purl.User != nil {
		pw, _ := purl.User.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(purl.User.Username()+":"+pw)))
	}
	if err := req.Write(conn); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", purl.Redacted(), err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s: %w", purl.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = conn.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %s", purl.Redacted(), target, resp.Status)
	}
	if br.Buffered() > 0 {
		pre, _ := br.Peek(br.Buffered())
		return prefixconn.New(conn, slices.Clone(pre)), nil // bytes the proxy's answer brought along
	}
	return conn, nil
}
