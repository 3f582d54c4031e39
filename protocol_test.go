package wschan_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// acceptedServer starts a server that accepts with opts, echoes, and hands
// each server-side channel to the test.
func acceptedServer(t *testing.T, opts *wschan.AcceptOptions) (string, chan *wschan.Channel) {
	t.Helper()
	accepted := make(chan *wschan.Channel, 4)
	u, _ := wstest.Server(t, &wstest.Echo{Options: opts, Accepted: accepted})
	return u, accepted
}

func serverChannel(t *testing.T, accepted chan *wschan.Channel) *wschan.Channel {
	t.Helper()
	select {
	case ch := <-accepted:
		return ch
	case <-t.Context().Done():
		t.Fatal("no connection accepted")
		return nil
	}
}

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// TestServerFailsBrokenClients sends what a conforming client never would
// and checks the close code the server answers with and what its Channel
// reports.
func TestServerFailsBrokenClients(t *testing.T) {
	t.Parallel()
	F := func(fin bool, op byte, p []byte) wstest.Frame {
		return wstest.Frame{Fin: fin, Opcode: op, Masked: true, Payload: p}
	}
	tests := []struct {
		name     string
		frames   []wstest.Frame
		wantCode int
		wantErr  error
	}{
		{"unmasked frame", []wstest.Frame{{Fin: true, Opcode: opText, Payload: []byte("hi")}}, 1002, wschan.ErrProtocol},
		{"reserved bit set", []wstest.Frame{{Fin: true, RSV: 2, Opcode: opText, Masked: true, Payload: []byte("hi")}}, 1002, wschan.ErrProtocol},
		{"RSV1 without compression", []wstest.Frame{{Fin: true, RSV: 4, Opcode: opText, Masked: true, Payload: []byte("hi")}}, 1002, wschan.ErrProtocol},
		{"unknown data opcode", []wstest.Frame{F(true, 0x3, []byte("x"))}, 1002, wschan.ErrProtocol},
		{"unknown control opcode", []wstest.Frame{F(true, 0xb, nil)}, 1002, wschan.ErrProtocol},
		{"control frame over 125 bytes", []wstest.Frame{F(true, opPing, bytes.Repeat([]byte("p"), 126))}, 1002, wschan.ErrProtocol},
		{"fragmented control frame", []wstest.Frame{F(false, opPing, []byte("p"))}, 1002, wschan.ErrProtocol},
		{"continuation without start", []wstest.Frame{F(true, opCont, []byte("x"))}, 1002, wschan.ErrProtocol},
		{"new message inside fragmented one", []wstest.Frame{F(false, opText, []byte("a")), F(true, opText, []byte("b"))}, 1002, wschan.ErrProtocol},
		{"invalid UTF-8 text", []wstest.Frame{F(true, opText, []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80})}, 1007, wschan.ErrProtocol},
		{"invalid UTF-8 across fragments", []wstest.Frame{F(false, opText, []byte{0xce}), F(true, opCont, []byte{0x41})}, 1007, wschan.ErrProtocol},
		{"oversized message", []wstest.Frame{F(true, opBinary, make([]byte, 2048))}, 1009, wschan.ErrMessageTooBig},
		{"oversized fragmented message", []wstest.Frame{F(false, opBinary, make([]byte, 1000)), F(false, opCont, make([]byte, 1000)), F(true, opCont, make([]byte, 1000))}, 1009, wschan.ErrMessageTooBig},
		{"claims 1 TiB", []wstest.Frame{{Fin: true, Opcode: opBinary, Masked: true, Length: 1 << 40}}, 1009, wschan.ErrMessageTooBig},
		{"64-bit length with top bit set", []wstest.Frame{{Fin: true, Opcode: opBinary, Masked: true, Length: 1 << 63}}, 1002, wschan.ErrProtocol},
		{"close with 1-byte payload", []wstest.Frame{F(true, opClose, []byte{0x03})}, 1002, wschan.ErrProtocol},
		{"close with code 999", []wstest.Frame{F(true, opClose, wstest.ClosePayload(999, ""))}, 1002, wschan.ErrProtocol},
		{"close with code 1005", []wstest.Frame{F(true, opClose, wstest.ClosePayload(1005, ""))}, 1002, wschan.ErrProtocol},
		{"close with code 1006", []wstest.Frame{F(true, opClose, wstest.ClosePayload(1006, ""))}, 1002, wschan.ErrProtocol},
		{"close with code 5000", []wstest.Frame{F(true, opClose, wstest.ClosePayload(5000, ""))}, 1002, wschan.ErrProtocol},
		{"close with invalid UTF-8 reason", []wstest.Frame{F(true, opClose, wstest.ClosePayload(1000, "\xff"))}, 1007, wschan.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, accepted := acceptedServer(t, &wschan.AcceptOptions{ReadLimit: 2000})
			raw := wstest.DialRaw(t, u, nil)
			srv := serverChannel(t, accepted)
			for _, f := range tt.frames {
				if err := raw.WriteFrame(f); err != nil {
					t.Fatalf("write frame: %v", err)
				}
			}
			code, reason := raw.ReadClose()
			if code != tt.wantCode {
				t.Fatalf("server closed with %d %q, want %d", code, reason, tt.wantCode)
			}
			wstest.WaitDone(t, srv)
			if !errors.Is(srv.Err(), tt.wantErr) {
				t.Errorf("server Err() = %v, want %v", srv.Err(), tt.wantErr)
			}
			if got := wschan.CloseStatus(srv.Err()); int(got) != tt.wantCode {
				t.Errorf("CloseStatus(server Err) = %v, want %d", got, tt.wantCode)
			}
			if int(srv.CloseCode()) != tt.wantCode {
				t.Errorf("server CloseCode() = %v, want %d", srv.CloseCode(), tt.wantCode)
			}
			// The server is still healthy for the next client.
			ch := wstest.Dial(t, u, nil)
			if err := ch.SendText(t.Context(), "after"); err != nil {
				t.Fatal(err)
			}
			if m := wstest.Read(t, ch); string(m.Data) != "after" {
				t.Fatalf("echo after broken client = %q", m.Data)
			}
		})
	}
}

