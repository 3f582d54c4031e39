//go:build js

package wasmtest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan"
)

// server is the ws:// URL of the `wschan serve` TestWasmInChromium runs.
func server(t *testing.T) string {
	t.Helper()
	u := os.Getenv("WSCHAN_WASM_SERVER")
	if u == "" {
		t.Skip("run through TestWasmInChromium, which sets WSCHAN_WASM_SERVER")
	}
	return u
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func dial(t *testing.T, url string, opts *wschan.DialOptions) *wschan.Channel {
	t.Helper()
	ch, err := wschan.Dial(ctx(t), url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = ch.Close(wschan.StatusNormalClosure, "") })
	return ch
}

// The recipe in the browser: connect, send text and binary, listen,
// close with 1000.
func TestRecipe(t *testing.T) {
	ch := dial(t, server(t)+"/ws", nil)
	if ch.State() != wschan.StateOpen {
		t.Fatalf("state %v", ch.State())
	}
	tests := []struct {
		typ  wschan.MessageType
		data string
	}{{wschan.Text, "Hello!"}, {wschan.Binary, "\x00\x01\xff"}, {wschan.Text, strings.Repeat("é", 40_000)}}
	for _, tt := range tests {
		if err := ch.Send(ctx(t), tt.typ, []byte(tt.data)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for m := range ch.Messages(ctx(t)) {
		if m.Type != tests[n].typ || string(m.Data) != tests[n].data {
			t.Fatalf("message %d: %v %d bytes, want %v %d bytes", n, m.Type, len(m.Data), tests[n].typ, len(tests[n].data))
		}
		if n++; n == len(tests) {
			break
		}
	}
	if err := ch.SendText(ctx(t), "bye"); err != nil {
		t.Fatal(err)
	}
	if m, err := ch.Read(ctx(t)); err != nil || string(m.Data) != "bye" {
		t.Fatalf("Read: %q, %v", m.Data, err)
	}
	if err := ch.Close(wschan.StatusNormalClosure, "done"); err != nil {
		t.Fatal(err)
	}
	if ch.CloseCode() != wschan.StatusNormalClosure || !errors.Is(ch.Err(), wschan.ErrClosed) {
		t.Fatalf("after Close: %v, %v", ch.CloseCode(), ch.Err())
	}
	if err := ch.SendText(ctx(t), "late"); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}

// The server picks the first subprotocol offered.
func TestSubprotocol(t *testing.T) {
	ch := dial(t, server(t)+"/ws", &wschan.DialOptions{Subprotocols: []string{"chat", "superchat"}})
	if p := ch.Protocol(); p != "chat" {
		t.Fatalf("Protocol() = %q, want chat", p)
	}
}

// A close by the server: code and reason reach the channel.
func TestPeerClose(t *testing.T) {
	ch := dial(t, server(t)+"/ws/close/4000?reason=maintenance", nil)
	select {
	case <-ch.Done():
	case <-ctx(t).Done():
		t.Fatal("not closed")
	}
	ce, ok := errors.AsType[*wschan.CloseError](ch.Err())
	if !ok || !ce.Remote || ce.Code != 4000 || ce.Reason != "maintenance" {
		t.Fatalf("Err() = %v, want the server's 4000 maintenance", ch.Err())
	}
	if ch.CloseCode() != 4000 || ch.CloseReason() != "maintenance" {
		t.Fatalf("CloseCode %v, CloseReason %q", ch.CloseCode(), ch.CloseReason())
	}
}

// Options a browser cannot honour fail Dial with an error naming them.
func TestUnsupportedOptions(t *testing.T) {
	url := server(t) + "/ws"
	tests := []struct {
		name string
		opts wschan.DialOptions
	}{
		{"Header", wschan.DialOptions{Header: http.Header{"Authorization": {"x"}}}},
		{"Proxy", wschan.DialOptions{Proxy: http.ProxyFromEnvironment}},
		{"TLSConfig", wschan.DialOptions{TLSConfig: &tls.Config{}}},
		{"NetDial", wschan.DialOptions{NetDial: (&net.Dialer{}).DialContext}},
		{"PingInterval", wschan.DialOptions{PingInterval: time.Second}},
		{"OnPing", wschan.DialOptions{OnPing: func(*wschan.Channel, []byte) {}}},
		{"PingTimeout", wschan.DialOptions{PingTimeout: time.Second}},
		{"EnableCompression", wschan.DialOptions{EnableCompression: true}},
		{"ReadLimit", wschan.DialOptions{ReadLimit: 1024}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := wschan.Dial(ctx(t), url, &tt.opts)
			if err == nil {
				_ = ch.Close(wschan.StatusNormalClosure, "")
				t.Fatal("Dial succeeded")
			}
			if !errors.Is(err, wschan.ErrUnsupportedOption) || !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("Dial: %v, want ErrUnsupportedOption naming %s", err, tt.name)
			}
		})
	}
}

// A server that is not there: Dial fails, with nothing to wait for.
func TestDialRefused(t *testing.T) {
	server(t)
	_, err := wschan.Dial(ctx(t), os.Getenv("WSCHAN_WASM_CLOSED")+"/ws", nil)
	if err == nil || !strings.Contains(err.Error(), "could not open") {
		t.Fatalf("Dial: %v, want the browser's failure", err)
	}
}

// Reconnect in the browser: the server closes with 1012 (service restart)
// after one echo, the channel redials and runs OnConnect each time.
func TestReconnect(t *testing.T) {
	var connects atomic.Int32
	ch := dial(t, server(t)+"/ws/close/1012?after=1", &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{
			MinDelay: time.Millisecond,
			OnConnect: func(ctx context.Context, s wschan.Sender) error {
				connects.Add(1)
				return s.Send(ctx, wschan.Text, []byte("hello"))
			},
		},
	})
	for i := range 3 { // each connection echoes the hello, then closes with 1012
		m, err := ch.Read(ctx(t))
		if err != nil || string(m.Data) != "hello" {
			t.Fatalf("read %d: %q, %v", i, m.Data, err)
		}
	}
	if n := connects.Load(); n < 3 {
		t.Fatalf("OnConnect ran %d times, want at least 3", n)
	}
}

// Sends while reconnecting wait in the send buffer and go out, in order,
// once the channel is open again.
func TestReconnectBuffer(t *testing.T) {
	states := make(chan wschan.State, 16)
	ch := dial(t, server(t)+"/ws/close/1012?after=2", &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{MinDelay: 50 * time.Millisecond},
		OnStateChange: func(s wschan.State, _ error) {
			select { // must not block: later cycles are not read
			case states <- s:
			default:
			}
		},
	})
	for _, s := range []string{"one", "two"} { // two echoes, then the server closes with 1012
		if err := ch.SendText(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if m, err := ch.Read(ctx(t)); err != nil || string(m.Data) != s {
			t.Fatalf("echo: %q, %v", m.Data, err)
		}
	}
	for s := range states {
		if s == wschan.StateReconnecting {
			break
		}
	}
	for _, s := range []string{"three", "four"} { // buffered: nothing is connected
		if err := ch.SendText(ctx(t), s); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"three", "four"} {
		if m, err := ch.Read(ctx(t)); err != nil || string(m.Data) != want {
			t.Fatalf("after the reconnect: %q, %v; want %q", m.Data, err, want)
		}
	}
}
