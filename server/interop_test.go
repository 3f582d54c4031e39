package server_test

// End-to-end tests of the echo server over loopback with real clients: the
// wschan client, Node's ws and Python's websockets (child processes, see
// internal/peers; a missing peer skips its subtests unless
// WSCHAN_REQUIRE_PEERS=1), and raw frames from internal/wstest for what the
// peers cannot send (fragments with a ping between them).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/peers"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// interopTimeout bounds one interop subtest, so that a lost echo or a hung
// peer fails that subtest instead of the whole run.
const interopTimeout = 30 * time.Second

// interopMsg is one message to echo.
type interopMsg struct {
	name string
	typ  wschan.MessageType
	data []byte
}

// interopPlain is the message set echoed on every connection: the sizes
// and types the issue names, up to the default limit of 1 MiB exactly.
func interopPlain() []interopMsg {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return []interopMsg{
		{"text", wschan.Text, []byte("hello, 世界 🙂")},
		{"binary", wschan.Binary, all},
		{"empty text", wschan.Text, []byte{}},
		{"empty binary", wschan.Binary, []byte{}},
		{"1 MiB binary", wschan.Binary, wstest.RandomBytes(1<<20, 1)},
		{"1 MiB text", wschan.Text, wstest.RandomText(1<<20, 2)},
	}
}

// interopCompressible is the message set echoed with permessage-deflate:
// the small ones, 1 MiB that compresses well, and last 1 MiB of random
// bytes, whose deflate stream is a little larger than the message itself
// (the size limit is on the message, not on its compressed form).
func interopCompressible() []interopMsg {
	plain := interopPlain()
	return append(plain[:4:4],
		interopMsg{"1 MiB repetitive text", wschan.Text, bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog; "), 1<<20/45+1)[:1<<20]},
		plain[5], // 1 MiB random text
		plain[4], // 1 MiB random binary
		interopMsg{"small text after 1 MiB", wschan.Text, []byte("still in sync")},
	)
}

// interopClient is one client implementation connected to the server.
type interopClient interface {
	// opened waits for the handshake and returns the subprotocol selected
	// and the Sec-WebSocket-Extensions response header ("" when absent).
	opened(ctx context.Context, t testing.TB) (protocol, extensions string)
	send(ctx context.Context, t testing.TB, typ wschan.MessageType, data []byte)
	// read returns the next message; what names it for errors.
	read(ctx context.Context, t testing.TB, what string) (wschan.MessageType, []byte)
}

// interopClientKind starts a client of one implementation dialing url,
// offering subprotocols and, when compress is set, permessage-deflate.
type interopClientKind struct {
	name string
	dial func(ctx context.Context, t testing.TB, url string, offer []string, compress bool) interopClient
}

var interopClientKinds = []interopClientKind{
	{"wschan", interopDialWschan},
	{"node", interopDialPeer(peers.Node)},
	{"python", interopDialPeer(peers.Python)},
}

// wschan client.

type interopWschan struct {
	ch   *wschan.Channel
	head *interopHeadConn
}

func interopDialWschan(ctx context.Context, t testing.TB, url string, offer []string, compress bool) interopClient {
	t.Helper()
	var (
		mu   sync.Mutex
		head *interopHeadConn
	)
	opts := &wschan.DialOptions{
		Subprotocols:      offer,
		EnableCompression: compress,
		// The channel does not report the extensions negotiated: keep the
		// handshake response as read from the socket.
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			head = &interopHeadConn{Conn: c}
			return head, nil
		},
	}
	ch, err := wschan.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = ch.Close(wschan.StatusNormalClosure, "") })
	mu.Lock()
	defer mu.Unlock()
	return &interopWschan{ch: ch, head: head}
}

func (c *interopWschan) opened(_ context.Context, t testing.TB) (string, string) {
	t.Helper()
	h, err := c.head.header()
	if err != nil {
		t.Fatalf("handshake response: %v", err)
	}
	return c.ch.Protocol(), strings.Join(h.Values("Sec-WebSocket-Extensions"), ", ")
}

func (c *interopWschan) send(ctx context.Context, t testing.TB, typ wschan.MessageType, data []byte) {
	t.Helper()
	if err := c.ch.Send(ctx, typ, data); err != nil {
		t.Fatalf("Send %v of %d bytes: %v (channel ended with %v %q)", typ, len(data), err, c.ch.CloseCode(), c.ch.CloseReason())
	}
}

