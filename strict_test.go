package wschan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// strictCase is an Autobahn case that sends a valid message and, right
// behind it, something that fails the connection. A strict endpoint
// delivers the message, lets the application answer it, and only then
// fails the connection with the case's code.
type strictCase struct {
	name   string
	frames []wstest.Frame
	chop   int    // bytes per write: 0 all at once, -1 a frame per write, n > 0 n bytes per write
	echo   []byte // the message the application answers
	code   int
}

// strictCases are the Autobahn cases 3.2–3.4, 4.1.3–4.1.5, 4.2.3–4.2.5
// and 5.15, byte for byte (frames are masked by the client role), plus
// invalid UTF-8 and an oversized message behind a valid one.
func strictCases() []strictCase {
	hello := []byte("Hello, world!")
	F := func(fin bool, rsv, op byte, p []byte) wstest.Frame {
		return wstest.Frame{Fin: fin, RSV: rsv, Opcode: op, Payload: p}
	}
	text := F(true, 0, opText, hello)
	ping := F(true, 0, opPing, hello)
	return []strictCase{
		{"3.2 RSV=2", []wstest.Frame{text, F(true, 2, opText, hello), ping}, 0, hello, 1002},
		{"3.3 RSV=3 frame-wise", []wstest.Frame{text, F(true, 3, opText, hello), ping}, -1, hello, 1002},
		{"3.4 RSV=4 octet-wise", []wstest.Frame{text, F(true, 4, opText, hello), ping}, 1, hello, 1002},
		{"4.1.3 opcode 3", []wstest.Frame{text, F(true, 0, 3, nil), ping}, 0, hello, 1002},
		{"4.1.4 opcode 4 with payload", []wstest.Frame{text, F(true, 0, 4, []byte("reserved opcode payload")), ping}, 0, hello, 1002},
		{"4.1.5 opcode 5 with payload", []wstest.Frame{text, F(true, 0, 5, []byte("reserved opcode payload")), ping}, 0, hello, 1002},
		{"4.2.3 opcode 13", []wstest.Frame{text, F(true, 0, 13, nil), ping}, 0, hello, 1002},
		{"4.2.4 opcode 14 with payload", []wstest.Frame{text, F(true, 0, 14, []byte("reserved opcode payload")), ping}, 0, hello, 1002},
		{"4.2.5 opcode 15 with payload", []wstest.Frame{text, F(true, 0, 15, []byte("reserved opcode payload")), ping}, 0, hello, 1002},
		{"5.15 continuation with nothing to continue", []wstest.Frame{
			F(false, 0, opText, []byte("fragment1")), F(true, 0, opCont, []byte("fragment2")),
			F(false, 0, opCont, []byte("fragment3")), F(true, 0, opText, []byte("fragment4")),
		}, 0, []byte("fragment1fragment2"), 1002},
		{"invalid UTF-8 split across reads", []wstest.Frame{text, F(false, 0, opText, []byte("κόσμε")), F(true, 0, opCont, []byte{0xf4, 0x90, 0x80, 0x80})}, -1, hello, 1007},
		{"message over the read limit", []wstest.Frame{text, F(true, 0, opBinary, make([]byte, 5000))}, 0, hello, 1009},
	}
}

// wire returns the bytes of frames, masked or not, in writes as chop says.
func (c strictCase) wire(masked bool) [][]byte {
	var out [][]byte
	var all []byte
	for _, f := range c.frames {
		f.Masked = masked
		b := f.Encode()
		if c.chop == -1 {
			out = append(out, b)
		}
		all = append(all, b...)
	}
	switch {
	case c.chop == 0:
		out = [][]byte{all}
	case c.chop > 0:
		for len(all) > 0 {
			n := min(c.chop, len(all))
			out = append(out, all[:n])
			all = all[n:]
		}
	}
	return out
}

// writeChops sends each piece in its own write, until the peer has closed.
func writeChops(r *wstest.Raw, chops [][]byte) {
	for _, b := range chops {
		if r.Write(b) != nil {
			return // the endpoint failed the connection: the rest is unread
		}
	}
}

// readAnswerThenClose reads what the endpoint under test answers: the
// echo of the valid message, then a close frame.
func readAnswerThenClose(r *wstest.Raw) (echo []byte, code int, err error) {
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return echo, -1, fmt.Errorf("after echo %q: %w", echo, err)
		}
		switch f.Opcode {
		case opText, opBinary:
			echo = append(echo, f.Payload...)
		case opClose:
			if len(f.Payload) < 2 {
				return echo, 1005, nil
			}
			return echo, int(f.Payload[0])<<8 | int(f.Payload[1]), nil
		}
	}
}

