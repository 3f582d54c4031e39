package wschan_test

// Interop tests: wschan against Node's ws and Python's websockets over
// loopback, in both roles. The peers run as child processes (see
// internal/peers); a missing peer skips its subtests, unless
// WSCHAN_REQUIRE_PEERS=1, as in CI, where it fails them.
//
// TestInteropClient* dial a peer server with wschan.Dial; TestInteropServer*
// point a peer client at a wschan server built on wschan.Accept.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/peers"
	"github.com/wschan/wschan/internal/wstest"
)

// interopKinds are the peer implementations every interop test runs against.
var interopKinds = []peers.Kind{peers.Node, peers.Python}

// interopTimeout bounds one interop test, so that a lost message or a hung
// peer fails that test instead of the whole run.
const interopTimeout = 30 * time.Second

// interopMsg is one message of a test matrix, sent repeat times in a row
// (once when repeat is 0).
type interopMsg struct {
	name   string
	typ    wschan.MessageType
	data   []byte
	repeat int
}

func (m interopMsg) times() int { return max(m.repeat, 1) }

// interopPeerType names a message type the way the peers do.
func interopPeerType(typ wschan.MessageType) string {
	if typ == wschan.Text {
		return "text"
	}
	return "binary"
}

// interopType is the inverse of interopPeerType; 0 for anything else.
func interopType(peerType string) wschan.MessageType {
	switch peerType {
	case "text":
		return wschan.Text
	case "binary":
		return wschan.Binary
	}
	return 0
}

// interopPlainMessages is the matrix echoed without compression.
func interopPlainMessages() []interopMsg {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return []interopMsg{
		{name: "text", typ: wschan.Text, data: []byte("hello, 世界 🙂")},
		{name: "binary", typ: wschan.Binary, data: all},
		{name: "empty text", typ: wschan.Text, data: []byte{}},
		{name: "empty binary", typ: wschan.Binary, data: []byte{}},
		{name: "1 MiB binary", typ: wschan.Binary, data: wstest.RandomBytes(1<<20, 1)},
		{name: "1 MiB text", typ: wschan.Text, data: wstest.RandomText(1<<20, 2)},
	}
}

// interopCompressedMessages is the matrix echoed with permessage-deflate:
// each size with repetitive text (compresses well) and random bytes (does not
// compress: stored blocks), and, above 6 KiB, a 6 KiB random block tiled, whose
// only matches lie 6 KiB back, beyond a 4 KiB window (client_max_window_bits=12,
// which the Python server and the wschan server ask of a client). Messages under
// 1 MiB go twice in a row, so that with context takeover the second copy can be
// matched against the first, again more than 4 KiB back from 5 KiB on.
func interopCompressedMessages() []interopMsg {
	sentence := []byte("the quick brown fox jumps over the lazy dog; ")
	far := wstest.RandomBytes(6<<10, 3)
	sizes := []struct {
		name string
		n    int
	}{{"10 B", 10}, {"5 KiB", 5 << 10}, {"100 KiB", 100 << 10}, {"1 MiB", 1 << 20}}
	var out []interopMsg
	for i, s := range sizes {
		repeat := 2
		if s.n >= 1<<20 {
			repeat = 1
		}
		out = append(out,
			interopMsg{name: s.name + " repetitive text", typ: wschan.Text, data: wstest.Tile(sentence, s.n), repeat: repeat},
			interopMsg{name: s.name + " random binary", typ: wschan.Binary, data: wstest.RandomBytes(s.n, byte(10+i)), repeat: repeat},
		)
		if s.n > len(far) {
			out = append(out, interopMsg{name: s.name + " far repeats binary", typ: wschan.Binary, data: wstest.Tile(far, s.n), repeat: repeat})
		}
	}
	return out
}

// interopNext returns a peer's next event and checks its kind.
func interopNext(ctx context.Context, t testing.TB, who string, next func(context.Context) (peers.Event, error), want string) peers.Event {
	t.Helper()
	ev, err := next(ctx)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if ev.Event != want {
		t.Fatalf("%s: got event %v, want %q", who, ev, want)
	}
	return ev
}

// interopDial dials url and closes the channel at cleanup.
func interopDial(ctx context.Context, t testing.TB, url string, opts *wschan.DialOptions) *wschan.Channel {
	t.Helper()
	ch, err := wschan.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = ch.Close(wschan.StatusNormalClosure, "") })
	return ch
}

// interopWaitDone waits for ch to end.
func interopWaitDone(ctx context.Context, t testing.TB, ch *wschan.Channel) {
	t.Helper()
	select {
	case <-ch.Done():
	case <-ctx.Done():
		t.Fatalf("channel did not end (state %v): %v", ch.State(), context.Cause(ctx))
	}
}

