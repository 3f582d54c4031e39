package frame_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/wschan/wschan/internal/frame"
)

// messages is a sequence that exercises the window: short and long,
// repeated (context takeover pays), incompressible, empty, over 64 KiB.
func messages() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 70_000)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	json := []byte(strings.Repeat(`{"room":"lobby","from":"ana","text":"hello there"},`, 6000))
	text := bytes.Repeat([]byte("abc"), 2000)
	return [][]byte{
		[]byte("hello"),
		text,
		text,
		noise,
		{},
		json,
		[]byte("hello again"),
		[]byte(`{"room":"lobby","from":"ana","text":"hello there"}`),
	}
}

func TestDeflateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, bits := range []int{9, 12, 15} {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("bits=%d/takeover=%v", bits, takeover), func(t *testing.T) {
				t.Parallel()
				d := frame.NewDeflater(bits, takeover)
				f := frame.NewInflater(bits, takeover)
				for i, m := range messages() {
					z := d.Deflate(nil, m)
					got, err := f.Inflate([]byte("x"), z, len(m))
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if !bytes.Equal(got[1:], m) || got[0] != 'x' {
						t.Fatalf("message %d (%d bytes) came back as %d bytes", i, len(m), len(got)-1)
					}
				}
			})
		}
	}
}

func TestDeflateEmpty(t *testing.T) {
	t.Parallel()
	if z := frame.NewDeflater(12, true).Deflate(nil, nil); !bytes.Equal(z, []byte{0}) {
		t.Errorf("empty message compressed to %x, want 00 (RFC 7692 7.2.3.6)", z)
	}
}

func TestDeflateContextTakeover(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	m := make([]byte, 1000)
	for i := range m {
		m[i] = 'a' + byte(rng.IntN(26))
	}
	d := frame.NewDeflater(12, true)
	first := d.Deflate(nil, m)
	second := d.Deflate(nil, m)
	if len(second) >= len(first)/2 {
		t.Errorf("the same message again compressed to %d bytes, the first time to %d: the window is not used", len(second), len(first))
	}
	f := frame.NewInflater(12, true)
	for _, z := range [][]byte{first, second} {
		if got, err := f.Inflate(nil, z, 1<<20); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("with the context: %q, %v", got, err)
		}
	}
	// Without the first message, the second refers to nothing.
	if _, err := frame.NewInflater(12, true).Inflate(nil, second, 1<<20); code(err) != frame.CodeInvalidPayload {
		t.Errorf("the second message alone: %v, want a 1007", err)
	}
	// Without takeover the deflater does not refer back.
	nd := frame.NewDeflater(12, false)
	nd.Deflate(nil, m)
	if got, err := frame.NewInflater(12, false).Inflate(nil, nd.Deflate(nil, m), 1<<20); err != nil || !bytes.Equal(got, m) {
		t.Errorf("without takeover, the second message alone: %v", err)
	}
}

func code(err error) int {
	var fe *frame.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return 0
}

func TestInflateLimit(t *testing.T) {
	t.Parallel()
	const size = 8 << 20
	bomb := frame.NewDeflater(15, false).Deflate(nil, make([]byte, size))
	t.Logf("%d zero bytes compress to %d", size, len(bomb))
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"bomb", 1 << 20, frame.CodeMessageTooBig},
		{"one byte over", size - 1, frame.CodeMessageTooBig},
		{"exactly the limit", size, 0},
		{"no room at all", 0, frame.CodeMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := frame.NewInflater(15, true).Inflate(nil, bomb, tt.limit)
			if c := code(err); c != tt.want {
				t.Fatalf("got %v, want code %d", err, tt.want)
			}
			if tt.want == 0 && len(got) != size {
				t.Fatalf("inflated %d bytes, want %d", len(got), size)
			}
			if tt.want != 0 && (len(got) != 0 || cap(got) > 2*tt.limit+4096) {
				t.Errorf("on failure: %d bytes returned, %d allocated for a limit of %d", len(got), cap(got), tt.limit)
			}
		})
	}
}