func (c *interopWschan) read(ctx context.Context, t testing.TB, what string) (wschan.MessageType, []byte) {
	t.Helper()
	m, err := c.ch.Read(ctx)
	if err != nil {
		t.Fatalf("read %s: %v (channel ended with %v %q)", what, err, c.ch.CloseCode(), c.ch.CloseReason())
	}
	return m.Type, m.Data
}

// interopHeadConn keeps the bytes read from a connection up to the end of
// the HTTP response head.
type interopHeadConn struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte
	done bool
}

func (c *interopHeadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done && n > 0 {
		c.buf = append(c.buf, p[:n]...)
		if i := bytes.Index(c.buf, []byte("\r\n\r\n")); i >= 0 {
			c.buf, c.done = c.buf[:i+4], true
		}
	}
	return n, err
}

// header parses the response head read so far.
func (c *interopHeadConn) header() (http.Header, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		return nil, fmt.Errorf("incomplete response head %q", c.buf)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(c.buf)), nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.Header, nil
}

// Node and Python peers.

type interopPeer struct {
	c *peers.Client
}

func interopDialPeer(k peers.Kind) func(context.Context, testing.TB, string, []string, bool) interopClient {
	return func(_ context.Context, t testing.TB, url string, offer []string, compress bool) interopClient {
		t.Helper()
		return &interopPeer{c: peers.StartClient(t, k, url, peers.Options{Protocols: offer, Compression: compress})}
	}
}

func (p *interopPeer) next(ctx context.Context, t testing.TB, want, what string) peers.Event {
	t.Helper()
	ev, err := p.c.Next(ctx)
	if err != nil {
		t.Fatalf("peer client, waiting for %s: %v", what, err)
	}
	if ev.Event != want {
		t.Fatalf("peer client, waiting for %s: got event %v, want %q", what, ev, want)
	}
	return ev
}

func (p *interopPeer) opened(ctx context.Context, t testing.TB) (string, string) {
	t.Helper()
	ev := p.next(ctx, t, "open", "the handshake")
	return ev.Protocol, ev.Extensions
}

func (p *interopPeer) send(_ context.Context, t testing.TB, typ wschan.MessageType, data []byte) {
	t.Helper()
	if err := p.c.Send(interopPeerType(typ), data); err != nil {
		t.Fatal(err)
	}
}

func (p *interopPeer) read(ctx context.Context, t testing.TB, what string) (wschan.MessageType, []byte) {
	t.Helper()
	ev := p.next(ctx, t, "message", what)
	switch ev.Type {
	case "text":
		return wschan.Text, ev.Data
	case "binary":
		return wschan.Binary, ev.Data
	}
	t.Fatalf("peer client: message event of type %q", ev.Type)
	return 0, nil
}

func interopPeerType(typ wschan.MessageType) string {
	if typ == wschan.Text {
		return "text"
	}
	return "binary"
}

func TestInteropEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      server.Config
		offer    []string // subprotocols the client offers
		compress bool     // the client offers permessage-deflate
		msgs     []interopMsg

		wantProtocol string
		wantDeflate  bool   // permessage-deflate negotiated
		wantGreeting string // first message, before any echo
	}{
		{
			// A client that uses nothing special gets pure echo: no
			// greeting, no subprotocol, no extension.
			name: "pure echo",
			msgs: interopPlain(),
		},
		{
			name:         "subprotocol: first offered",
			offer:        []string{"x-custom", "chat"},
			msgs:         interopPlain()[:2],
			wantProtocol: "x-custom",
		},
		{
			name:        "compression",
			cfg:         server.Config{Compression: true},
			compress:    true,
			msgs:        interopCompressible(),
			wantDeflate: true,
		},
		{
			name: "compression on, not offered",
			cfg:  server.Config{Compression: true},
			msgs: interopPlain()[:4],
		},
		{
			name:     "compression offered, off",
			compress: true,
			msgs:     interopPlain()[:4],
		},
		{
			name:         "greeting",
			cfg:          server.Config{Greeting: "welcome"},
			msgs:         interopPlain()[:4],
			wantGreeting: "welcome",
		},
		{
			name:         "everything at once",
			cfg:          server.Config{Compression: true, Greeting: "welcome"},
			offer:        []string{"x-custom", "chat"},
			compress:     true,
			msgs:         interopCompressible(),
			wantProtocol: "x-custom",
			wantDeflate:  true,
			wantGreeting: "welcome",
		},
	}
	for _, ck := range interopClientKinds {
		for _, tt := range tests {
			t.Run(ck.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx := wstest.Context(t, interopTimeout)
				srv := start(t, tt.cfg)
				c := ck.dial(ctx, t, srv.WS+"/ws", tt.offer, tt.compress)

				protocol, extensions := c.opened(ctx, t)
				if protocol != tt.wantProtocol {
					t.Errorf("subprotocol %q, want %q", protocol, tt.wantProtocol)
				}
				if tt.wantDeflate {
					if !strings.HasPrefix(strings.TrimSpace(extensions), "permessage-deflate") {
						t.Errorf("Sec-WebSocket-Extensions %q, want permessage-deflate", extensions)
					}
				} else if extensions != "" {
					t.Errorf("Sec-WebSocket-Extensions %q, want none", extensions)
				}

				// The first message goes out at once, without waiting for
				// a greeting: the greeting must still come first.
				first := tt.msgs[0]
				c.send(ctx, t, first.typ, first.data)
				if tt.wantGreeting != "" {
					typ, data := c.read(ctx, t, "the greeting")
					wstest.CompareMessage(t, "greeting", wschan.Text, []byte(tt.wantGreeting), typ, data)
				}
				typ, data := c.read(ctx, t, "the echo of "+first.name)
				wstest.CompareMessage(t, "echo of "+first.name, first.typ, first.data, typ, data)
				for _, m := range tt.msgs[1:] {
					c.send(ctx, t, m.typ, m.data)
					typ, data := c.read(ctx, t, "the echo of "+m.name)
					wstest.CompareMessage(t, "echo of "+m.name, m.typ, m.data, typ, data)
				}

				// Small messages sent back to back come back in order.
				const burst = 20
				types := [2]wschan.MessageType{wschan.Text, wschan.Binary}
				for i := range burst {
					c.send(ctx, t, types[i%2], fmt.Appendf(nil, "burst %d", i))
				}
				for i := range burst {
					typ, data := c.read(ctx, t, fmt.Sprintf("burst echo %d", i))
					wstest.CompareMessage(t, fmt.Sprintf("burst echo %d", i), types[i%2], fmt.Appendf(nil, "burst %d", i), typ, data)
				}
			})
		}
	}
}

// Raw frames (wstest.Raw): what the peers do not send.

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// interopRawMessage reads frames until one whole data message has arrived
// and every pong in wantPongs, checking the framing a server must use. It
// returns the message's opcode and payload, and the pongs' payloads.
func interopRawMessage(t testing.TB, r *wstest.Raw, wantPongs int) (op byte, payload []byte, pongs [][]byte) {
	t.Helper()
	inMessage, done := false, false
	for !done || len(pongs) < wantPongs {
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("read frame (message done %v, %d of %d pongs): %v", done, len(pongs), wantPongs, err)
		}
		if f.Masked {
			t.Errorf("server frame (opcode %#x) is masked (RFC 6455, section 5.1: a server must not mask)", f.Opcode)
		}
		if f.RSV != 0 {
			t.Errorf("server frame (opcode %#x) has RSV bits %#b set without a negotiated extension", f.Opcode, f.RSV)
		}
		switch f.Opcode {
		case opPing: // a keepalive: not ours to count
		case opPong:
			pongs = append(pongs, f.Payload)
		case opClose:
			code, reason := -1, ""
			if len(f.Payload) >= 2 {
				code, reason = int(f.Payload[0])<<8|int(f.Payload[1]), string(f.Payload[2:])
			}
			t.Fatalf("server closed with %d %q", code, reason)
		case opText, opBinary:
			if inMessage || done {
				t.Fatalf("a second data frame (opcode %#x) began before the first message ended, or after it", f.Opcode)
			}
			op, payload, inMessage = f.Opcode, f.Payload, true
			if f.Fin {
				inMessage, done = false, true
			}
		case opCont:
			if !inMessage {
				t.Fatalf("continuation frame outside a message")
			}
			payload = append(payload, f.Payload...)
			if f.Fin {
				inMessage, done = false, true
			}
		default:
			t.Fatalf("unexpected opcode %#x", f.Opcode)
		}
	}
	return op, payload, pongs
}