// interopEcho sends m through ch and checks that each copy comes back
// unchanged.
func interopEcho(ctx context.Context, t testing.TB, ch *wschan.Channel, m interopMsg) {
	t.Helper()
	for i := range m.times() {
		if err := ch.Send(ctx, m.typ, m.data); err != nil {
			t.Fatalf("Send #%d: %v", i, err)
		}
	}
	for i := range m.times() {
		got, err := ch.Read(ctx)
		if err != nil {
			t.Fatalf("Read echo #%d: %v (channel ended with %v %q)", i, err, ch.CloseCode(), ch.CloseReason())
		}
		wstest.CompareMessage(t, fmt.Sprintf("echo #%d", i), m.typ, m.data, got.Type, got.Data)
	}
}

// interopCheckEnd checks how a channel ended: with a close frame from the
// peer carrying code and reason when remote, or by this side's Close with
// code and reason otherwise.
func interopCheckEnd(ctx context.Context, t testing.TB, ch *wschan.Channel, code wschan.StatusCode, reason string, remote bool) {
	t.Helper()
	if got := ch.CloseCode(); got != code {
		t.Errorf("CloseCode() = %v, want %v", got, code)
	}
	if got := ch.CloseReason(); got != reason {
		t.Errorf("CloseReason() = %q, want %q", got, reason)
	}
	err := ch.Err()
	if remote {
		var ce *wschan.CloseError
		if !errors.As(err, &ce) {
			t.Errorf("Err() = %v (%T), want a *wschan.CloseError", err, err)
		} else if !ce.Remote || ce.Code != code || ce.Reason != reason {
			t.Errorf("Err() = %#v, want Remote true, Code %v, Reason %q", *ce, code, reason)
		}
	} else if !errors.Is(err, wschan.ErrClosed) {
		t.Errorf("Err() = %v, want wschan.ErrClosed", err)
	}
	if _, rerr := ch.Read(ctx); rerr == nil || (err != nil && !errors.Is(rerr, err)) {
		t.Errorf("Read after the end: %v, want %v", rerr, err)
	}
	if serr := ch.SendText(ctx, "too late"); serr == nil {
		t.Errorf("SendText after the end succeeded")
	}
}

// interopServer starts a wschan echo server with opts on loopback and
// returns its URL and the channels it accepts, for a test that makes at most
// four connections (the server stops echoing until they are taken).
func interopServer(t testing.TB, opts *wschan.AcceptOptions) (url string, accepted <-chan *wschan.Channel) {
	t.Helper()
	acc := make(chan *wschan.Channel, 4)
	url, _ = wstest.Server(t, &wstest.Echo{Options: opts, Accepted: acc})
	return url, acc
}

// interopAccepted waits for the server's next channel.
func interopAccepted(ctx context.Context, t testing.TB, accepted <-chan *wschan.Channel) *wschan.Channel {
	t.Helper()
	select {
	case ch := <-accepted:
		return ch
	case <-ctx.Done():
		t.Fatalf("no connection accepted: %v", context.Cause(ctx))
		return nil
	}
}

// interopClient starts a peer client of kind k on url and waits until it
// is open.
func interopClient(ctx context.Context, t testing.TB, k peers.Kind, url string, o peers.Options) (*peers.Client, peers.Event) {
	t.Helper()
	c := peers.StartClient(t, k, url, o)
	return c, interopNext(ctx, t, "client", c.Next, "open")
}

// interopPeerEcho has client c send m and checks that each copy comes back
// unchanged.
func interopPeerEcho(ctx context.Context, t testing.TB, c *peers.Client, m interopMsg) {
	t.Helper()
	for range m.times() {
		if err := c.Send(interopPeerType(m.typ), m.data); err != nil {
			t.Fatal(err)
		}
	}
	for i := range m.times() {
		ev := interopNext(ctx, t, "client", c.Next, "message")
		wstest.CompareMessage(t, fmt.Sprintf("echo #%d", i), m.typ, m.data, interopType(ev.Type), ev.Data)
	}
}

// wschan client → peer server.

func TestInteropClientEcho(t *testing.T) {
	t.Parallel()
	for _, kind := range interopKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			srv := peers.StartServer(t, kind, peers.Options{})
			for _, m := range interopPlainMessages() {
				t.Run(m.name, func(t *testing.T) {
					t.Parallel()
					ctx := wstest.Context(t, interopTimeout)
					ch := interopDial(ctx, t, srv.URL, nil)
					interopEcho(ctx, t, ch, m)
				})
			}
		})
	}
}

