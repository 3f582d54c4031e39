package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pires/go-proxyproto"
)

// Where a client's address came from.
const (
	viaPeer          = "peer"             // the TCP connection's peer
	viaProxyProtocol = "proxy-protocol"   // a PROXY header from a trusted peer
	viaForwarded     = "forwarded"        // the Forwarded header (RFC 7239)
	viaXFF           = "x-forwarded-for"  // the X-Forwarded-For header
	viaXRealIP       = "x-real-ip"        // the X-Real-IP header
	maxForwardHops   = 64                 // more hops than this is a malformed header
	maxForwardHeader = 8 << 10            // bytes; longer is a malformed header
	headerXFF        = "X-Forwarded-For"  // canonical names
	headerForwarded  = "Forwarded"        //
	headerXRealIP    = "X-Real-Ip"        //
	loopbackV4       = "127.0.0.0/8"      //
	proxyConnKey     = ctxKey("net-conn") // the accepted net.Conn in a request's context
)

type ctxKey string

// errForwarded is matched by every error parseForwarded, parseXFF and
// parseXRealIP return.
var errForwarded = errors.New("malformed forwarding header")

// client is who a request comes from, as far as the server can tell.
type client struct {
	ip     netip.Addr // the real client address, unmapped
	port   uint16     // 0 when unknown (from a header without one)
	via    string     // viaPeer, viaProxyProtocol or a header name
	proxy  string     // with via != viaPeer: the TCP peer, host:port
	local  bool       // exempt from the per-IP and rate limits (see Config.LimitLoopback)
	errMsg string     // a forwarding header from a trusted peer that was ignored, and why
}

// key is the client's address as the per-IP limit counts it.
func (c client) key() string { return c.ip.String() }

// String is the client's address for logs: ip:port when the port is known.
func (c client) String() string {
	if c.port == 0 {
		return c.ip.String()
	}
	return netip.AddrPortFrom(c.ip, c.port).String()
}

// logAttrs returns the attributes that name the client in a log line,
// then more: remote (the client), and when it came through a proxy, via
// (how its address was learnt) and proxy (the TCP peer).
func (c client) logAttrs(more ...any) []any {
	a := []any{"remote", c.String()}
	if c.via != viaPeer {
		a = append(a, "via", c.via, "proxy", c.proxy)
	}
	return append(a, more...)
}

// trustedSet is the parsed Config.TrustedProxies.
type trustedSet struct {
	prefixes []netip.Prefix
	loopback bool // some prefix holds a loopback address: no loopback exemption
}

func newTrustedSet(ps []netip.Prefix) trustedSet {
	t := trustedSet{}
	lo4 := netip.MustParsePrefix(loopbackV4)
	for _, p := range ps {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8: clients are unmapped too.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		t.prefixes = append(t.prefixes, p)
		if p.Overlaps(lo4) || p.Contains(netip.IPv6Loopback()) {
			t.loopback = true
		}
	}
	return t
}

func (t trustedSet) contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// withConn is http.Server.ConnContext: it keeps the accepted connection in
// the context, so a handler can tell a PROXY header's address from the TCP
// peer's. It must not block: it runs on the accept loop.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, proxyConnKey, c)
}

// peerOf returns the TCP peer under a PROXY header, when the request came
// with one, or nil.
func peerOf(r *http.Request) net.Addr {
	c, _ := r.Context().Value(proxyConnKey).(net.Conn)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	pc, ok := c.(*proxyConn)
	if !ok {
		return nil
	}
	if h := pc.ProxyHeader(); h == nil || h.Command.IsLocal() {
		return nil // a LOCAL header: the proxy's own connection
	}
	return pc.Raw().RemoteAddr()
}

