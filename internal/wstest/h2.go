package wstest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// H2Connect opens a WebSocket over HTTP/2 (RFC 8441): an extended CONNECT
// (:protocol websocket unless header sets another) to url, https:// on a
// server that speaks HTTP/2, through client, whose Transport must be
// golang.org/x/net/http2's (net/http's Transport refuses the :protocol
// header in Go 1.26). The response is returned as is; when it is 200, the
// stream comes back as a Raw peer (frames as a client must send them:
// masked). Both are closed at cleanup.
func H2Connect(t testing.TB, client *http.Client, url string, header http.Header) (*http.Response, *Raw) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodConnect, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("extended CONNECT %s: %v", url, err)
	}
	t.Cleanup(func() {
		_ = pw.Close()
		_ = resp.Body.Close()
	})
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	s := &h2ClientStream{r: resp.Body, w: pw}
	return resp, &Raw{Conn: s, br: bufio.NewReader(s), t: t}
}

// h2ClientStream is a client's HTTP/2 stream as a net.Conn, for Raw.
// Deadlines are not supported: tests bound their waits with contexts.
type h2ClientStream struct {
	r io.ReadCloser
	w *io.PipeWriter
}

func (s *h2ClientStream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *h2ClientStream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *h2ClientStream) Close() error {
	_ = s.w.Close()
	return s.r.Close()
}
func (s *h2ClientStream) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *h2ClientStream) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *h2ClientStream) SetDeadline(time.Time) error      { return nil }
func (s *h2ClientStream) SetReadDeadline(time.Time) error  { return nil }
func (s *h2ClientStream) SetWriteDeadline(time.Time) error { return nil }
