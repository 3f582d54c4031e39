package wschan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// handlerServer runs f on every accepted server-side channel.
func handlerServer(t *testing.T, opts *wschan.AcceptOptions, f func(ch *wschan.Channel)) string {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The whole handler is waited for: on the poll engine the
		// connection can be over before Accept has returned here.
		wg.Add(1)
		defer wg.Done()
		ch, err := wschan.Accept(w, r, opts)
		if err != nil {
			return
		}
		f(ch)
	}))
	return u
}

func TestPeerCloseCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		serve      func(r *wstest.Raw)
		wantCode   wschan.StatusCode
		wantReason string
		wantRemote bool
		wantErr    error
	}{
		{"normal close with reason", func(r *wstest.Raw) {
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose, Payload: wstest.ClosePayload(1000, "bye")})
			r.ReadClose()
		}, 1000, "bye", true, nil},
		{"application code", func(r *wstest.Raw) {
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose, Payload: wstest.ClosePayload(4321, "app")})
			r.ReadClose()
		}, 4321, "app", true, nil},
		{"close without status is 1005", func(r *wstest.Raw) {
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose})
			r.ReadClose()
		}, wschan.StatusNoStatusReceived, "", true, nil},
		{"TCP dropped without close frame is 1006", func(r *wstest.Raw) {
			_ = r.Conn.Close()
		}, wschan.StatusAbnormalClosure, "", false, wschan.ErrConnectionLost},
		{"TCP dropped mid-frame is 1006", func(r *wstest.Raw) {
			_ = r.Write([]byte{0x82, 0x7e, 0x10, 0x00, 1, 2, 3})
			_ = r.Conn.Close()
		}, wschan.StatusAbnormalClosure, "", false, wschan.ErrConnectionLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ch := wstest.Dial(t, wstest.RawServer(t, tt.serve), nil)
			wstest.WaitDone(t, ch)
			if ch.CloseCode() != tt.wantCode || ch.CloseReason() != tt.wantReason {
				t.Errorf("CloseCode/Reason = %v %q, want %v %q", ch.CloseCode(), ch.CloseReason(), tt.wantCode, tt.wantReason)
			}
			var ce *wschan.CloseError
			if got := errors.As(ch.Err(), &ce) && ce.Remote; got != tt.wantRemote {
				t.Errorf("Err() = %v: remote close %v, want %v", ch.Err(), got, tt.wantRemote)
			}
			if tt.wantErr != nil && !errors.Is(ch.Err(), tt.wantErr) {
				t.Errorf("Err() = %v, want %v", ch.Err(), tt.wantErr)
			}
			if _, err := ch.Read(t.Context()); err == nil || err.Error() != ch.Err().Error() {
				t.Errorf("Read after end = %v, want the ending error", err)
			}
			if err := ch.SendText(t.Context(), "late"); err == nil {
				t.Error("Send after end succeeded")
			}
		})
	}
}

// TestCloseFlushesAcceptedSends checks that messages accepted by Send before
// Close all reach the peer before the close frame.
func TestCloseFlushesAcceptedSends(t *testing.T) {
	t.Parallel()
	const n = 200
	got := make(chan []string, 1)
	u := handlerServer(t, nil, func(ch *wschan.Channel) {
		var msgs []string
		for m := range ch.Messages(context.Background()) {
			msgs = append(msgs, string(m.Data))
		}
		got <- msgs
	})
	ch := wstest.Dial(t, u, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range n / 4 {
				if err := ch.SendText(t.Context(), strings.Repeat("x", g*1000+i)); err != nil {
					t.Errorf("Send: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := ch.Close(wschan.StatusNormalClosure, "flush"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case msgs := <-got:
		if len(msgs) != n {
			t.Fatalf("server got %d messages before the close, want %d", len(msgs), n)
		}
	case <-t.Context().Done():
		t.Fatal("server never saw the close")
	}
}

func TestServerCloseReachesClient(t *testing.T) {
	t.Parallel()
	u := handlerServer(t, nil, func(ch *wschan.Channel) {
		if _, err := ch.Read(context.Background()); err != nil {
			return
		}
		_ = ch.Close(4000, "server says bye")
	})
	ch := wstest.Dial(t, u, nil)
	if err := ch.SendText(t.Context(), "hi"); err != nil {
		t.Fatal(err)
	}
	wstest.WaitDone(t, ch)
	var ce *wschan.CloseError
	if !errors.As(ch.Err(), &ce) || !ce.Remote || ce.Code != 4000 || ce.Reason != "server says bye" {
		t.Fatalf("client Err() = %#v", ch.Err())
	}
}

// TestCloseIsBounded checks Close returns when the peer never answers the
// close frame, and when a send is stuck on a peer that does not read.
func TestCloseIsBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stuck bool
	}{
		{"peer ignores close frame", false},
		{"send blocked on non-reading peer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			u := wstest.RawServer(t, func(r *wstest.Raw) {
				if !tt.stuck {
					for {
						if _, err := r.ReadFrame(); err != nil {
							return
						}
					}
				}
				<-release // neither read nor answer
			})
			defer close(release)
			ch := wstest.Dial(t, u, &wschan.DialOptions{CloseTimeout: 200 * time.Millisecond})
			sendDone := make(chan error, 1)
			if tt.stuck {
				go func() {
					big := make([]byte, 1<<20)
					for {
						if err := ch.Send(context.Background(), wschan.Binary, big); err != nil {
							sendDone <- err
							return
						}
					}
				}()
			}
			closed := make(chan error, 1)
			go func() { closed <- ch.Close(4000, "bye") }()
			select {
			case <-closed:
			case <-t.Context().Done():
				t.Fatal("Close did not return")
			}
			if !errors.Is(ch.Err(), wschan.ErrClosed) {
				t.Errorf("Err() = %v, want ErrClosed", ch.Err())
			}
			// The code asked for is reported even when the close frame
			// could not be written before the close timeout.
			if ch.CloseCode() != 4000 || ch.CloseReason() != "bye" {
				t.Errorf("CloseCode() %v %q, want 4000 \"bye\"", ch.CloseCode(), ch.CloseReason())
			}
			if tt.stuck {
				if err := <-sendDone; err == nil {
					t.Error("blocked Send returned nil after Close")
				}
			}
		})
	}
}

