package server_test

import (
	"net/http"
	"net/http/httptest"
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