// TestInteropFragmented sends fragmented messages as raw frames, with
// control frames between the fragments (RFC 6455, section 5.4), and checks
// that each comes back as one message holding the joined payload, the
// pings are answered with their payload (section 5.5.3), and the next
// message is not mixed up with it.
func TestInteropFragmented(t *testing.T) {
	t.Parallel()
	world := []byte("世界") // e4 b8 96 e7 95 8c: split inside a character below
	many := make([]wstest.Frame, 0, 100)
	var manyWant []byte
	for i := range 100 {
		b := []byte{byte('a' + i%26)}
		op := byte(opCont)
		if i == 0 {
			op = opBinary
		}
		many = append(many, wstest.Frame{Fin: i == 99, Opcode: op, Payload: b})
		manyWant = append(manyWant, b...)
	}
	tests := []struct {
		name      string
		cfg       server.Config
		frames    []wstest.Frame // Masked is set for all
		wantOp    byte
		want      []byte
		wantPongs [][]byte
	}{
		{
			name: "text with a ping between",
			frames: []wstest.Frame{
				{Opcode: opText, Payload: slices.Concat([]byte("Hello, "), world[:2])},
				{Fin: true, Opcode: opPing, Payload: []byte("are you there")},
				{Opcode: opCont, Payload: world[2:4]},
				{Fin: true, Opcode: opCont, Payload: slices.Concat(world[4:], []byte("!"))},
			},
			wantOp:    opText,
			want:      []byte("Hello, 世界!"),
			wantPongs: [][]byte{[]byte("are you there")},
		},
		{
			name: "binary with pings between",
			frames: []wstest.Frame{
				{Opcode: opBinary, Payload: []byte{0, 1, 2}},
				{Fin: true, Opcode: opPing, Payload: []byte("1")},
				{Opcode: opCont, Payload: []byte{0xff, 0xfe}},
				{Fin: true, Opcode: opPing},
				{Fin: true, Opcode: opCont, Payload: []byte{3}},
			},
			wantOp:    opBinary,
			want:      []byte{0, 1, 2, 0xff, 0xfe, 3},
			wantPongs: [][]byte{[]byte("1"), {}},
		},
		{
			name: "empty fragments",
			frames: []wstest.Frame{
				{Opcode: opText},
				{Opcode: opCont},
				{Fin: true, Opcode: opCont, Payload: []byte("tail")},
			},
			wantOp: opText,
			want:   []byte("tail"),
		},
		{
			name: "empty message in two fragments",
			frames: []wstest.Frame{
				{Opcode: opBinary},
				{Fin: true, Opcode: opCont},
			},
			wantOp: opBinary,
			want:   []byte{},
		},
		{
			name:   "100 fragments of one byte",
			frames: many,
			wantOp: opBinary,
			want:   manyWant,
		},
		{
			name: "1 MiB in fragments of 64 KiB, greeting first",
			cfg:  server.Config{Greeting: "welcome"},
			frames: func() []wstest.Frame {
				data := wstest.RandomText(1<<20, 7)
				var fs []wstest.Frame
				for i := 0; i < len(data); i += 64 << 10 {
					op := byte(opCont)
					if i == 0 {
						op = opText
					}
					fs = append(fs, wstest.Frame{Fin: i+64<<10 >= len(data), Opcode: op, Payload: data[i : i+64<<10]})
					if i == 256<<10 {
						fs = append(fs, wstest.Frame{Fin: true, Opcode: opPing, Payload: []byte("mid")})
					}
				}
				return fs
			}(),
			wantOp:    opText,
			want:      wstest.RandomText(1<<20, 7),
			wantPongs: [][]byte{[]byte("mid")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := wstest.Context(t, interopTimeout)
			srv := start(t, tt.cfg)
			r := wstest.DialRaw(t, srv.WS+"/ws", nil)
			if dl, ok := ctx.Deadline(); ok {
				_ = r.Conn.SetDeadline(dl)
			}
			if tt.cfg.Greeting != "" {
				op, data, _ := interopRawMessage(t, r, 0)
				if op != opText || string(data) != tt.cfg.Greeting {
					t.Fatalf("greeting: opcode %#x %q, want text %q", op, data, tt.cfg.Greeting)
				}
			}
			for _, f := range tt.frames {
				f.Masked = true
				if err := r.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
			}
			op, data, pongs := interopRawMessage(t, r, len(tt.wantPongs))
			if op != tt.wantOp || !bytes.Equal(data, tt.want) {
				t.Errorf("echo: opcode %#x, %d bytes %.40q; want opcode %#x, %d bytes %.40q", op, len(data), data, tt.wantOp, len(tt.want), tt.want)
			}
			for i, want := range tt.wantPongs {
				if !bytes.Equal(pongs[i], want) {
					t.Errorf("pong %d: payload %q, want %q (the ping's)", i, pongs[i], want)
				}
			}

			// The next message is a message of its own.
			if err := r.WriteFrame(wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: []byte("after")}); err != nil {
				t.Fatal(err)
			}
			if op, data, _ := interopRawMessage(t, r, 0); op != opText || string(data) != "after" {
				t.Errorf("next echo: opcode %#x %q, want text %q", op, data, "after")
			}

			// A clean close: the server answers with the same code.
			if err := r.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose, Masked: true, Payload: wstest.ClosePayload(1000, "done")}); err != nil {
				t.Fatal(err)
			}
			if code, reason := r.ReadClose(); code != 1000 {
				t.Errorf("close reply: %d %q, want 1000", code, reason)
			}
		})
	}
}