func TestCloseArguments(t *testing.T) {
	t.Parallel()
	ch := wstest.Dial(t, wstest.EchoServer(t, nil), nil)
	for _, tt := range []struct {
		code   wschan.StatusCode
		reason string
	}{
		{1005, ""}, {1006, ""}, {999, ""}, {5000, ""}, {1000, strings.Repeat("r", 124)}, {1000, "\xff"},
	} {
		if err := ch.Close(tt.code, tt.reason); !errors.Is(err, wschan.ErrInvalidClose) {
			t.Errorf("Close(%d, %d bytes) = %v, want ErrInvalidClose", tt.code, len(tt.reason), err)
		}
	}
	if ch.Err() != nil {
		t.Fatalf("refused Close ended the channel: %v", ch.Err())
	}
	if err := ch.Close(3000, strings.Repeat("r", 123)); err != nil {
		t.Fatalf("Close with 123-byte reason: %v", err)
	}
	if err := ch.Close(1000, ""); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ch.Read(t.Context()); !errors.Is(err, wschan.ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
	if err := ch.SendText(t.Context(), "x"); !errors.Is(err, wschan.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if ch.CloseCode() != 3000 {
		t.Fatalf("CloseCode() = %v, want 3000", ch.CloseCode())
	}
}

// TestSendContextAbortsStuckWrite checks that a Send blocked on a peer that
// does not read returns when its context ends, and the channel then ends.
func TestSendContextAbortsStuckWrite(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	u := wstest.RawServer(t, func(r *wstest.Raw) { <-release })
	defer close(release)
	sendUntilStuck(t, wstest.Dial(t, u, nil))
}

// sendUntilStuck sends 1 MiB messages to a peer that does not read, with
// a context that ends after 300 ms, and checks that the stuck Send
// returns with the context's error and the channel then ends (1006).
func sendUntilStuck(t *testing.T, ch *wschan.Channel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	big := make([]byte, 1<<20)
	var err error
	for err == nil {
		err = ch.Send(ctx, wschan.Binary, big)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want context.DeadlineExceeded", err)
	}
	wstest.WaitDone(t, ch)
	if !errors.Is(ch.Err(), wschan.ErrConnectionLost) || ch.CloseCode() != wschan.StatusAbnormalClosure {
		t.Fatalf("Err() = %v code %v, want ErrConnectionLost 1006", ch.Err(), ch.CloseCode())
	}
}

func TestKeepalive(t *testing.T) {
	t.Parallel()
	t.Run("dead peer detected", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		u := wstest.RawServer(t, func(r *wstest.Raw) {
			go func() { // read and drop everything: never pong
				for {
					if _, err := r.ReadFrame(); err != nil {
						return
					}
				}
			}()
			<-release
		})
		defer close(release)
		ch := wstest.Dial(t, u, &wschan.DialOptions{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
		wstest.WaitDone(t, ch)
		if !errors.Is(ch.Err(), wschan.ErrTimeout) || ch.CloseCode() != wschan.StatusAbnormalClosure {
			t.Fatalf("Err() = %v code %v, want ErrTimeout 1006", ch.Err(), ch.CloseCode())
		}
	})
	t.Run("answered pings report RTT and keep the channel", func(t *testing.T) {
		t.Parallel()
		ch := wstest.Dial(t, wstest.EchoServer(t, nil), &wschan.DialOptions{PingInterval: 20 * time.Millisecond, PingTimeout: 40 * time.Millisecond})
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ch.RTT() == 0 {
			select {
			case <-tick.C:
			case <-t.Context().Done():
				t.Fatal("no RTT measured")
			}
		}
		if err := ch.SendText(t.Context(), "alive"); err != nil {
			t.Fatal(err)
		}
		if m := wstest.Read(t, ch); string(m.Data) != "alive" || ch.Err() != nil {
			t.Fatalf("after pings: %q, Err %v", m.Data, ch.Err())
		}
	})
	// A slow consumer, a slow reader of a large Send and a late pong are
	// timer questions: TestKeepaliveTimers answers them on a fake clock.
	t.Run("peer that floods pings and never reads is dropped", func(t *testing.T) {
		t.Parallel()
		// The pongs fill the socket until the read loop blocks writing one.
		// The keepalive must still end the connection: its own ping may not
		// wait behind the stuck pong.
		u, accepted := acceptedServer(t, &wschan.AcceptOptions{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
		raw := wstest.DialRaw(t, u, nil)
		if tc, ok := raw.Conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		ch := serverChannel(t, accepted)
		ping := wstest.Frame{Fin: true, Opcode: opPing, Masked: true, Payload: bytes.Repeat([]byte("p"), 125)}.Encode()
		flood := bytes.Repeat(ping, 64)
		_ = raw.Conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
		go func() {
			for raw.Write(flood) == nil {
			}
		}()
		select {
		case <-ch.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("channel still %v 10s after the peer stopped reading", ch.State())
		}
		if !errors.Is(ch.Err(), wschan.ErrTimeout) || ch.CloseCode() != wschan.StatusAbnormalClosure {
			t.Fatalf("Err() = %v code %v, want ErrTimeout 1006", ch.Err(), ch.CloseCode())
		}
	})
}

// TestOnPing checks the hook sees each ping before its pong, and that
// closing from it stops the pong.
func TestOnPing(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		seen []string
	)
	u, accepted := acceptedServer(t, &wschan.AcceptOptions{
		OnPing: func(ch *wschan.Channel, p []byte) {
			mu.Lock()
			seen = append(seen, string(p))
			mu.Unlock()
			if string(p) == "stop" {
				_ = ch.Close(wschan.StatusPolicyViolation, "too many pings")
			}
		},
	})
	raw := wstest.DialRaw(t, u, nil)
	ch := serverChannel(t, accepted)
	for _, p := range []string{"one", "", "two"} {
		raw.WriteFrame(wstest.Frame{Fin: true, Opcode: opPing, Masked: true, Payload: []byte(p)})
		f, err := raw.ReadFrame()
		if err != nil || f.Opcode != opPong || string(f.Payload) != p {
			t.Fatalf("answer to ping %q: opcode %#x %q %v, want its pong", p, f.Opcode, f.Payload, err)
		}
	}
	raw.WriteFrame(wstest.Frame{Fin: true, Opcode: opPing, Masked: true, Payload: []byte("stop")})
	f, err := raw.ReadFrame()
	if err != nil || f.Opcode != opClose {
		t.Fatalf("after the closing ping: opcode %#x %q %v, want a close frame and no pong", f.Opcode, f.Payload, err)
	}
	raw.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose, Masked: true, Payload: f.Payload})
	wstest.WaitDone(t, ch)
	if ch.CloseCode() != wschan.StatusPolicyViolation || !errors.Is(ch.Err(), wschan.ErrClosed) {
		t.Fatalf("CloseCode %v Err %v, want 1008 ErrClosed", ch.CloseCode(), ch.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, ","); got != "one,,two,stop" {
		t.Fatalf("OnPing saw %q", got)
	}
}

func TestCloseNow(t *testing.T) {
	t.Parallel()
	for _, afterClose := range []bool{false, true} {
		t.Run(fmt.Sprintf("after Close %v", afterClose), func(t *testing.T) {
			t.Parallel()
			// A close timeout far past the test's patience: only CloseNow
			// can end the channel in time.
			u, accepted := acceptedServer(t, &wschan.AcceptOptions{CloseTimeout: time.Hour})
			peer := wstest.DialRaw(t, u, nil) // reads, never answers a close frame
			ch := <-accepted
			closeDone := make(chan error, 1)
			if afterClose {
				go func() { closeDone <- ch.Close(wschan.StatusGoingAway, "shutting down") }()
				f, err := peer.ReadFrame()
				if err != nil || f.Opcode != 0x8 {
					t.Fatalf("peer read %+v, %v; want the close frame", f, err)
				}
			}
			ch.CloseNow()
			select {
			case <-ch.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("channel still open 10 s after CloseNow")
			}
			if f, err := peer.ReadFrame(); err == nil {
				t.Fatalf("peer read %+v after CloseNow; want the connection gone", f)
			}
			if afterClose {
				if err := <-closeDone; err != nil {
					t.Fatalf("Close: %v", err)
				}
				if !errors.Is(ch.Err(), wschan.ErrClosed) {
					t.Fatalf("Err %v, want ErrClosed (Close ran first)", ch.Err())
				}
				return
			}
			if !errors.Is(ch.Err(), wschan.ErrConnectionLost) || ch.CloseCode() != wschan.StatusAbnormalClosure {
				t.Fatalf("Err %v, code %d; want ErrConnectionLost, 1006", ch.Err(), ch.CloseCode())
			}
		})
	}
}
