package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// running is a server started on a loopback port for one test.
type running struct {
	URL  string // http://127.0.0.1:port
	WS   string // ws://127.0.0.1:port
	stop context.CancelFunc
	done chan error
}

// start runs a server with cfg on 127.0.0.1:0 until the test ends (or
// stop is called), and waits for Serve to return at cleanup.
func start(t *testing.T, cfg server.Config) *running {
	t.Helper()
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{URL: "http://" + ln.Addr().String(), WS: "ws://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEchoSmoke(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	for _, path := range []string{"/ws", "/"} {
		ch := wstest.Dial(t, srv.WS+path, nil)
		if err := ch.SendText(t.Context(), "hello "+path); err != nil {
			t.Fatal(err)
		}
		if m := wstest.Read(t, ch); string(m.Data) != "hello "+path || m.Type != wschan.Text {
			t.Fatalf("echo on %s: %v %q", path, m.Type, m.Data)
		}
	}
	if code, body := get(t, srv.URL+"/"); code != 200 || !strings.Contains(body, "/ws") {
		t.Fatalf("GET /: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	if code, body := get(t, srv.URL+"/metrics"); code != 200 || !strings.Contains(body, "wschan_connections_open") {
		t.Fatalf("metrics %d", code)
	}
}
