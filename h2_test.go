package wschan_test

import (
	"bytes"
	"compress/flate"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/internal/xconnect"
	"golang.org/x/net/http2"
)

// requireXConnect skips HTTP/2 WebSocket tests where the test binary
// could not restart itself with extended CONNECT on (TestMain).
func requireXConnect(t *testing.T) {
	t.Helper()
	if !xconnect.Enabled() {
		t.Skipf("HTTP/2 extended CONNECT is off in this process: run with GODEBUG=%s", xconnect.Setting)
	}
}

// h2Server serves h over TLS with HTTP/2 offered, and returns its https
// URL and a client for it that speaks HTTP/2 (h1 false) or only HTTP/1.1.
func h2Server(t *testing.T, h http.Handler) (url string, h2, h1 *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// net/http's own Transport refuses the :protocol header (Go 1.26);
	// x/net/http2's sends extended CONNECT.
	//lint:ignore SA1019 the replacement, http.Transport, cannot send extended CONNECT
	h2tr := &http2.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}
	h2 = &http.Client{Transport: h2tr}
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	h1 = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	//lint:ignore SA1019 see above
	t.Cleanup(h2tr.CloseIdleConnections)
	return srv.URL, h2, h1
}

// Accept over HTTP/2: extended CONNECT gets 200 with the subprotocol and
// the extension, frames flow both ways on the stream, several WebSockets
// and plain requests share one connection, and the closing handshake ends
// both sides with 1000.
func TestAcceptHTTP2(t *testing.T) {
	t.Parallel()
	requireXConnect(t)
	accepted := make(chan *wschan.Channel, 4)
	echo := &wstest.Echo{Options: &wschan.AcceptOptions{Subprotocols: []string{"chat"}, EnableCompression: true},
		Accepted: accepted}
	mux := http.NewServeMux()
	mux.Handle("/ws", echo) // GET and CONNECT: the handler waits for the channel's end
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) })
	url, client, _ := h2Server(t, mux)

	tests := []struct {
		name   string
		header http.Header
		proto  string // want Sec-WebSocket-Protocol
		ext    bool   // want permessage-deflate
	}{
		{"plain", nil, "", false},
		{"subprotocol", http.Header{"Sec-Websocket-Protocol": {"other, chat"}}, "chat", false},
		{"compression", http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := wstest.H2Connect(t, client, url+"/ws", tt.header)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Fatalf("extended CONNECT: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
			}
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tt.proto {
				t.Fatalf("subprotocol %q, want %q", got, tt.proto)
			}
			if got := strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"); got != tt.ext {
				t.Fatalf("Sec-WebSocket-Extensions %q, want deflate %v", resp.Header.Get("Sec-WebSocket-Extensions"), tt.ext)
			}
			msgs := []string{"hello", strings.Repeat("x", 70_000)}
			if tt.ext {
				msgs = msgs[:1] // one compressed answer decodes on its own
			}
			for _, msg := range msgs {
				if err := raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 1, Masked: true, Payload: []byte(msg)}); err != nil {
					t.Fatal(err)
				}
				f, err := raw.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if compressed := f.RSV == 4; compressed != tt.ext {
					t.Fatalf("echo: RSV %d, want compressed %v", f.RSV, tt.ext)
				}
				if tt.ext {
					f.Payload = inflate(t, f.Payload, len(msg))
				}
				if f.Opcode != 1 || string(f.Payload) != msg || f.Masked {
					t.Fatalf("echo: opcode %d, %d bytes, masked %v; want the text back unmasked", f.Opcode, len(f.Payload), f.Masked)
				}
			}
			var sch *wschan.Channel
			select {
			case sch = <-accepted:
			case <-t.Context().Done():
				t.Fatal("not accepted")
			}
			_ = raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 8, Masked: true, Payload: wstest.ClosePayload(1000, "bye")})
			if code, reason := raw.ReadClose(); code != 1000 {
				t.Fatalf("close answer %d %q, want 1000", code, reason)
			}
			wstest.WaitDone(t, sch)
			if sch.CloseCode() != wschan.StatusNormalClosure || sch.CloseReason() != "bye" {
				t.Fatalf("server side ended with %v %q", sch.CloseCode(), sch.CloseReason())
			}
		})
	}
	resp, err := client.Get(url + "/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Fatalf("page over %q, want HTTP/2.0", body)
	}
}

