package peers_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan/internal/peers"
	"go.uber.org/goleak"
)

// TestMain checks that each test's cleanup stopped the goroutines reading
// the peers' output.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pairs crosses the kinds so that each client talks to the other library.
var pairs = []struct {
	name           string
	server, client peers.Kind
}{
	{"node client to python server", peers.Python, peers.Node},
	{"python client to node server", peers.Node, peers.Python},
}

type message struct {
	typ  string
	data []byte
}

func testMessages() []message {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7 / 5) // repetitive enough to compress, not constant
	}
	return []message{
		{"text", []byte("hello")},
		{"binary", all},
		{"text", []byte{}},
		{"binary", big},
	}
}

// deadline derives the context for one test from t.Context.
func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// next returns the next event and checks its kind.
func next(ctx context.Context, t *testing.T, who string, nextFn func(context.Context) (peers.Event, error), want string) peers.Event {
	t.Helper()
	ev, err := nextFn(ctx)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if ev.Event != want {
		t.Fatalf("%s: got event %v, want %q", who, ev, want)
	}
	return ev
}

// echo sends each message and waits for it to come back unchanged.
func echo(ctx context.Context, t *testing.T, c *peers.Client, msgs []message) {
	t.Helper()
	for _, m := range msgs {
		if err := c.Send(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		ev := next(ctx, t, "client", c.Next, "message")
		if ev.Type != m.typ || !bytes.Equal(ev.Data, m.data) {
			t.Fatalf("echo of %s message of %d bytes: got %s message of %d bytes, or different bytes",
				m.typ, len(m.data), ev.Type, len(ev.Data))
		}
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	for _, p := range pairs {
		for _, compression := range []bool{false, true} {
			name := p.name
			if compression {
				name += " compressed"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := deadline(t)
				o := peers.Options{Compression: compression}
				s := peers.StartServer(t, p.server, o)
				c := peers.StartClient(t, p.client, s.URL, o)

				copen := next(ctx, t, "client", c.Next, "open")
				sopen := next(ctx, t, "server", s.Next, "open")
				for _, ev := range []peers.Event{copen, sopen} {
					if got := strings.Contains(ev.Extensions, "permessage-deflate"); got != compression {
						t.Errorf("open event %v: permessage-deflate negotiated %v, want %v", ev, got, compression)
					}
				}
				echo(ctx, t, c, testMessages())
			})
		}
	}
}

func TestSubprotocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		offered, accepted []string
		want              string
	}{
		{"match", []string{"chat"}, []string{"chat"}, "chat"},
		{"first offered wins", []string{"x", "chat"}, []string{"chat", "x"}, "x"},
		{"skip unsupported", []string{"y", "chat"}, []string{"chat"}, "chat"},
		{"no match", []string{"y"}, []string{"chat"}, ""},
		{"server has none", []string{"chat"}, nil, ""},
	}
	for _, p := range pairs {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := deadline(t)
				s := peers.StartServer(t, p.server, peers.Options{Protocols: tt.accepted})
				c := peers.StartClient(t, p.client, s.URL, peers.Options{Protocols: tt.offered})
				// ws fails the connection when it offered protocols and the
				// server selected none ("Server sent no subprotocol");
				// websockets goes on without one.
				if p.client == peers.Node && tt.want == "" {
					next(ctx, t, "client", c.Next, "error")
				} else if ev := next(ctx, t, "client", c.Next, "open"); ev.Protocol != tt.want {
					t.Errorf("client open: protocol %q, want %q", ev.Protocol, tt.want)
				}
				if ev := next(ctx, t, "server", s.Next, "open"); ev.Protocol != tt.want {
					t.Errorf("server open: protocol %q, want %q", ev.Protocol, tt.want)
				}
			})
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// The client closes with code and reason, or sends serverClose to
		// make the server close, when serverClose is not empty.
		code        int
		reason      string
		serverClose string
		// What each side's close event reports: the code and reason it
		// received.
		serverCode, clientCode int
		serverReason           string
		clientReason           string
	}{
		{name: "client 4001", code: 4001, reason: "bye",
			serverCode: 4001, serverReason: "bye", clientCode: 4001, clientReason: "bye"},
		{name: "client no status", code: 0,
			serverCode: 1005, clientCode: 1005},
		{name: "server 4002", serverClose: "close:4002:server bye",
			serverCode: 4002, serverReason: "server bye", clientCode: 4002, clientReason: "server bye"},
		{name: "server no status", serverClose: "close:",
			serverCode: 1005, clientCode: 1005},
	}
	for _, p := range pairs {
		for _, tt := range tests {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := deadline(t)
				s := peers.StartServer(t, p.server, peers.Options{})
				c := peers.StartClient(t, p.client, s.URL, peers.Options{})
				next(ctx, t, "client", c.Next, "open")
				next(ctx, t, "server", s.Next, "open")

				var err error
				if tt.serverClose != "" {
					err = c.Send("text", []byte(tt.serverClose))
				} else {
					err = c.Close(tt.code, tt.reason)
				}
				if err != nil {
					t.Fatal(err)
				}
				if ev := next(ctx, t, "server", s.Next, "close"); ev.Code != tt.serverCode || ev.Reason != tt.serverReason {
					t.Errorf("server close: got %d %q, want %d %q", ev.Code, ev.Reason, tt.serverCode, tt.serverReason)
				}
				if ev := next(ctx, t, "client", c.Next, "close"); ev.Code != tt.clientCode || ev.Reason != tt.clientReason {
					t.Errorf("client close: got %d %q, want %d %q", ev.Code, ev.Reason, tt.clientCode, tt.clientReason)
				}
				if ev, err := c.Next(ctx); err == nil {
					t.Errorf("client: got %v after close, want the end of output", ev)
				}
			})
		}
	}
}

func TestConnectError(t *testing.T) {
	t.Parallel()
	for _, k := range []peers.Kind{peers.Node, peers.Python} {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			ctx := deadline(t)
			// Port 1 (tcpmux) has no listener on a test machine: connection refused.
			url := "ws://127.0.0.1:1"
			c := peers.StartClient(t, k, url, peers.Options{})
			if ev := next(ctx, t, "client", c.Next, "error"); ev.Message == "" {
				t.Errorf("error event %v has no message", ev)
			}
			if ev, err := c.Next(ctx); err == nil {
				t.Errorf("client: got %v after error, want the end of output", ev)
			}
		})
	}
}