func TestInflateCorrupt(t *testing.T) {
	t.Parallel()
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 100))
	whole := frame.NewDeflater(12, false).Deflate(nil, text)
	var final bytes.Buffer // a stream that ends in a final block
	w, _ := flate.NewWriter(&final, flate.BestSpeed)
	_, _ = w.Write([]byte("final"))
	_ = w.Close()
	tests := []struct {
		name string
		src  []byte
		want string // inflated text, or "fail N"
	}{
		{"reserved block type", []byte{0x07, 0x00}, "fail 1007"},
		{"truncated", whole[:len(whole)/2], "fail 1007"},
		{"stored block with a bad length check", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'a'}, "fail 1007"},
		// The tail completes a short stored block, as it does for gws.
		{"stored block cut short", []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'a'}, "a\x00\x00\xff\xff"},
		{"what follows a final block is ignored, as gws does", append(final.Bytes(), 0xde, 0xad), "final"},
		{"stored block", []byte{0x00, 0x02, 0x00, 0xfd, 0xff, 'o', 'k', 0x00}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := frame.NewInflater(15, true).Inflate(nil, tt.src, 1<<20)
			s := string(got)
			if err != nil {
				s = fmt.Sprintf("fail %d", code(err))
			}
			if s != tt.want {
				t.Errorf("got %q (%v), want %q", s, err, tt.want)
			}
		})
	}
}

// TestNegotiateMatchesGWS sends the same offers to gws's upgrader,
// configured as the library configures it, and compares the answers.
func TestNegotiateMatchesGWS(t *testing.T) {
	t.Parallel()
	up := gws.NewUpgrader(&gws.BuiltinEventHandler{}, &gws.ServerOption{
		PermessageDeflate: gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true},
	})
	for _, offer := range [][]string{
		nil,
		{""},
		{"permessage-deflate"},
		{"permessage-deflate; client_max_window_bits"},
		{"permessage-deflate; client_max_window_bits=10; server_max_window_bits=9"},
		{"permessage-deflate; server_max_window_bits=15"},
		{"permessage-deflate; server_no_context_takeover"},
		{"permessage-deflate; client_no_context_takeover"},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"},
		{"permessage-deflate;server_no_context_takeover=yes"},
		{"  permessage-deflate ;  client_no_context_takeover  "},
		{"permessage-deflate; Server_No_Context_Takeover"},
		{"permessage-deflate; client_no_context_takeover, permessage-deflate"},
		{"permessage-deflate, permessage-deflate; server_no_context_takeover"},
		{"x-webkit-deflate-frame"},
		{"x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover"},
		{"permessage-deflate-x"},
		{"PERMESSAGE-DEFLATE"},
		{"foo", "permessage-deflate"},
		{"permessage-deflate", "permessage-deflate; server_no_context_takeover"},
		{"permessage-deflate; client_max_window_bits=8; client_no_context_takeover", "foo"},
	} {
		t.Run(fmt.Sprintf("%q", offer), func(t *testing.T) {
			want := gwsAnswer(t, up, offer)
			_, got, ok := frame.Negotiate(offer)
			if !ok {
				got = "<none>"
			}
			if got != want {
				t.Errorf("Negotiate answers %q, gws %q", got, want)
			}
		})
	}
}

// gwsAnswer is the Sec-WebSocket-Extensions header of gws's upgrader's
// response to a request with the given offer, "<none>" for none.
func gwsAnswer(t *testing.T, up *gws.Upgrader, offer []string) string {
	t.Helper()
	r := &http.Request{Method: http.MethodGet, Header: http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
	}}
	if offer != nil {
		r.Header["Sec-Websocket-Extensions"] = offer
	}
	c := new(captureConn)
	if _, err := up.UpgradeFromConn(c, bufio.NewReader(c), r); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&c.out), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := resp.Header.Values("Sec-Websocket-Extensions")
	switch len(v) {
	case 0:
		return "<none>"
	case 1:
		return v[0]
	}
	t.Fatalf("gws answered %q", v)
	return ""
}

