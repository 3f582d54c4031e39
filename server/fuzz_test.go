package server_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"

	"github.com/wschan/wschan/server"
)

// FuzzRoutes sends any path and query to the server's routes, the scenario
// parameters ({code}, ?after=, ?reason=, {duration}) and room names among them: no panic,
// and bad input is the client's error (4xx), never the server's (5xx).
func FuzzRoutes(f *testing.F) {
	for _, seed := range []struct {
		path, query string
		upgrade     bool
	}{
		{"/ws/close/4000", "after=3&reason=bye", true},
		{"/ws/close/1005", "", true},
		{"/ws/close/99999999999999999999", "after=-1", true},
		{"/ws/close/1000", "reason=%ff%fe", true},
		{"/ws/delay/250ms", "", true},
		{"/ws/delay/-1s", "", true},
		{"/ws/delay/9999999h", "", false},
		{"/ws/silent", "", true},
		{"/ws/room/lobby", "", true},
		{"/ws/room/a.b", "", true},
		{"/ws/room/", "", false},
		{"/ws/room/" + "%3E", "", true},
		{"/ws/drop", "", false},
		{"/", "", false},
		{"/static/../../etc/passwd", "", false},
		{"/metrics", "", false},
	} {
		f.Add(seed.path, seed.query, seed.upgrade)
	}
	s, err := server.New(server.Config{})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, path, query string, upgrade bool) {
		r := &http.Request{
			Method:     http.MethodGet,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1, ProtoMinor: 1,
			Header:     http.Header{},
			Host:       "127.0.0.1",
			RemoteAddr: "127.0.0.1:1234",
			RequestURI: path,
		}
		if upgrade {
			// A version the server refuses: every route that gets as far as
			// the upgrade answers 426 (a recorder cannot be hijacked).
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Sec-WebSocket-Version", "8")
			r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("GET %q ?%q upgrade=%v: %d %q", path, query, upgrade, w.Code, w.Body)
		}
	})
}

// FuzzForwardingHeaders feeds any value to the Forwarded and
// X-Forwarded-For parsers: no panic; an error is ErrForwarded; a result is
// at most 64 valid, unmapped addresses without a zone.
func FuzzForwardingHeaders(f *testing.F) {
	for _, seed := range []string{
		"203.0.113.7", "203.0.113.7, 10.0.0.1", "[2001:db8::1]:4711", "::ffff:1.2.3.4", "fe80::1%eth0", "",
		`for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`, `for="\"`, "for=unknown",
		"for=_hidden;for=1.2.3.4", `For="1.2.3.4" ; x="a\"b", for=5.6.7.8`, ",,,", "for=1.2.3.4,",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for name, parse := range map[string]func(string) ([]netip.AddrPort, error){
			"X-Forwarded-For": server.ParseXFF, "Forwarded": server.ParseForwarded,
		} {
			hops, err := parse(v)
			if err != nil {
				if !errors.Is(err, server.ErrForwarded) {
					t.Fatalf("%s %q: error %v is not ErrForwarded", name, v, err)
				}
				continue
			}
			if len(hops) == 0 || len(hops) > 64 {
				t.Fatalf("%s %q: %d hops", name, v, len(hops))
			}
			for _, h := range hops {
				if !h.Addr().IsValid() || h.Addr().Is4In6() || h.Addr().Zone() != "" {
					t.Fatalf("%s %q: hop %v", name, v, h)
				}
			}
		}
	})
}
