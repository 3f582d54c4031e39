// Package wstest holds test helpers for wschan: an in-process echo server
// on loopback built on wschan's own Accept, and small assertions. Only
// tests import it.
package wstest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
)

// Echo is an http.Handler that accepts WebSocket connections with Options
// and echoes every message back unchanged, until the peer closes.
type Echo struct {
	Options *wschan.AcceptOptions
	// Accepted, if set, receives every accepted channel.
	Accepted chan *wschan.Channel
}

func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ch, err := wschan.Accept(w, r, e.Options)
	if err != nil {
		return
	}
	if e.Accepted != nil {
		e.Accepted <- ch
	}
	ctx := context.Background()
	for m := range ch.Messages(ctx) {
		err := ch.Send(ctx, m.Type, m.Data)
		m.Release()
		if err != nil {
			return
		}
	}
}

// Server starts h on a loopback httptest server, closed at cleanup, and
// returns its ws:// URL.
func Server(t testing.TB, h http.Handler) (wsURL string, srv *httptest.Server) {
	t.Helper()
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), srv
}

// EchoServer starts an echo server with opts and returns its URL.
func EchoServer(t testing.TB, opts *wschan.AcceptOptions) string {
	t.Helper()
	u, _ := Server(t, &Echo{Options: opts})
	return u
}

// Dial dials url with opts, failing the test on error, and closes the
// channel at cleanup.
func Dial(t testing.TB, url string, opts *wschan.DialOptions) *wschan.Channel {
	t.Helper()
	ch, err := wschan.Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = ch.Close(wschan.StatusNormalClosure, "") })
	return ch
}

// Read reads one message with the test's context, failing on error.
func Read(t testing.TB, ch *wschan.Channel) wschan.Message {
	t.Helper()
	m, err := ch.Read(t.Context())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return m
}

// WaitDone waits for ch to end, failing the test if the test's context ends first.
func WaitDone(t testing.TB, ch *wschan.Channel) {
	t.Helper()
	select {
	case <-ch.Done():
	case <-t.Context().Done():
		t.Fatalf("channel did not end (state %v)", ch.State())
	}
}

// Context returns the test's context bounded by d, so that a hung peer
// fails the test that waits on it rather than the whole run. It is
// cancelled when the test ends.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