// captureConn keeps what is written to it; reads find nothing.
type captureConn struct {
	net.Conn
	out bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error)     { return c.out.Write(p) }
func (c *captureConn) Read([]byte) (int, error)        { return 0, io.EOF }
func (c *captureConn) Close() error                    { return nil }
func (c *captureConn) SetDeadline(time.Time) error     { return nil }
func (c *captureConn) RemoteAddr() net.Addr            { return &net.TCPAddr{} }
func (c *captureConn) LocalAddr() net.Addr             { return &net.TCPAddr{} }
func (c *captureConn) SetReadDeadline(time.Time) error { return nil }

// TestDeflateInteropGWS runs a server made of Negotiate, Parser, Inflater
// and Deflater against a gws client over an in-memory connection: the
// server inflates what gws compressed (and, with context takeover,
// compresses it again to the same bytes: the same encoder at the same
// settings), then echoes it compressed by its Deflater, which gws must
// inflate.
func TestDeflateInteropGWS(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ serverTakeover, clientTakeover bool }{
		{true, true}, {true, false}, {false, true}, {false, false},
	} {
		t.Run(fmt.Sprintf("server_takeover=%v/client_takeover=%v", tt.serverTakeover, tt.clientTakeover), func(t *testing.T) {
			t.Parallel()
			msgs := messages()
			cConn, sConn := net.Pipe()
			t.Cleanup(func() { _ = cConn.Close(); _ = sConn.Close() })
			serverGot := make(chan []byte, len(msgs))
			serverErr := make(chan error, 1)
			go func() { serverErr <- echoServer(sConn, serverGot, tt.clientTakeover) }()

			h := &collector{msgs: make(chan []byte, len(msgs))}
			client, resp, err := gws.NewClientFromConn(h, &gws.ClientOption{
				Addr: "ws://example/",
				PermessageDeflate: gws.PermessageDeflate{Enabled: true,
					ServerContextTakeover: tt.serverTakeover, ClientContextTakeover: tt.clientTakeover},
			}, cConn)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("negotiated %q", resp.Header.Get("Sec-WebSocket-Extensions"))
			go client.ReadLoop()
			for i, m := range msgs {
				if err := client.WriteMessage(gws.OpcodeBinary, m); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				timeout := time.After(10 * time.Second)
				for _, side := range []chan []byte{serverGot, h.msgs} {
					select {
					case got := <-side:
						if !bytes.Equal(got, m) {
							t.Fatalf("message %d (%d bytes) came as %d bytes", i, len(m), len(got))
						}
					case err := <-serverErr:
						t.Fatalf("server: %v", err)
					case <-timeout:
						t.Fatalf("message %d: no answer", i)
					}
				}
			}
		})
	}
}

// collector is a gws client's event handler that keeps its messages.
type collector struct {
	gws.BuiltinEventHandler
	msgs chan []byte
}

func (c *collector) OnMessage(_ *gws.Conn, m *gws.Message) {
	c.msgs <- slices.Clone(m.Bytes())
	_ = m.Close()
}