// Bad input over HTTP/2 gets the status its HTTP/1.1 twin gets.
func TestAcceptHTTP2BadInput(t *testing.T) {
	t.Parallel()
	requireXConnect(t)
	mux := http.NewServeMux()
	mux.Handle("/ws", &wstest.Echo{})
	url, h2, h1 := h2Server(t, mux)

	// h1Upgrade sends the HTTP/1.1 handshake with header changes; value ""
	// deletes a header.
	h1Upgrade := func(t *testing.T, method, path string, change http.Header) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), method, url+path, nil)
		req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
		for k, v := range change {
			if v[0] == "" {
				req.Header.Del(k)
			} else {
				req.Header[k] = v
			}
		}
		resp, err := h1.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name   string
		h1     func(t *testing.T) *http.Response
		h2     func(t *testing.T) *http.Response
		status int
	}{
		{"another protocol",
			func(t *testing.T) *http.Response {
				return h1Upgrade(t, "GET", "/ws", http.Header{"Upgrade": {"webtransport"}})
			},
			func(t *testing.T) *http.Response {
				resp, _ := wstest.H2Connect(t, h2, url+"/ws", http.Header{":protocol": {"webtransport"}})
				return resp
			},
			http.StatusUpgradeRequired},
		{"wrong version",
			func(t *testing.T) *http.Response {
				return h1Upgrade(t, "GET", "/ws", http.Header{"Sec-Websocket-Version": {"8"}})
			},
			func(t *testing.T) *http.Response {
				resp, _ := wstest.H2Connect(t, h2, url+"/ws", http.Header{"Sec-Websocket-Version": {"8"}})
				return resp
			},
			http.StatusUpgradeRequired},
		{"not a WebSocket path",
			func(t *testing.T) *http.Response { return h1Upgrade(t, "GET", "/nope", nil) },
			func(t *testing.T) *http.Response {
				resp, _ := wstest.H2Connect(t, h2, url+"/nope", nil)
				return resp
			},
			http.StatusNotFound},
		{"plain GET",
			func(t *testing.T) *http.Response {
				return h1Upgrade(t, "GET", "/ws", http.Header{"Upgrade": {""}, "Connection": {""}})
			},
			func(t *testing.T) *http.Response {
				resp, err := h2.Get(url + "/ws")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			},
			http.StatusUpgradeRequired},
		{"origin not allowed",
			func(t *testing.T) *http.Response {
				return h1Upgrade(t, "GET", "/ws", http.Header{"Origin": {"https://evil.example"}})
			},
			func(t *testing.T) *http.Response {
				resp, _ := wstest.H2Connect(t, h2, url+"/ws", http.Header{"Origin": {"https://evil.example"}})
				return resp
			},
			http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r1, r2 := tt.h1(t), tt.h2(t)
			if r1.ProtoMajor != 1 || r2.ProtoMajor != 2 {
				t.Fatalf("protocols %s and %s, want HTTP/1.1 and HTTP/2.0", r1.Proto, r2.Proto)
			}
			if r1.StatusCode != tt.status || r2.StatusCode != tt.status {
				t.Fatalf("HTTP/1.1 got %d, HTTP/2 got %d, want %d for both", r1.StatusCode, r2.StatusCode, tt.status)
			}
			if tt.status == http.StatusUpgradeRequired && r2.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", r2.Header)
			}
		})
	}
}

// inflate decodes one permessage-deflate message of n bytes (RFC 7692).
func inflate(t *testing.T, p []byte, n int) []byte {
	t.Helper()
	r := flate.NewReader(bytes.NewReader(append(p, 0, 0, 0xff, 0xff)))
	out := make([]byte, n)
	if _, err := io.ReadFull(r, out); err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}
