package wschan_test

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// What an event loop makes newly dangerous, on every engine: one
// connection's trouble must stay that connection's. On the poll engine
// many connections share a loop goroutine, so each case has more
// connections than loops.

// echoOnEngine serves an echo with an OnMessage callback on engine eng;
// hook, if set, runs before each echo.
func echoOnEngine(t *testing.T, eng wschan.Engine, hook func(ch *wschan.Channel, m wschan.Message)) string {
	t.Helper()
	opts := &wschan.AcceptOptions{OnMessage: func(ch *wschan.Channel, m wschan.Message) {
		if hook != nil {
			hook(ch, m)
		}
		_ = ch.Send(context.Background(), m.Type, m.Data)
	}}
	wschan.UseEngine(opts, eng)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		_, _ = wschan.Accept(w, r, opts)
	}))
	return u
}

// echoes checks that n fresh connections to u each echo a message.
func echoes(t *testing.T, ctx context.Context, u string, n int) {
	t.Helper()
	for i := range n {
		ch := wstest.Dial(t, u, nil)
		want := fmt.Sprintf("other %d", i)
		if err := ch.SendText(ctx, want); err != nil {
			t.Fatalf("other connection %d: send: %v", i, err)
		}
		m, err := ch.Read(ctx)
		if err != nil || string(m.Data) != want {
			t.Fatalf("other connection %d: read %q, %v; want %q", i, m.Data, err, want)
		}
		_ = ch.Close(wschan.StatusNormalClosure, "")
	}
}

func TestEventLoopBlockingCallback(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			u := echoOnEngine(t, eng, func(_ *wschan.Channel, m wschan.Message) {
				if string(m.Data) == "block" {
					<-release // a callback that waits, with no hint to the engine
				}
			})
			ctx := wstest.Context(t, 30*time.Second)
			stuck := wstest.Dial(t, u, nil)
			for _, s := range []string{"block", "after 1", "after 2"} {
				if err := stuck.SendText(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			// While that callback waits, connections that may share its
			// loop echo: they finish before the release, or never.
			echoes(t, ctx, u, 16)
			close(release)
			for _, want := range []string{"block", "after 1", "after 2"} {
				m, err := stuck.Read(ctx)
				if err != nil || string(m.Data) != want {
					t.Fatalf("blocked connection: read %q, %v; want %q", m.Data, err, want)
				}
			}
		})
	}
}

func TestEventLoopTrickledFrame(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			u := echoOnEngine(t, eng, nil)
			ctx := wstest.Context(t, 30*time.Second)
			raw := wstest.DialRaw(t, u, nil)
			frame := wstest.Frame{Fin: true, Opcode: 0x1, Masked: true, Payload: []byte("one byte at a time")}.Encode()
			done := make(chan error, 1)
			go func() {
				for i := range frame {
					if err := raw.Write(frame[i : i+1]); err != nil {
						done <- err
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				done <- nil
			}()
			echoes(t, ctx, u, 4) // the server serves others meanwhile
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			f, err := raw.ReadFrame()
			if err != nil || string(f.Payload) != "one byte at a time" {
				t.Fatalf("trickled frame echoed as %q, %v", f.Payload, err)
			}
		})
	}
}

func TestEventLoopHalfFrames(t *testing.T) {
	t.Parallel()
	n := 500
	if testing.Short() {
		n = 100
	}
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			u := echoOnEngine(t, eng, nil)
			ctx := wstest.Context(t, 60*time.Second)
			// Each peer sends a header announcing 1,000 bytes and 10 of
			// them, then stops.
			half := wstest.Frame{Fin: true, Opcode: 0x2, Masked: true, Payload: make([]byte, 1000)}.Encode()[:2+2+4+10]
			for i := range n {
				raw := wstest.DialRaw(t, u, nil)
				if err := raw.Write(half); err != nil {
					t.Fatalf("peer %d: %v", i, err)
				}
			}
			echoes(t, ctx, u, 4)
		})
	}
}