// clientOf works out who r comes from. Headers are believed only from a
// trusted peer, and then only as far back as trusted proxies go: the client
// is the rightmost address that is not a trusted proxy.
func (s *Server) clientOf(r *http.Request) client {
	c := client{via: viaPeer}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not ip:port (a test's fake request): best effort.
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		c.ip, _ = netip.ParseAddr(host)
		return c
	}
	c.ip, c.port = ap.Addr().Unmap(), ap.Port()
	if p := peerOf(r); p != nil {
		c.via, c.proxy = viaProxyProtocol, p.String()
	}
	peer := c.ip
	if s.trusted.contains(peer) {
		name, hops, err := forwardedHops(r.Header)
		if err != nil {
			c.errMsg = err.Error()
		} else if len(hops) > 0 {
			proxy := c.String()
			for i := len(hops) - 1; i >= 0 && s.trusted.contains(c.ip); i-- {
				c.ip, c.port, c.via, c.proxy = hops[i].Addr(), hops[i].Port(), name, proxy
			}
		}
	}
	c.local = !s.cfg.LimitLoopback && !s.trusted.loopback && c.via == viaPeer &&
		peer.IsLoopback() && !hasForwardingHeader(r.Header)
	return c
}

// hasForwardingHeader reports whether h carries any header a proxy adds.
func hasForwardingHeader(h http.Header) bool {
	return len(h[headerForwarded]) > 0 || len(h[headerXFF]) > 0 || len(h[headerXRealIP]) > 0
}

// forwardedHops returns the client addresses a proxy chain recorded, the
// client first and the nearest proxy's peer last, from the first of
// Forwarded, X-Forwarded-For and X-Real-IP that is present, with the name of
// that header. A port is 0 when the header gave none.
func forwardedHops(h http.Header) (via string, hops []netip.AddrPort, err error) {
	switch {
	case len(h[headerForwarded]) > 0:
		hops, err = parseForwarded(strings.Join(h[headerForwarded], ","))
		return viaForwarded, hops, err
	case len(h[headerXFF]) > 0:
		hops, err = parseXFF(strings.Join(h[headerXFF], ","))
		return viaXFF, hops, err
	case len(h[headerXRealIP]) > 0:
		hops, err = parseXRealIP(h[headerXRealIP])
		return viaXRealIP, hops, err
	}
	return "", nil, nil
}

func forwardErr(header, why string) error {
	return fmt.Errorf("%w: %s %s", errForwarded, header, why)
}

// parseXFF reads an X-Forwarded-For value: addresses separated by commas,
// each an IPv4 or IPv6 address, optionally in brackets or with a port.
// Empty elements, names, zones and more than maxForwardHops addresses are
// errors.
func parseXFF(v string) ([]netip.AddrPort, error) {
	if len(v) > maxForwardHeader {
		return nil, forwardErr(headerXFF, "is longer than "+strconv.Itoa(maxForwardHeader)+" bytes")
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxForwardHops {
		return nil, forwardErr(headerXFF, "has more than "+strconv.Itoa(maxForwardHops)+" addresses")
	}
	hops := make([]netip.AddrPort, 0, len(parts))
	for _, p := range parts {
		ap, ok := parseNode(strings.TrimSpace(p))
		if !ok {
			return nil, forwardErr(headerXFF, strconv.Quote(truncate(strings.TrimSpace(p)))+" is not an IP address")
		}
		hops = append(hops, ap)
	}
	return hops, nil
}

// parseXRealIP reads X-Real-IP: one address.
func parseXRealIP(vs []string) ([]netip.AddrPort, error) {
	if len(vs) != 1 {
		return nil, forwardErr(headerXRealIP, "appears more than once")
	}
	ap, ok := parseNode(strings.TrimSpace(vs[0]))
	if !ok {
		return nil, forwardErr(headerXRealIP, strconv.Quote(truncate(vs[0]))+" is not an IP address")
	}
	return []netip.AddrPort{ap}, nil
}

// parseNode reads an address as forwarding headers write it: 192.0.2.1,
// 192.0.2.1:80, 2001:db8::1, [2001:db8::1] or [2001:db8::1]:80. No zones.
func parseNode(s string) (netip.AddrPort, bool) {
	if s == "" {
		return netip.AddrPort{}, false
	}
	var ip netip.Addr
	var port uint16
	if ap, err := netip.ParseAddrPort(s); err == nil {
		ip, port = ap.Addr(), ap.Port()
	} else if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil &&
		(s[0] == '[') == strings.HasSuffix(s, "]") && (s[0] != '[' || a.Is6()) {
		ip = a
	} else {
		return netip.AddrPort{}, false
	}
	if ip.Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), port), true
}