// streamEcho answers every message from the stream until it ends.
func streamEcho(ch *wschan.Channel) {
	ctx := context.Background()
	for m := range ch.Messages(ctx) {
		if ch.Send(ctx, m.Type, m.Data) != nil {
			return
		}
	}
}

func callbackEcho(ch *wschan.Channel, m wschan.Message) {
	_ = ch.Send(context.Background(), m.Type, m.Data)
}

// TestStrictAfterValidMessage runs each case against the server and the
// client, answering from the stream (Read, Messages) and from OnMessage:
// the answer to the valid message goes out before the close code.
func TestStrictAfterValidMessage(t *testing.T) {
	t.Parallel()
	const limit = 4096
	for _, eng := range wschan.Engines {
		for _, tc := range strictCases() {
			testStrictCase(t, eng, tc, limit)
		}
	}
}

// testStrictCase runs one case on one engine, in both roles.
func testStrictCase(t *testing.T, eng wschan.Engine, tc strictCase, limit int64) {
	t.Run(string(eng)+"/server/"+tc.name, func(t *testing.T) {
		t.Parallel()
		for _, mode := range []string{"stream", "callback"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				opts := &wschan.AcceptOptions{ReadLimit: limit}
				wschan.UseEngine(opts, eng)
				if mode == "callback" {
					opts.OnMessage = callbackEcho
				}
				u, accepted := acceptedServer(t, opts)
				raw := wstest.DialRaw(t, u, nil)
				srv := serverChannel(t, accepted)
				writeChops(raw, tc.wire(true))
				echo, code, err := readAnswerThenClose(raw)
				if err != nil || !bytes.Equal(echo, tc.echo) || code != tc.code {
					t.Fatalf("server answered %q then close %d (%v), want %q then %d", echo, code, err, tc.echo, tc.code)
				}
				wstest.WaitDone(t, srv)
				if int(srv.CloseCode()) != tc.code || !errors.Is(srv.Err(), wantErrFor(tc.code)) {
					t.Fatalf("server channel ended %v with %v, want %d", srv.CloseCode(), srv.Err(), tc.code)
				}
			})
		}
	})
	t.Run(string(eng)+"/client/"+tc.name, func(t *testing.T) {
		t.Parallel()
		for _, mode := range []string{"stream", "callback", "reconnecting"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				type answer struct {
					echo []byte
					code int
					err  error
				}
				got := make(chan answer, 1)
				u := wstest.RawServer(t, func(r *wstest.Raw) {
					writeChops(r, tc.wire(false))
					var a answer
					a.echo, a.code, a.err = readAnswerThenClose(r)
					select {
					case got <- a:
					default: // a reconnecting client's later connections
					}
				})
				opts := &wschan.DialOptions{ReadLimit: limit}
				wschan.UseEngine(opts, eng)
				switch mode {
				case "callback":
					opts.OnMessage = callbackEcho
				case "reconnecting":
					opts.Reconnect = &wschan.ReconnectOptions{}
				}
				ch := wstest.Dial(t, u, opts)
				if mode != "callback" {
					go streamEcho(ch)
				}
				var a answer
				select {
				case a = <-got:
				case <-t.Context().Done():
					t.Fatal("the raw server got no answer")
				}
				if a.err != nil || !bytes.Equal(a.echo, tc.echo) || a.code != tc.code {
					t.Fatalf("client answered %q then close %d (%v), want %q then %d", a.echo, a.code, a.err, tc.echo, tc.code)
				}
				wstest.WaitDone(t, ch)
				if int(ch.CloseCode()) != tc.code || !errors.Is(ch.Err(), wantErrFor(tc.code)) {
					t.Fatalf("client channel ended %v with %v, want %d", ch.CloseCode(), ch.Err(), tc.code)
				}
			})
		}
	})
}

func wantErrFor(code int) error {
	if code == 1009 {
		return wschan.ErrMessageTooBig
	}
	return wschan.ErrProtocol
}