// TestPollEngineCompression checks that a compressed connection really
// runs on the poll engine, and that its compression context holds data
// messages only: pings answered between compressed messages (with
// context takeover) leave the messages intact. (The goroutine engine's
// gws puts pong payloads into its window too, which breaks exactly this
// sequence for a peer that pings with a payload; see
// TestGWSPutsControlPayloadsInItsWindow.)
func TestPollEngineCompression(t *testing.T) {
	t.Parallel()
	if !slices.Contains(wschan.Engines, wschan.EnginePoll) {
		t.Skip("no poll engine")
	}
	accepted := make(chan *wschan.Channel, 1)
	opts := &wschan.AcceptOptions{EnableCompression: true, OnMessage: func(ch *wschan.Channel, m wschan.Message) {
		_ = ch.Send(context.Background(), m.Type, m.Data)
	}}
	wschan.UseEngine(opts, wschan.EnginePoll)
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, err := wschan.Accept(w, r, opts); err == nil {
			accepted <- ch
		}
	}))
	raw := wstest.DialRaw(t, u, http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate"}})
	if got := wschan.EngineOf(<-accepted); got != wschan.EnginePoll {
		t.Fatalf("compressed connection runs on %q, want poll", got)
	}
	var window []byte
	// Uncompressed frames from the peer (allowed), compressed answers; a
	// ping with a payload between them.
	for i := range 5 {
		msg := strings.Repeat(fmt.Sprintf("message %d ", i), 20)
		if err := raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x1, Masked: true, Payload: []byte(msg)}); err != nil {
			t.Fatal(err)
		}
		f, err := raw.ReadFrame()
		if err != nil || f.RSV != 4 {
			t.Fatalf("answer %d: %+v, %v; want a compressed frame (RSV1)", i, f.RSV, err)
		}
		got, err := inflateTakeover(&window, f.Payload)
		if err != nil || got != msg {
			t.Fatalf("answer %d inflates to %q, %v; want %q", i, got, err, msg)
		}
		if err := raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x9, Masked: true, Payload: []byte("ping payload message 0 message 1")}); err != nil {
			t.Fatal(err)
		}
		if f, err := raw.ReadFrame(); err != nil || f.Opcode != 0xa {
			t.Fatalf("pong: %+v, %v", f, err)
		}
	}
}

// inflateTakeover inflates one permessage-deflate payload with the
// context the messages before it left in window, and updates window.
func inflateTakeover(window *[]byte, payload []byte) (string, error) {
	r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff})), *window)
	var out bytes.Buffer
	_, err := io.Copy(&out, r)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	*window = append(*window, out.Bytes()...)
	if len(*window) > 32<<10 {
		*window = (*window)[len(*window)-32<<10:]
	}
	return out.String(), nil
}

// TestEventLoopStuckSend: a server Send blocked on a peer that does not
// read returns when its context ends, and the connection is dropped (the
// frame it left half-written cannot be followed by another); the server
// goes on serving others.
func TestEventLoopStuckSend(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			opts := &wschan.AcceptOptions{}
			wschan.UseEngine(opts, eng)
			u, accepted := acceptedServer(t, opts)
			raw := wstest.DialRaw(t, u, nil) // never reads
			ch := serverChannel(t, accepted)
			if got := wschan.EngineOf(ch); got != eng {
				t.Fatalf("connection on %q, want %q", got, eng)
			}
			sendUntilStuck(t, ch)
			// The peer sees the socket end once it reads what was sent.
			_ = raw.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, raw.Conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the peer's socket did not end: %v", err)
			}
			echoes(t, wstest.Context(t, 30*time.Second), u, 2)
		})
	}
}

// TestEventLoopHeaderThenSilence: a peer that sends a frame's header and
// part of its payload, then nothing (not even pongs), is dropped by the
// keepalive on every engine: a partial frame does not keep a connection
// alive.
func TestEventLoopHeaderThenSilence(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			opts := &wschan.AcceptOptions{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond}
			wschan.UseEngine(opts, eng)
			u, accepted := acceptedServer(t, opts)
			raw := wstest.DialRaw(t, u, nil)
			half := wstest.Frame{Fin: true, Opcode: 0x2, Masked: true, Payload: make([]byte, 1000)}.Encode()[:2+2+4+10]
			if err := raw.Write(half); err != nil {
				t.Fatal(err)
			}
			ch := serverChannel(t, accepted)
			wstest.WaitDone(t, ch)
			if !errors.Is(ch.Err(), wschan.ErrTimeout) || ch.CloseCode() != wschan.StatusAbnormalClosure {
				t.Fatalf("Err() = %v code %v, want ErrTimeout 1006", ch.Err(), ch.CloseCode())
			}
		})
	}
}