// TestServerAcceptsTrickyValidInput covers what is legal but often mishandled.
func TestServerAcceptsTrickyValidInput(t *testing.T) {
	t.Parallel()
	F := func(fin bool, op byte, p []byte) wstest.Frame {
		return wstest.Frame{Fin: fin, Opcode: op, Masked: true, Payload: p}
	}
	euro := []byte("€") // 3 bytes, split across fragments below
	tests := []struct {
		name   string
		frames []wstest.Frame
		want   []wstest.Frame // frames the server must answer with, in order
	}{
		{"ping gets pong with same payload", []wstest.Frame{F(true, opPing, []byte("abc"))}, []wstest.Frame{{Fin: true, Opcode: opPong, Payload: []byte("abc")}}},
		{"empty ping", []wstest.Frame{F(true, opPing, nil)}, []wstest.Frame{{Fin: true, Opcode: opPong, Payload: []byte{}}}},
		{"125-byte ping", []wstest.Frame{F(true, opPing, bytes.Repeat([]byte("x"), 125))}, []wstest.Frame{{Fin: true, Opcode: opPong, Payload: bytes.Repeat([]byte("x"), 125)}}},
		{"UTF-8 split across fragments", []wstest.Frame{F(false, opText, euro[:1]), F(false, opCont, euro[1:2]), F(true, opCont, euro[2:])},
			[]wstest.Frame{{Fin: true, Opcode: opText, Payload: euro}}},
		{"ping between fragments", []wstest.Frame{F(false, opText, []byte("frag")), F(true, opPing, []byte("p")), F(true, opCont, []byte("ment"))},
			[]wstest.Frame{{Fin: true, Opcode: opPong, Payload: []byte("p")}, {Fin: true, Opcode: opText, Payload: []byte("fragment")}}},
		{"unsolicited pong ignored", []wstest.Frame{F(true, opPong, []byte("u")), F(true, opText, []byte("t"))},
			[]wstest.Frame{{Fin: true, Opcode: opText, Payload: []byte("t")}}},
		{"empty fragments", []wstest.Frame{F(false, opBinary, nil), F(false, opCont, nil), F(true, opCont, []byte{7})},
			[]wstest.Frame{{Fin: true, Opcode: opBinary, Payload: []byte{7}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, _ := acceptedServer(t, nil)
			raw := wstest.DialRaw(t, u, nil)
			var all []byte
			for _, f := range tt.frames {
				all = append(all, f.Encode()...)
			}
			if err := raw.Write(all); err != nil {
				t.Fatal(err)
			}
			for i, w := range tt.want {
				got, err := raw.ReadFrame()
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if got.Opcode != w.Opcode || got.Fin != w.Fin || got.Masked || !bytes.Equal(got.Payload, w.Payload) {
					t.Fatalf("reply %d = op %x fin %v masked %v %q, want op %x %q", i, got.Opcode, got.Fin, got.Masked, got.Payload, w.Opcode, w.Payload)
				}
			}
			// A clean close is answered with the same code.
			_ = raw.WriteFrame(F(true, opClose, wstest.ClosePayload(1000, "")))
			if code, _ := raw.ReadClose(); code != 1000 {
				t.Fatalf("close answered with %d, want 1000", code)
			}
		})
	}
}

// TestClientFailsBrokenServers checks the client side against servers that
// send what a conforming server never would.
func TestClientFailsBrokenServers(t *testing.T) {
	t.Parallel()
	S := func(fin bool, op byte, p []byte) wstest.Frame { return wstest.Frame{Fin: fin, Opcode: op, Payload: p} }
	tests := []struct {
		name     string
		frames   []wstest.Frame
		wantCode int
		wantErr  error
	}{
		{"masked server frame", []wstest.Frame{{Fin: true, Opcode: opText, Masked: true, Payload: []byte("hi")}}, 1002, wschan.ErrProtocol},
		{"invalid UTF-8 text", []wstest.Frame{S(true, opText, []byte{0xff})}, 1007, wschan.ErrProtocol},
		{"oversized message", []wstest.Frame{S(true, opBinary, make([]byte, 4096))}, 1009, wschan.ErrMessageTooBig},
		{"reserved bits", []wstest.Frame{{Fin: true, RSV: 1, Opcode: opBinary, Payload: []byte("x")}}, 1002, wschan.ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan int, 1)
			u := wstest.RawServer(t, func(r *wstest.Raw) {
				for _, f := range tt.frames {
					_ = r.WriteFrame(f)
				}
				code, _ := r.ReadClose()
				got <- code
			})
			ch := wstest.Dial(t, u, &wschan.DialOptions{ReadLimit: 1024})
			wstest.WaitDone(t, ch)
			if !errors.Is(ch.Err(), tt.wantErr) || int(ch.CloseCode()) != tt.wantCode {
				t.Errorf("client ended with %v (code %v), want %v and %d", ch.Err(), ch.CloseCode(), tt.wantErr, tt.wantCode)
			}
			if code := <-got; code != tt.wantCode {
				t.Errorf("server received close %d, want %d", code, tt.wantCode)
			}
		})
	}
}