func TestInteropClientSubprotocol(t *testing.T) {
	t.Parallel()
	offer := []string{"superchat", "chat"}
	tests := []struct {
		name   string
		server []string // what the peer server supports
		want   string
	}{
		{"server supports chat", []string{"chat"}, "chat"},
		{"server supports both", []string{"chat", "superchat"}, "superchat"},
		{"server supports none", nil, ""},
	}
	for _, kind := range interopKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := wstest.Context(t, interopTimeout)
				srv := peers.StartServer(t, kind, peers.Options{Protocols: tt.server})
				ch := interopDial(ctx, t, srv.URL, &wschan.DialOptions{Subprotocols: offer})
				if got := ch.Protocol(); got != tt.want {
					t.Errorf("Protocol() = %q, want %q", got, tt.want)
				}
				if ev := interopNext(ctx, t, "server", srv.Next, "open"); ev.Protocol != tt.want {
					t.Errorf("server open: protocol %q, want %q", ev.Protocol, tt.want)
				}
				interopEcho(ctx, t, ch, interopMsg{typ: wschan.Text, data: []byte("after the handshake")})
			})
		}
	}
}

func TestInteropClientCompression(t *testing.T) {
	t.Parallel()
	opts := &wschan.DialOptions{EnableCompression: true}
	for _, kind := range interopKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			ctx := wstest.Context(t, interopTimeout)
			srv := peers.StartServer(t, kind, peers.Options{Compression: true})
			// The first connection's open event shows what was negotiated;
			// the subtests' connections are alike.
			interopDial(ctx, t, srv.URL, opts)
			ev := interopNext(ctx, t, "server", srv.Next, "open")
			if !strings.Contains(ev.Extensions, "permessage-deflate") {
				t.Fatalf("server open: extensions %q, want permessage-deflate", ev.Extensions)
			}
			t.Logf("negotiated: %s", ev.Extensions)
			if kind == peers.Python && !strings.Contains(ev.Extensions, "client_max_window_bits=12") {
				// Without it the far-repeat cases do not test the window.
				t.Errorf("server open: extensions %q, want client_max_window_bits=12", ev.Extensions)
			}
			for _, m := range interopCompressedMessages() {
				t.Run(m.name, func(t *testing.T) {
					t.Parallel()
					ctx := wstest.Context(t, interopTimeout)
					ch := interopDial(ctx, t, srv.URL, opts)
					interopEcho(ctx, t, ch, m)
				})
			}
		})
	}
}

func TestInteropClientClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// The channel closes with code and reason, unless trigger is set:
		// then it sends trigger, which makes the peer server close.
		code    wschan.StatusCode
		reason  string
		trigger string
		// How the channel ends.
		wantCode   wschan.StatusCode
		wantReason string
		wantRemote bool
		// What the server's close event may report: the code it received
		// (the channel's own, or its answer to the server's close frame).
		serverCodes []int
	}{
		{name: "client closes 4001", code: 4001, reason: "bye",
			wantCode: 4001, wantReason: "bye", serverCodes: []int{4001}},
		{name: "server closes 4002", trigger: "close:4002:server bye",
			wantCode: 4002, wantReason: "server bye", wantRemote: true, serverCodes: []int{4002}},
		// An answer without status or with 1000 are both fine; 1006 (no
		// close frame) is not.
		{name: "server closes without status", trigger: "close:",
			wantCode: wschan.StatusNoStatusReceived, wantRemote: true, serverCodes: []int{1005, 1000}},
	}
	for _, kind := range interopKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := wstest.Context(t, interopTimeout)
				srv := peers.StartServer(t, kind, peers.Options{})
				ch := interopDial(ctx, t, srv.URL, nil)
				interopNext(ctx, t, "server", srv.Next, "open")
				if tt.trigger == "" {
					if err := ch.Close(tt.code, tt.reason); err != nil {
						t.Fatalf("Close(%v, %q): %v", tt.code, tt.reason, err)
					}
				} else {
					if err := ch.SendText(ctx, tt.trigger); err != nil {
						t.Fatalf("SendText(%q): %v", tt.trigger, err)
					}
					interopWaitDone(ctx, t, ch)
				}
				ev := interopNext(ctx, t, "server", srv.Next, "close")
				if !slices.Contains(tt.serverCodes, ev.Code) {
					t.Errorf("server close: code %d, want one of %v", ev.Code, tt.serverCodes)
				}
				if tt.trigger == "" && ev.Reason != tt.reason {
					t.Errorf("server close: reason %q, want %q", ev.Reason, tt.reason)
				}
				interopCheckEnd(ctx, t, ch, tt.wantCode, tt.wantReason, tt.wantRemote)
			})
		}
	}
}