// TestStrictWaitIsBounded checks the two other ends of the wait for the
// stream to drain: a consumer that does not ask for more gets the
// connection failed after the close timeout, and Close ends it at once.
func TestStrictWaitIsBounded(t *testing.T) {
	t.Parallel()
	bad := append(wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: []byte("one")}.Encode(),
		wstest.Frame{Fin: true, Opcode: 3, Masked: true}.Encode()...)
	t.Run("consumer that stops reading", func(t *testing.T) {
		t.Parallel()
		u := handlerServer(t, &wschan.AcceptOptions{CloseTimeout: 50 * time.Millisecond}, func(ch *wschan.Channel) {
			m, err := ch.Read(context.Background())
			if err == nil {
				_ = ch.Send(context.Background(), m.Type, m.Data)
			}
			<-ch.Done() // never asks for more
		})
		raw := wstest.DialRaw(t, u, nil)
		if err := raw.Write(bad); err != nil {
			t.Fatal(err)
		}
		echo, code, err := readAnswerThenClose(raw)
		if err != nil || string(echo) != "one" || code != 1002 {
			t.Fatalf("got %q then %d (%v), want the echo then 1002", echo, code, err)
		}
	})
	t.Run("Close while the stream drains", func(t *testing.T) {
		t.Parallel()
		ended := make(chan *wschan.Channel, 1)
		u := handlerServer(t, &wschan.AcceptOptions{CloseTimeout: time.Hour}, func(ch *wschan.Channel) {
			if m, err := ch.Read(context.Background()); err != nil || string(m.Data) != "one" {
				t.Errorf("Read = %q, %v", m.Data, err)
			}
			_ = ch.Close(wschan.StatusNormalClosure, "done")
			ended <- ch
		})
		raw := wstest.DialRaw(t, u, nil)
		if err := raw.Write(bad); err != nil {
			t.Fatal(err)
		}
		if code, _ := raw.ReadClose(); code != 1000 {
			t.Fatalf("peer got close %d, want the application's 1000", code)
		}
		// With an hour's close timeout, only Close can have ended the wait.
		ctx := wstest.Context(t, 30*time.Second)
		select {
		case ch := <-ended:
			if ch.CloseCode() != 1000 || !errors.Is(ch.Err(), wschan.ErrClosed) {
				t.Fatalf("channel ended %v %v, want 1000 ErrClosed", ch.CloseCode(), ch.Err())
			}
		case <-ctx.Done():
			t.Fatal("Close did not end the wait for the stream to drain")
		}
	})
}

// TestStrictStopsReading checks that once a violation is found nothing
// more is read from the socket while the stream drains: a peer that floods
// after the violation cannot make the channel hold more than one read.
func TestStrictStopsReading(t *testing.T) {
	t.Parallel()
	for _, server := range []bool{true, false} {
		t.Run(fmt.Sprintf("server=%v", server), func(t *testing.T) {
			t.Parallel()
			var stream []byte
			stream = append(stream, wstest.Frame{Fin: true, Opcode: opText, Masked: server, Payload: []byte("one")}.Encode()...)
			stream = append(stream, wstest.Frame{Fin: true, RSV: 2, Opcode: opText, Masked: server, Payload: []byte("bad")}.Encode()...)
			flood := wstest.Frame{Fin: true, Opcode: opBinary, Masked: server, Payload: make([]byte, 1000)}.Encode()
			conn := &countingConn{chunks: [][]byte{stream}}
			for range 100 {
				conn.chunks = append(conn.chunks, flood)
			}
			waiting := make(chan struct{})
			release := make(chan struct{})
			failed := make(chan int, 1)
			r := wschan.WatchedReader(conn, server, func() { close(waiting); <-release }, func(code int) { failed <- code })
			buf := make([]byte, 4096)
			n, err := r.Read(buf)
			if err != nil || n != len(stream)-len(wstest.Frame{Fin: true, RSV: 2, Opcode: opText, Masked: server, Payload: []byte("bad")}.Encode()) {
				t.Fatalf("first read gave %d bytes (%v): want exactly the valid frame", n, err)
			}
			done := make(chan error)
			go func() {
				_, err := r.Read(buf)
				done <- err
			}()
			<-waiting
			if conn.reads != 1 {
				t.Fatalf("%d socket reads while the stream drains, want 1", conn.reads)
			}
			select {
			case code := <-failed:
				t.Fatalf("failed with %d before the stream drained", code)
			default:
			}
			close(release)
			if err := <-done; err == nil {
				t.Fatal("the read after the drain succeeded: want the connection failed")
			}
			if code := <-failed; code != 1002 {
				t.Fatalf("failed with %d, want 1002", code)
			}
			if conn.reads != 1 {
				t.Fatalf("%d socket reads in all, want 1", conn.reads)
			}
		})
	}
}

// countingConn is a net.Conn whose reads return the chunks in turn and
// are counted.
type countingConn struct {
	net.Conn
	chunks [][]byte
	reads  int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	if len(c.chunks) == 0 {
		return 0, errors.New("no more data")
	}
	n := copy(p, c.chunks[0])
	c.chunks = c.chunks[1:]
	return n, nil
}