// TestAcceptRefusesBadHandshakes checks the HTTP answers to requests that
// are not acceptable WebSocket handshakes.
func TestAcceptRefusesBadHandshakes(t *testing.T) {
	t.Parallel()
	u, srv := wstest.Server(t, &wstest.Echo{})
	_ = u
	base := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return r
	}
	tests := []struct {
		name   string
		edit   func(r *http.Request)
		status int
	}{
		{"plain GET", func(r *http.Request) { r.Header.Del("Upgrade"); r.Header.Del("Connection") }, http.StatusUpgradeRequired},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, http.StatusMethodNotAllowed},
		{"no key", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, http.StatusBadRequest},
		{"short key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, http.StatusBadRequest},
		{"wrong version", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"cross origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := base()
			tt.edit(r)
			resp, err := srv.Client().Do(r.WithContext(t.Context()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusUpgradeRequired && tt.name == "wrong version" && resp.Header.Get("Sec-WebSocket-Version") != "13" {
				t.Errorf("426 without Sec-WebSocket-Version: 13")
			}
		})
	}
}

// TestReadLimitIsTheMessageSize checks the limit applies to the message,
// not to its compressed frame: random bytes grow a little when deflated.
func TestReadLimitIsTheMessageSize(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	random := make([]byte, limit+1)
	rand.Read(random)
	for _, comp := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%v", comp), func(t *testing.T) {
			t.Parallel()
			u, accepted := acceptedServer(t, &wschan.AcceptOptions{ReadLimit: limit, EnableCompression: comp})
			ch := wstest.Dial(t, u, &wschan.DialOptions{EnableCompression: comp})
			if err := ch.Send(t.Context(), wschan.Binary, random[:limit]); err != nil {
				t.Fatal(err)
			}
			if m := wstest.Read(t, ch); !bytes.Equal(m.Data, random[:limit]) {
				t.Fatalf("echo of a message at the limit: %d bytes", len(m.Data))
			}
			srv := serverChannel(t, accepted)
			if err := ch.Send(t.Context(), wschan.Binary, random); err != nil {
				t.Fatal(err)
			}
			wstest.WaitDone(t, srv)
			if !errors.Is(srv.Err(), wschan.ErrMessageTooBig) || srv.CloseCode() != 1009 {
				t.Fatalf("server Err() = %v code %v, want ErrMessageTooBig 1009", srv.Err(), srv.CloseCode())
			}
			wstest.WaitDone(t, ch)
			if ch.CloseCode() != 1009 {
				t.Fatalf("client CloseCode() = %v, want 1009", ch.CloseCode())
			}
		})
	}
}

