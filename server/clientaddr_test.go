package server_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/wschan/wschan/server"
)

func addrPorts(t *testing.T, ss ...string) []netip.AddrPort {
	t.Helper()
	var aps []netip.AddrPort
	for _, s := range ss {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			aps = append(aps, ap)
			continue
		}
		aps = append(aps, netip.AddrPortFrom(netip.MustParseAddr(s), 0))
	}
	return aps
}

func TestParseXFF(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string // nil: an error
	}{
		{"one", "203.0.113.7", []string{"203.0.113.7"}},
		{"chain with spaces", "203.0.113.7 ,  198.51.100.2,10.0.0.1", []string{"203.0.113.7", "198.51.100.2", "10.0.0.1"}},
		{"ipv6", "2001:db8::1", []string{"2001:db8::1"}},
		{"ipv6 in brackets", "[2001:db8::1]", []string{"2001:db8::1"}},
		{"ipv4 with port", "203.0.113.7:4711", []string{"203.0.113.7:4711"}},
		{"ipv6 with port", "[2001:db8::1]:4711", []string{"[2001:db8::1]:4711"}},
		{"ipv4-mapped is unmapped", "::ffff:203.0.113.7", []string{"203.0.113.7"}},
		{"empty", "", nil},
		{"empty element", "203.0.113.7,,10.0.0.1", nil},
		{"trailing comma", "203.0.113.7,", nil},
		{"a name", "client.example", nil},
		{"unknown", "unknown", nil},
		{"out of range", "300.1.2.3", nil},
		{"two addresses without a comma", "203.0.113.7 10.0.0.1", nil},
		{"zone", "fe80::1%eth0", nil},
		{"half a bracket", "[2001:db8::1", nil},
		{"ipv4 in brackets", "[203.0.113.7]", nil},
		{"bad port", "203.0.113.7:99999", nil},
		{"control character", "203.0.113.7\x00", nil},
		{"too many hops", strings.Repeat("10.0.0.1,", 64) + "10.0.0.1", nil},
		{"too long", strings.Repeat(" ", 9000) + "10.0.0.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := server.ParseXFF(tt.in)
			if tt.want == nil {
				if err == nil || !errors.Is(err, server.ErrForwarded) || !strings.Contains(err.Error(), "X-Forwarded-For") {
					t.Fatalf("ParseXFF(%q) = %v, %v; want an error naming the header", tt.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, addrPorts(t, tt.want...)) {
				t.Fatalf("ParseXFF(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseForwarded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     []string // nil: an error
	}{
		{"one", "for=192.0.2.60", []string{"192.0.2.60"}},
		{"RFC 7239 example", `for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`,
			[]string{"192.0.2.60", "[2001:db8:cafe::17]:4711"}},
		{"case and spaces", `For="192.0.2.60" ;  Proto=https ,for=198.51.100.1`, []string{"192.0.2.60", "198.51.100.1"}},
		{"quoted with escape", `for="192.0.2.6\0"`, []string{"192.0.2.60"}},
		{"for= last in element", "proto=https;for=192.0.2.60", []string{"192.0.2.60"}},
		{"empty", "", nil},
		{"no for", "proto=https", nil},
		{"for=unknown", "for=unknown", nil},
		{"obfuscated", "for=_hidden", nil},
		{"two for in one element", "for=192.0.2.1;for=192.0.2.2", nil},
		{"unterminated quote", `for="192.0.2.60`, nil},
		{"no value", "for=", nil},
		{"no equals", "for", nil},
		{"bare ipv6 needs quotes", "for=[2001:db8::1]", nil},
		{"garbage after value", "for=192.0.2.60 x", nil},
		{"empty element", "for=192.0.2.60,,for=192.0.2.61", nil},
		{"trailing comma", "for=192.0.2.60,", nil},
		{"control character in quotes", "for=\"192.0.2.60\x01\"", nil},
		{"X-Forwarded-For syntax", "192.0.2.60, 10.0.0.1", nil},
		{"too many elements", strings.Repeat("for=10.0.0.1,", 64) + "for=10.0.0.1", nil},
		{"too long", "for=10.0.0.1;x=\"" + strings.Repeat("a", 9000) + "\"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := server.ParseForwarded(tt.in)
			if tt.want == nil {
				if err == nil || !errors.Is(err, server.ErrForwarded) || !strings.Contains(err.Error(), "Forwarded") {
					t.Fatalf("ParseForwarded(%q) = %v, %v; want an error naming the header", tt.in, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, addrPorts(t, tt.want...)) {
				t.Fatalf("ParseForwarded(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestClientOf checks who a request is taken to come from, for each peer,
// trust setting and header.
func TestClientOf(t *testing.T) {
	t.Parallel()
	const (
		remote = "198.51.100.7:40000" // a client on the internet
		proxy  = "10.1.2.3:50000"     // a proxy in front of the server
		local  = "127.0.0.1:50000"    // this machine
		local6 = "[::1]:50000"
	)
	trustProxy := server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	trustLoopback := server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	trustMapped := server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
	tests := []struct {
		name    string
		cfg     server.Config
		peer    string
		header  http.Header
		want    string // ip or ip:port
		via     string
		local   bool
		errText string // in ErrMsg
	}{
		{"remote, no trust", server.Config{}, remote, nil, remote, "peer", false, ""},
		{"spoofed XFF from an untrusted peer changes nothing", server.Config{}, remote,
			http.Header{"X-Forwarded-For": {"127.0.0.1"}}, remote, "peer", false, ""},
		{"spoofed Forwarded from an untrusted peer", trustProxy, remote,
			http.Header{"Forwarded": {"for=10.0.0.9"}}, remote, "peer", false, ""},
		{"spoofed X-Real-IP from an untrusted peer", trustProxy, remote,
			http.Header{"X-Real-Ip": {"203.0.113.1"}}, remote, "peer", false, ""},
		{"trusted proxy without headers is the client", trustProxy, proxy, nil, proxy, "peer", false, ""},
		{"XFF from a trusted proxy", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"203.0.113.5"}}, "203.0.113.5", "x-forwarded-for", false, ""},
		{"XFF: the rightmost untrusted address wins over a spoofed one", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"127.0.0.1, 203.0.113.5, 10.9.9.9"}}, "203.0.113.5", "x-forwarded-for", false, ""},
		{"XFF split over two header lines", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"192.0.2.1, 203.0.113.5", "10.9.9.9"}}, "203.0.113.5", "x-forwarded-for", false, ""},
		{"XFF all trusted: the leftmost", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, "10.0.0.1", "x-forwarded-for", false, ""},
		{"XFF claiming loopback is not local", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"127.0.0.1"}}, "127.0.0.1", "x-forwarded-for", false, ""},
		{"Forwarded wins over XFF", trustProxy, proxy,
			http.Header{"Forwarded": {`for="[2001:db8::5]:4711"`}, "X-Forwarded-For": {"203.0.113.5"}}, "[2001:db8::5]:4711", "forwarded", false, ""},
		{"X-Real-IP", trustProxy, proxy,
			http.Header{"X-Real-Ip": {"203.0.113.6"}}, "203.0.113.6", "x-real-ip", false, ""},
		{"malformed XFF from a trusted proxy: the proxy is the client", trustProxy, proxy,
			http.Header{"X-Forwarded-For": {"203.0.113.5, nonsense"}}, proxy, "peer", false, `"nonsense" is not an IP address`},
		{"malformed Forwarded from a trusted proxy", trustProxy, proxy,
			http.Header{"Forwarded": {"for=unknown"}}, proxy, "peer", false, "not an IP address"},
		{"X-Real-IP twice", trustProxy, proxy,
			http.Header{"X-Real-Ip": {"203.0.113.6", "203.0.113.7"}}, proxy, "peer", false, "more than once"},
		{"IPv4-mapped trusted range", trustMapped, "[::ffff:10.1.2.3]:50000",
			http.Header{"X-Forwarded-For": {"203.0.113.5"}}, "203.0.113.5", "x-forwarded-for", false, ""},
		{"a mapped range shorter than /96 trusts no IPv4 peer", server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/90")}}, remote,
			http.Header{"X-Forwarded-For": {"203.0.113.5"}}, remote, "peer", false, ""},
		{"loopback is local", server.Config{}, local, nil, local, "peer", true, ""},
		{"IPv6 loopback is local", server.Config{}, local6, nil, local6, "peer", true, ""},
		{"loopback with LimitLoopback is not local", server.Config{LimitLoopback: true}, local, nil, local, "peer", false, ""},
		{"loopback with a forwarding header is not local", server.Config{}, local,
			http.Header{"X-Forwarded-For": {"203.0.113.5"}}, local, "peer", false, ""},
		{"loopback trusted: not local, headers believed", trustLoopback, local,
			http.Header{"X-Forwarded-For": {"203.0.113.5"}}, "203.0.113.5", "x-forwarded-for", false, ""},
		{"loopback trusted: a header-less local client is not local", trustLoopback, local, nil, local, "peer", false, ""},
		{"one loopback address trusted: no loopback client is local", trustLoopback, "127.0.0.2:50000", nil, "127.0.0.2:50000", "peer", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := server.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/ws", nil)
			r.RemoteAddr = tt.peer
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			got := server.ClientOf(s, r)
			addr := got.IP.String()
			if got.Port != 0 {
				addr = netip.AddrPortFrom(got.IP, got.Port).String()
			}
			want := tt.want
			if ap, err := netip.ParseAddrPort(want); err == nil {
				want = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
			}
			if addr != want || got.Via != tt.via || got.Local != tt.local {
				t.Errorf("client %s via %s local %v, want %s via %s local %v", addr, got.Via, got.Local, want, tt.via, tt.local)
			}
			if (got.ErrMsg != "") != (tt.errText != "") || !strings.Contains(got.ErrMsg, tt.errText) {
				t.Errorf("error %q, want one containing %q", got.ErrMsg, tt.errText)
			}
		})
	}
}

func TestTrustedProxiesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  server.Config
		want string // in the error; "" for none
	}{
		{"proxy protocol needs trusted proxies", server.Config{ProxyProtocol: true}, "ProxyProtocol needs TrustedProxies"},
		{"invalid range", server.Config{TrustedProxies: []netip.Prefix{{}}}, "TrustedProxies"},
		{"fine", server.Config{ProxyProtocol: true, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}
