package wschan_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// TestTrySend: a server's channel on either engine writes at once, in
// order with Send (on Linux; elsewhere the goroutine engine sends nothing
// and says so); a client's channel sends nothing and says so. Either way
// it checks the message first and reports a channel that has ended.
func TestTrySend(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			opts := &wschan.AcceptOptions{}
			wschan.UseEngine(opts, eng)
			u, accepted := acceptedServer(t, opts)
			client := wstest.Dial(t, u, nil)
			ch := serverChannel(t, accepted)
			ctx := wstest.Context(t, 10*time.Second)

			var want []string
			for i := range 20 {
				msg := fmt.Sprintf("message %d", i)
				switch i {
				case 5: // a 16-bit length
					msg = strings.Repeat("m", 300)
				case 19: // a 64-bit length, last: the socket may keep part of it
					msg = strings.Repeat("long ", 20_000)
				}
				if i%3 == 0 {
					if err := ch.SendText(ctx, msg); err != nil {
						t.Fatal(err)
					}
					want = append(want, msg)
					continue
				}
				sent, err := ch.TrySend(wschan.Text, []byte(msg))
				if err != nil {
					t.Fatalf("TrySend: %v", err)
				}
				if sent != (runtime.GOOS == "linux") {
					t.Fatalf("TrySend on %s = %v, want %v", eng, sent, runtime.GOOS == "linux")
				}
				if sent {
					want = append(want, msg)
				}
			}
			for _, w := range want {
				if m := wstest.Read(t, client); string(m.Data) != w || m.Type != wschan.Text {
					t.Fatalf("received %v of %d bytes, want text of %d", m.Type, len(m.Data), len(w))
				}
			}
			// A client masks its frames: its TrySend always refuses. The
			// server echoes what it receives: only what Send sent.
			if sent, err := client.TrySend(wschan.Text, []byte("from the client")); sent || err != nil {
				t.Fatalf("client TrySend = %v, %v; want false, nil", sent, err)
			}
			if err := client.SendText(ctx, "sent"); err != nil {
				t.Fatal(err)
			}
			if m := wstest.Read(t, client); string(m.Data) != "sent" {
				t.Fatalf("the echo is %q, want only what Send sent", m.Data)
			}

			if _, err := ch.TrySend(wschan.Text, []byte{0xff}); !errors.Is(err, wschan.ErrInvalidUTF8) {
				t.Fatalf("TrySend(invalid UTF-8) = %v, want ErrInvalidUTF8", err)
			}
			if _, err := ch.TrySend(wschan.MessageType(7), nil); err == nil {
				t.Fatal("TrySend of an unknown message type succeeded")
			}
			if err := ch.Close(wschan.StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
			if sent, err := ch.TrySend(wschan.Binary, []byte("late")); sent || !errors.Is(err, wschan.ErrClosed) {
				t.Fatalf("TrySend after Close = %v, %v; want false, ErrClosed", sent, err)
			}
		})
	}
}