// TestInteropGreetingFirst checks the greeting comes before the echo of a
// message the client sends the moment it can: right after the 101 response,
// and right behind its handshake request (which RFC 6455, section 4.1, tells
// clients not to do, but which the library accepts and keeps). The server
// starts reading inside Accept, before it sends the greeting, so this races;
// many connections at once make a lost race likely to show.
func TestInteropGreetingFirst(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		early bool // the first frame goes in the same write as the request
	}{
		{"after the response", false},
		{"behind the request", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := wstest.Context(t, interopTimeout)
			srv := start(t, server.Config{Greeting: "welcome"})
			const workers, perWorker = 8, 25
			errs := make(chan error, workers*perWorker)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						n := w*perWorker + i
						got, err := interopFirstTwo(ctx, srv.WS, fmt.Sprintf("first %d", n), tt.early)
						if err != nil {
							errs <- fmt.Errorf("connection %d: %w", n, err)
						} else if got[0] != "welcome" || got[1] != fmt.Sprintf("first %d", n) {
							errs <- fmt.Errorf("connection %d: text messages %q, want [\"welcome\" %q]: the echo overtook the greeting", n, got, fmt.Sprintf("first %d", n))
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			var all []error
			for err := range errs {
				all = append(all, err)
			}
			if len(all) > 0 {
				t.Errorf("%d of %d connections:\n%v", len(all), workers*perWorker, errors.Join(all...))
			}
		})
	}
}

// interopFirstTwo opens a WebSocket to wsURL+"/ws" by hand, sends msg as
// soon as it can (with the request when early), and returns the first two
// text messages received. Both are short: one frame each.
func interopFirstTwo(ctx context.Context, wsURL, msg string, early bool) ([2]string, error) {
	var got [2]string
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(wsURL, "ws://"))
	if err != nil {
		return got, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := "GET /ws HTTP/1.1\r\nHost: " + c.RemoteAddr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: []byte(msg)}.Encode()
	first := []byte(req)
	if early {
		first = append(first, frame...)
	}
	if _, err := c.Write(first); err != nil {
		return got, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return got, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return got, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	if !early {
		if _, err := c.Write(frame); err != nil {
			return got, err
		}
	}
	for n := 0; n < 2; {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return got, err
		}
		if h[1]&0x7f > 125 || h[1]&0x80 != 0 {
			return got, fmt.Errorf("unexpected frame header % x", h)
		}
		p := make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(br, p); err != nil {
			return got, err
		}
		if h[0]&0x0f == opText {
			got[n] = string(p)
			n++
		}
	}
	return got, nil
}