// echoServer answers the handshake on conn, then echoes every message,
// compressed, and sends what it received to got.
func echoServer(conn net.Conn, got chan<- []byte, clientCompressesAll bool) error {
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	params, ext, ok := frame.Negotiate(req.Header.Values("Sec-WebSocket-Extensions"))
	if !ok {
		return errors.New("no permessage-deflate offer")
	}
	if err := answer(conn, req, ext); err != nil {
		return err
	}
	p := frame.NewParser(frame.Config{Masked: true, MaxMessage: 1 << 20, Deflate: true})
	inf := frame.NewInflater(params.ClientMaxWindowBits, !params.ClientNoContextTakeover)
	def := frame.NewDeflater(params.ServerMaxWindowBits, !params.ServerNoContextTakeover)
	// The client's encoder, replayed: gws compresses every message when it
	// keeps its context, so the window is the same on both sides.
	mirror := frame.NewDeflater(params.ClientMaxWindowBits, true)
	emit := func(ev frame.Event) error {
		if ev.Kind != frame.Binary {
			return nil
		}
		data := ev.Data
		if ev.Compressed {
			var err error
			if data, err = inf.Inflate(nil, ev.Data, 1<<20); err != nil {
				return err
			}
			if z := mirror.Deflate(nil, data); clientCompressesAll && !bytes.Equal(z, ev.Data) {
				return fmt.Errorf("gws compressed %d bytes to %x..., the Deflater to %x...", len(data), ev.Data[:min(8, len(ev.Data))], z[:min(8, len(z))])
			}
		}
		got <- slices.Clone(data)
		_, err := conn.Write(serverFrame(def.Deflate(nil, data)))
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		if err != nil {
			return nil // the client went away
		}
		if err := p.Feed(buf[:n], emit); err != nil {
			return err
		}
	}
}

// serverFrame is a final binary frame with RSV1 set, unmasked.
func serverFrame(payload []byte) []byte {
	f := enc(true, 4, frame.OpBinary, false, payload)
	return f
}

// answer writes a 101 response to req, accepting extension ext.
func answer(conn net.Conn, req *http.Request, ext string) error {
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]), ext)
	return err
}

// TestGWSPutsControlPayloadsInItsWindow documents a fault of gws v1.8.9
// that the event engine must not copy: with context takeover, gws adds
// the payload of every frame it sends, pings, pongs and close frames
// included, to its compression window, where RFC 7692 keeps only
// messages. Its next compressed message can then refer to bytes its peer
// never had: here, a ping's payload sent again as a message, which an
// RFC-conforming inflater (this package's, and any browser's) cannot
// inflate. When this test fails, gws has been fixed.
func TestGWSPutsControlPayloadsInItsWindow(t *testing.T) {
	t.Parallel()
	cConn, sConn := net.Pipe()
	t.Cleanup(func() { _ = cConn.Close(); _ = sConn.Close() })
	got := make(chan error, 1)
	go func() {
		br := bufio.NewReader(sConn)
		req, err := http.ReadRequest(br)
		if err != nil {
			got <- err
			return
		}
		params, ext, _ := frame.Negotiate(req.Header.Values("Sec-WebSocket-Extensions"))
		if err := answer(sConn, req, ext); err != nil {
			got <- err
			return
		}
		p := frame.NewParser(frame.Config{Masked: true, MaxMessage: 1 << 20, Deflate: true})
		inf := frame.NewInflater(params.ClientMaxWindowBits, !params.ClientNoContextTakeover)
		buf := make([]byte, 4096)
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			_ = p.Feed(buf[:n], func(ev frame.Event) error {
				if ev.Compressed {
					_, err := inf.Inflate(nil, ev.Data, 1<<20)
					got <- err
				}
				return nil
			})
		}
	}()
	client, _, err := gws.NewClientFromConn(&gws.BuiltinEventHandler{}, &gws.ClientOption{Addr: "ws://example/",
		PermessageDeflate: gws.PermessageDeflate{Enabled: true, ServerContextTakeover: true, ClientContextTakeover: true}}, cConn)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("qwertyuiopasdfghjklzxcvbnm,./1234567890-=QWERTYUIOPASDFGHJKLZXCVBNM<>?!@#$%^&*()_+mnbvcxzlkjhgfdsapoiuytrewq0987654321")
	_ = client.WriteMessage(gws.OpcodeBinary, []byte("first message"))
	_ = client.WritePing(payload)
	_ = client.WriteMessage(gws.OpcodeBinary, append(payload, payload...))
	for i := range 2 {
		select {
		case err := <-got:
			if i == 0 && err != nil {
				t.Fatalf("the first message: %v", err)
			}
			if i == 1 && code(err) != frame.CodeInvalidPayload {
				t.Fatalf("the message after the ping inflated (%v): has gws stopped adding control payloads to its window?", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
	}
}