// TestTrySendPeerNotReading: TrySend takes messages while the socket has
// room, keeps the part of a frame the socket did not take, and refuses
// the next message until it is out. When the peer reads again it gets
// every accepted message whole and in order, the kept part written as
// the socket drains, then what Send sent after them: nothing lost,
// nothing torn, with permessage-deflate (context takeover) too.
func TestTrySendPeerNotReading(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		for _, compress := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/compress=%v", eng, compress), func(t *testing.T) {
				t.Parallel()
				opts := &wschan.AcceptOptions{EnableCompression: compress}
				wschan.UseEngine(opts, eng)
				u, accepted := acceptedServer(t, opts)
				var header http.Header
				if compress {
					header = http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate"}}
				}
				raw := wstest.DialRaw(t, u, header) // reads only when told
				ch := serverChannel(t, accepted)
				ctx := wstest.Context(t, 30*time.Second)

				// Incompressible, so deflate cannot make the socket's
				// buffer last forever.
				msg := func(i int) []byte { return wstest.RandomBytes(20_000+i, byte(i)) }
				n := 0
				for ; n < 10_000; n++ {
					sent, err := ch.TrySend(wschan.Binary, msg(n))
					if err != nil {
						t.Fatalf("TrySend %d: %v", n, err)
					}
					if !sent {
						break
					}
				}
				// The goroutine engine compresses inside gws: there TrySend
				// refuses compressed connections.
				if eng == wschan.EngineGoroutine && compress || runtime.GOOS != "linux" {
					if n != 0 {
						t.Fatalf("TrySend on %s sent %d messages", eng, n)
					}
				} else if n == 0 || n == 10_000 {
					t.Fatalf("TrySend took %d messages from a peer that does not read", n)
				}
				kept := wschan.TrySendKept(ch)
				if eng == wschan.EnginePoll && compress && !kept {
					// A compressed frame refused by the socket is kept
					// whole (the deflater has moved on): the refusal came
					// from the kept frame.
					t.Fatal("no frame kept after a refusal with compression")
				}
				if sent, err := ch.TrySend(wschan.Binary, []byte("refused")); sent || err != nil {
					t.Fatalf("TrySend while the socket is full = %v, %v; want false, nil", sent, err)
				}
				// The kept part goes out as the peer reads, with no other
				// write to push it; the tail is sent once every accepted
				// message has arrived.
				tail := bytes.Repeat([]byte("tail "), 1000)
				sendErr := make(chan error, 1)
				var window []byte
				for i := 0; i <= n; i++ {
					if i == n {
						go func() { sendErr <- ch.Send(ctx, wschan.Binary, tail) }()
					}
					f, err := raw.ReadFrame()
					if err != nil {
						t.Fatalf("frame %d of %d: %v", i, n+1, err)
					}
					got := f.Payload
					if f.RSV == 4 {
						s, err := inflateTakeover(&window, got)
						if err != nil {
							t.Fatalf("frame %d does not inflate: %v", i, err)
						}
						got = []byte(s)
					}
					want := tail
					if i < n {
						want = msg(i)
					}
					if f.Opcode != 0x2 || !f.Fin || !bytes.Equal(got, want) {
						t.Fatalf("frame %d: opcode %d fin %v, %d bytes; want message %d of %d bytes", i, f.Opcode, f.Fin, len(got), i, len(want))
					}
				}
				if err := <-sendErr; err != nil {
					t.Fatalf("Send after the refusals: %v", err)
				}
				t.Logf("%d messages taken, frame kept at the refusal: %v", n, kept)
			})
		}
	}
}

// TestTrySendWhileClosing: once this side's close frame is out, TrySend
// refuses with an error and writes nothing: the peer sees the close frame
// last.
func TestTrySendWhileClosing(t *testing.T) {
	t.Parallel()
	for _, eng := range wschan.Engines {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			opts := &wschan.AcceptOptions{CloseTimeout: 5 * time.Second}
			wschan.UseEngine(opts, eng)
			u, accepted := acceptedServer(t, opts)
			raw := wstest.DialRaw(t, u, nil)
			ch := serverChannel(t, accepted)
			closed := make(chan error, 1)
			go func() { closed <- ch.Close(wschan.StatusNormalClosure, "bye") }()
			_ = raw.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			f, err := raw.ReadFrame()
			if err != nil || f.Opcode != 0x8 {
				t.Fatalf("first frame %+v, %v; want the close frame", f, err)
			}
			if sent, err := ch.TrySend(wschan.Text, []byte("too late")); sent || err == nil {
				t.Fatalf("TrySend during the closing handshake = %v, %v; want false and an error", sent, err)
			}
			// Nothing follows the close frame: the next read times out.
			_ = raw.Conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if f, err := raw.ReadFrame(); err == nil {
				t.Fatalf("a frame after the close frame: %+v", f)
			}
			_ = raw.Conn.SetReadDeadline(time.Time{})
			if err := raw.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x8, Masked: true, Payload: wstest.ClosePayload(1000, "")}); err != nil {
				t.Fatal(err)
			}
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}
