//go:build linux

package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// On the poll engine, clients that send half a request head and stop hold
// no goroutine each (their heads wait on the poller), a whole handshake
// beside them is served, and the server still stops at once.
// Not parallel: it counts the process's goroutines.
func TestHalfSentHeadsHoldNoGoroutine(t *testing.T) {
	const n = 300
	srv := start(t, server.Config{Engine: wschan.EnginePoll, HandshakeTimeout: time.Hour})
	addr := strings.TrimPrefix(srv.URL, "http://")
	g0 := runtime.NumGoroutine()
	for range n {
		dialWrite(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
	}
	// A whole handshake after them: by its answer the server has accepted
	// every one before it.
	ch := wstest.Dial(t, srv.WS+"/ws", nil)
	if err := ch.SendText(t.Context(), "beside them"); err != nil {
		t.Fatal(err)
	}
	if m, err := ch.Read(t.Context()); err != nil || string(m.Data) != "beside them" {
		t.Fatalf("echo %q, %v", m.Data, err)
	}
	if grew := runtime.NumGoroutine() - g0; grew >= n/3 {
		t.Fatalf("%d goroutines more with %d half-sent heads open; want far fewer than one each", grew, n)
	}
}