// peer client → wschan server.

func TestInteropServerEcho(t *testing.T) {
	t.Parallel()
	for _, kind := range interopKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			peers.Require(t, kind)
			url := wstest.EchoServer(t, nil)
			for _, m := range interopPlainMessages() {
				t.Run(m.name, func(t *testing.T) {
					t.Parallel()
					ctx := wstest.Context(t, interopTimeout)
					c, _ := interopClient(ctx, t, kind, url, peers.Options{})
					interopPeerEcho(ctx, t, c, m)
				})
			}
		})
	}
}

func TestInteropServerSubprotocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		offer []string // what the peer client offers
		want  string
	}{
		{"client offers chat", []string{"chat"}, "chat"},
		{"client prefers superchat", []string{"superchat", "chat"}, "chat"},
	}
	for _, kind := range interopKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				peers.Require(t, kind)
				ctx := wstest.Context(t, interopTimeout)
				url, accepted := interopServer(t, &wschan.AcceptOptions{Subprotocols: []string{"chat"}})
				c, open := interopClient(ctx, t, kind, url, peers.Options{Protocols: tt.offer})
				if open.Protocol != tt.want {
					t.Errorf("client open: protocol %q, want %q", open.Protocol, tt.want)
				}
				if got := interopAccepted(ctx, t, accepted).Protocol(); got != tt.want {
					t.Errorf("server Protocol() = %q, want %q", got, tt.want)
				}
				interopPeerEcho(ctx, t, c, interopMsg{typ: wschan.Text, data: []byte("after the handshake")})
			})
		}
	}
}

func TestInteropServerCompression(t *testing.T) {
	t.Parallel()
	for _, kind := range interopKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			peers.Require(t, kind)
			url := wstest.EchoServer(t, &wschan.AcceptOptions{EnableCompression: true})
			for _, m := range interopCompressedMessages() {
				t.Run(m.name, func(t *testing.T) {
					t.Parallel()
					ctx := wstest.Context(t, interopTimeout)
					c, open := interopClient(ctx, t, kind, url, peers.Options{Compression: true})
					if !strings.Contains(open.Extensions, "permessage-deflate") {
						t.Fatalf("client open: extensions %q, want permessage-deflate", open.Extensions)
					}
					interopPeerEcho(ctx, t, c, m)
				})
			}
		})
	}
}

func TestInteropServerClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// The wschan server closes with serverCode and serverReason when
		// serverCode is set; otherwise the peer client closes with
		// clientCode (0: without status) and clientReason.
		clientCode   int
		clientReason string
		serverCode   wschan.StatusCode
		serverReason string
		// How the server's channel ends.
		wantCode   wschan.StatusCode
		wantReason string
		wantRemote bool
		// What the client's close event may report: the code it received.
		peerCodes  []int
		peerReason string
	}{
		{name: "client closes 4003", clientCode: 4003, clientReason: "client bye",
			wantCode: 4003, wantReason: "client bye", wantRemote: true, peerCodes: []int{4003}},
		{name: "client closes without status",
			wantCode: wschan.StatusNoStatusReceived, wantRemote: true, peerCodes: []int{1005, 1000}},
		{name: "server closes 4004", serverCode: 4004, serverReason: "srv",
			wantCode: 4004, wantReason: "srv", peerCodes: []int{4004}, peerReason: "srv"},
	}
	for _, kind := range interopKinds {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				peers.Require(t, kind)
				ctx := wstest.Context(t, interopTimeout)
				url, accepted := interopServer(t, nil)
				c, _ := interopClient(ctx, t, kind, url, peers.Options{})
				sch := interopAccepted(ctx, t, accepted)
				if tt.serverCode != 0 {
					if err := sch.Close(tt.serverCode, tt.serverReason); err != nil {
						t.Fatalf("Close(%v, %q): %v", tt.serverCode, tt.serverReason, err)
					}
				} else {
					if err := c.Close(tt.clientCode, tt.clientReason); err != nil {
						t.Fatal(err)
					}
					interopWaitDone(ctx, t, sch)
				}
				ev := interopNext(ctx, t, "client", c.Next, "close")
				if !slices.Contains(tt.peerCodes, ev.Code) {
					t.Errorf("client close: code %d, want one of %v", ev.Code, tt.peerCodes)
				}
				if tt.serverCode != 0 && ev.Reason != tt.peerReason {
					t.Errorf("client close: reason %q, want %q", ev.Reason, tt.peerReason)
				}
				interopCheckEnd(ctx, t, sch, tt.wantCode, tt.wantReason, tt.wantRemote)
			})
		}
	}
}