// parseForwarded reads a Forwarded value (RFC 7239): elements separated by
// commas, each pairs name=value separated by semicolons, a value a token or
// a quoted string. It returns each element's for= node. An element without
// for=, a for= that is not an IP address ("unknown", an obfuscated name),
// a syntax error or more than maxForwardHops elements is an error: a
// client's address cannot be known from such a header.
func parseForwarded(v string) ([]netip.AddrPort, error) {
	if len(v) > maxForwardHeader {
		return nil, forwardErr(headerForwarded, "is longer than "+strconv.Itoa(maxForwardHeader)+" bytes")
	}
	var hops []netip.AddrPort
	p := fwdParser{s: v}
	for {
		if len(hops) == maxForwardHops {
			return nil, forwardErr(headerForwarded, "has more than "+strconv.Itoa(maxForwardHops)+" elements")
		}
		var node string
		found := false
		for {
			p.space()
			name, ok := p.token()
			if !ok || !p.eat('=') {
				return nil, forwardErr(headerForwarded, "is not name=value pairs at byte "+strconv.Itoa(p.i))
			}
			val, ok := p.value()
			if !ok {
				return nil, forwardErr(headerForwarded, "has a bad value at byte "+strconv.Itoa(p.i))
			}
			if strings.EqualFold(name, "for") {
				if found {
					return nil, forwardErr(headerForwarded, "has two for= in one element")
				}
				node, found = val, true
			}
			p.space()
			if !p.eat(';') {
				break
			}
		}
		if !found {
			return nil, forwardErr(headerForwarded, "has an element without for=")
		}
		ap, ok := parseNode(node)
		if !ok {
			return nil, forwardErr(headerForwarded, "for="+strconv.Quote(truncate(node))+" is not an IP address")
		}
		hops = append(hops, ap)
		p.space()
		if p.i == len(p.s) {
			return hops, nil
		}
		if !p.eat(',') {
			return nil, forwardErr(headerForwarded, "has an unexpected character at byte "+strconv.Itoa(p.i))
		}
	}
}

// fwdParser scans a Forwarded header.
type fwdParser struct {
	s string
	i int
}

func (p *fwdParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *fwdParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// token reads an RFC 9110 token.
func (p *fwdParser) token() (string, bool) {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// value reads a token or a quoted string (with backslash escapes).
func (p *fwdParser) value() (string, bool) {
	if !p.eat('"') {
		return p.token()
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			return b.String(), true
		case c == '\\' && p.i < len(p.s):
			b.WriteByte(p.s[p.i])
			p.i++
		case c == '\t' || c >= 0x20 && c != 0x7f:
			b.WriteByte(c)
		default:
			return "", false
		}
	}
	return "", false // unterminated
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// truncate shortens a header value for an error message.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// proxyConn is a connection accepted with --proxy-protocol. A PROXY header
// that is refused or malformed fails every read and write (so the
// connection is closed); the first failure is logged and counted.
type proxyConn struct {
	*proxyproto.Conn
	s      *Server
	logged atomic.Bool
}

func (c *proxyConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && isProxyErr(err) && !c.logged.Swap(true) {
		c.s.proxyRefused(c.Raw().RemoteAddr(), err)
	}
	return n, err
}

// isProxyErr tells a PROXY header's error from the connection's own: the
// package's errors all say "proxyproto:", and wrap what caused them.
func isProxyErr(err error) bool {
	return strings.HasPrefix(err.Error(), "proxyproto:")
}

// proxyListener wraps ln for --proxy-protocol: a trusted peer must open
// with a PROXY header (v1 or v2), within the handshake timeout; anyone
// else must not send one.
type proxyListener struct {
	*proxyproto.Listener
	s *Server
}

func (s *Server) proxyListener(ln net.Listener) net.Listener {
	return &proxyListener{s: s, Listener: &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if ap, err := netip.ParseAddrPort(o.Upstream.String()); err == nil && s.trusted.contains(ap.Addr()) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.REJECT, nil
		},
	}}
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if pc, ok := c.(*proxyproto.Conn); ok {
		return &proxyConn{Conn: pc, s: l.s}, nil
	}
	return c, nil
}