// TestCompressionBomb sends small deflated frames that inflate far beyond
// the read limit: the answer is 1009, as for any message too big, on the
// server and on the client.
func TestCompressionBomb(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	bomb := make([]byte, 16<<20) // zeros: deflates to about 16 KiB
	t.Run("client sends", func(t *testing.T) {
		t.Parallel()
		u, accepted := acceptedServer(t, &wschan.AcceptOptions{ReadLimit: limit, EnableCompression: true})
		ch := wstest.Dial(t, u, &wschan.DialOptions{EnableCompression: true, ReadLimit: 32 << 20})
		srv := serverChannel(t, accepted)
		if err := ch.Send(t.Context(), wschan.Binary, bomb); err != nil {
			t.Fatal(err)
		}
		wstest.WaitDone(t, srv)
		if !errors.Is(srv.Err(), wschan.ErrMessageTooBig) || srv.CloseCode() != 1009 {
			t.Fatalf("server Err() = %v code %v, want ErrMessageTooBig 1009", srv.Err(), srv.CloseCode())
		}
		wstest.WaitDone(t, ch)
		if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || !ce.Remote || ce.Code != 1009 {
			t.Fatalf("client Err() = %v, want remote 1009", ch.Err())
		}
	})
	for _, corrupt := range []struct {
		name    string
		payload []byte
	}{
		{"reserved block type", []byte{0xff, 0xff, 0xff, 0xff}},          // BFINAL=1, BTYPE=11
		{"stored block cut short", []byte{0x00, 0x05, 0x00, 0xfa, 0xff}}, // 5 bytes announced, none follow
	} {
		t.Run("corrupt compressed data: "+corrupt.name, func(t *testing.T) {
			t.Parallel()
			u, accepted := acceptedServer(t, &wschan.AcceptOptions{ReadLimit: limit, EnableCompression: true})
			raw := wstest.DialRaw(t, u, http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}})
			srv := serverChannel(t, accepted)
			raw.WriteFrame(wstest.Frame{Fin: true, RSV: 4, Opcode: opBinary, Masked: true, Payload: corrupt.payload})
			if code, reason := raw.ReadClose(); code != 1007 {
				t.Fatalf("server closed with %d %q, want 1007", code, reason)
			}
			wstest.WaitDone(t, srv)
			if !errors.Is(srv.Err(), wschan.ErrProtocol) || srv.CloseCode() != 1007 {
				t.Fatalf("server Err() = %v code %v, want ErrProtocol 1007", srv.Err(), srv.CloseCode())
			}
		})
	}
	t.Run("a 1011 the application sends is left alone", func(t *testing.T) {
		t.Parallel()
		u, accepted := acceptedServer(t, &wschan.AcceptOptions{EnableCompression: true})
		raw := wstest.DialRaw(t, u, nil)
		srv := serverChannel(t, accepted)
		go srv.Close(wschan.StatusInternalError, "gws: message too large")
		code, reason := raw.ReadClose()
		if code != 1011 || reason != "gws: message too large" {
			t.Fatalf("peer got %d %q, want 1011 as sent", code, reason)
		}
		raw.WriteFrame(wstest.Frame{Fin: true, Opcode: opClose, Masked: true, Payload: wstest.ClosePayload(1011, "")})
		wstest.WaitDone(t, srv)
		if srv.CloseCode() != 1011 {
			t.Fatalf("CloseCode() = %v, want 1011", srv.CloseCode())
		}
	})
	t.Run("server sends", func(t *testing.T) {
		t.Parallel()
		u := handlerServer(t, &wschan.AcceptOptions{EnableCompression: true, ReadLimit: 32 << 20}, func(ch *wschan.Channel) {
			_ = ch.Send(context.Background(), wschan.Binary, bomb)
			_, _ = ch.Read(context.Background())
		})
		ch := wstest.Dial(t, u, &wschan.DialOptions{EnableCompression: true, ReadLimit: limit})
		wstest.WaitDone(t, ch)
		if !errors.Is(ch.Err(), wschan.ErrMessageTooBig) || ch.CloseCode() != 1009 {
			t.Fatalf("client Err() = %v code %v, want ErrMessageTooBig 1009", ch.Err(), ch.CloseCode())
		}
	})
}
