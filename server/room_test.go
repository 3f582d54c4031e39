package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
	"github.com/wschan/wschan/server"
)

// roomTimeout bounds one room test.
const roomTimeout = 60 * time.Second

// roomMessage is message k of sender s: text and binary in turn, of varied
// sizes, starting with "s:k:" so a receiver can check per-sender order.
func roomMessage(s, k int) (wschan.MessageType, []byte) {
	head := fmt.Sprintf("%d:%d:", s, k)
	if k%2 == 0 {
		return wschan.Text, append([]byte(head), wstest.RandomText(1+k*37%4000, byte(s*31+k))...)
	}
	return wschan.Binary, append([]byte(head), wstest.RandomBytes(k*53%9000, byte(s*17+k))...)
}

// roomWaitMembers waits until the server counts n room members.
func roomWaitMembers(ctx context.Context, t testing.TB, srv *running, n int) metricsScrape {
	t.Helper()
	return metricsWait(ctx, t, srv.URL, fmt.Sprintf("%d room members", n), func(s metricsScrape) bool {
		v, ok := s.value("wschan_room_members")
		return ok && int(v) == n
	})
}

func TestRoomFanOut(t *testing.T) {
	t.Parallel()
	const members, perSender = 4, 40
	ctx := wstest.Context(t, roomTimeout)
	srv := start(t, server.Config{})
	var chans []*wschan.Channel
	for range members {
		chans = append(chans, wstest.Dial(t, srv.WS+"/ws/room/lobby", nil))
	}
	other := wstest.Dial(t, srv.WS+"/ws/room/elsewhere", nil) // must hear nothing
	roomWaitMembers(ctx, t, srv, members+1)

	var wg sync.WaitGroup
	for s, ch := range chans {
		wg.Go(func() {
			for k := range perSender {
				typ, data := roomMessage(s, k)
				if err := ch.Send(ctx, typ, data); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
			}
		})
		wg.Go(func() {
			wstest.ReadFanOut(t, ctx, ch, fmt.Sprintf("member %d", s), members, perSender, roomMessage)
		})
	}
	wg.Wait()
	total := members * perSender
	sc := metricsWait(ctx, t, srv.URL, "every delivery counted", func(s metricsScrape) bool {
		v, _ := s.value("wschan_room_messages_total", "direction", "out")
		return int(v) == total*members
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   int
	}{
		{"wschan_room_messages_total", []string{"direction", "in"}, total},
		{"wschan_messages_total", []string{"direction", "in"}, total},
		{"wschan_messages_total", []string{"direction", "out"}, total * members},
		{"wschan_rooms", nil, 2},
		{"wschan_room_members", nil, members + 1},
		{"wschan_room_slow_member_disconnects_total", nil, 0},
	} {
		if v, ok := sc.value(c.name, c.labels...); !ok || int(v) != c.want {
			t.Errorf("%s%v = %v (found %v), want %d", c.name, c.labels, v, ok, c.want)
		}
	}
	// The member of the other room heard nothing, and its room still works.
	if err := other.SendText(ctx, "alone"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, other); string(m.Data) != "alone" {
		t.Fatalf("the other room's member got %.30q first", m.Data)
	}
}

// A member that stops reading is closed once its queue is full; the others
// receive every message meanwhile and after.
func TestRoomSlowMember(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, roomTimeout)
	srv := start(t, server.Config{RoomQueue: 8, WriteTimeout: 2 * time.Second})
	url := srv.WS + "/ws/room/busy"
	sender, reader := wstest.Dial(t, url, nil), wstest.Dial(t, url, nil)
	slow := wstest.DialRaw(t, url, nil) // never reads
	_ = slow.Conn.SetDeadline(time.Time{})
	roomWaitMembers(ctx, t, srv, 3)

	// Each message waits until both readers have it, so only the member
	// that does not read can fall behind. Kernel socket buffers hold some
	// megabytes before its queue starts to fill.
	payload := wstest.RandomBytes(64<<10, 7)
	const most = 600 // 38 MiB: far more than loopback socket buffers hold
	k, slowGone := 0, false
	for ; k < most && !slowGone; k++ {
		payload[0], payload[1] = byte(k), byte(k>>8)
		if err := sender.Send(ctx, wschan.Binary, payload); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []*wschan.Channel{sender, reader} {
			m := wstest.Read(t, ch)
			wstest.CompareMessage(t, fmt.Sprintf("message %d", k), wschan.Binary, payload, m.Type, m.Data)
		}
		if k%16 == 15 {
			v, _ := metricsGet(ctx, t, srv.URL).value("wschan_room_members")
			slowGone = v == 2
		}
	}
	if !slowGone {
		t.Fatalf("after %d messages of 64 KiB the member that does not read is still in the room", most)
	}
	// The room goes on.
	for i := range 3 {
		if err := sender.SendText(ctx, fmt.Sprint("after ", i)); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []*wschan.Channel{sender, reader} {
			if m := wstest.Read(t, ch); string(m.Data) != fmt.Sprint("after ", i) {
				t.Fatalf("after the slow member left: got %.30q", m.Data)
			}
		}
	}
	metricsWait(ctx, t, srv.URL, "the slow member counted", func(s metricsScrape) bool {
		v, _ := s.value("wschan_room_slow_member_disconnects_total")
		return v == 1
	})
	// The slow client's connection ends: with a 1008 close frame saying why
	// if the socket had room for it, otherwise without one.
	_ = slow.Conn.SetReadDeadline(time.Now().Add(roomTimeout / 2))
	for {
		f, err := slow.ReadFrame()
		if err != nil {
			break // dropped after the write timeout: no close frame fit
		}
		if f.Opcode == 8 {
			code, reason := int(f.Payload[0])<<8|int(f.Payload[1]), string(f.Payload[2:])
			if code != 1008 || !strings.HasPrefix(reason, "too slow") {
				t.Errorf("slow member closed with %d %q, want 1008 too slow", code, reason)
			}
			break
		}
	}
}

// roomRefusal dials path and returns the HTTP refusal, failing the test if
// the dial succeeds.
func roomRefusal(t *testing.T, srv *running, path string) *wschan.HandshakeError {
	t.Helper()
	ch, err := wschan.Dial(t.Context(), srv.WS+path, nil)
	if err == nil {
		ch.Close(1000, "")
		t.Fatalf("Dial(%s) succeeded, want a refusal", path)
	}
	he, ok := errors.AsType[*wschan.HandshakeError](err)
	if !ok {
		t.Fatalf("Dial(%s) = %v, want an HTTP refusal", path, err)
	}
	return he
}

func TestRoomBadNames(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	tests := []struct {
		name, path, says string
	}{
		{"empty", "/ws/room/", "empty"},
		{"too long", "/ws/room/" + strings.Repeat("a", 65), "65 bytes long"},
		{"NATS token separator", "/ws/room/a.b", `'.'`},
		{"NATS wildcard", "/ws/room/*", `'*'`},
		{"NATS full wildcard", "/ws/room/%3E", `'>'`},
		{"NATS subject after a dot", "/ws/room/chat.%3E", `'.'`},
		{"space", "/ws/room/a%20b", `' '`},
		{"slash", "/ws/room/a/b", `'/'`},
		{"encoded slash", "/ws/room/a%2Fb", `'/'`},
		{"non-ASCII", "/ws/room/caf%C3%A9", "byte 0xc3"},
		{"control byte", "/ws/room/a%00", "byte 0x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			he := roomRefusal(t, srv, tt.path)
			if he.StatusCode != http.StatusBadRequest || !strings.Contains(string(he.Body), "invalid room name") || !strings.Contains(string(he.Body), tt.says) {
				t.Errorf("got %d %q, want 400 naming %s", he.StatusCode, he.Body, tt.says)
			}
		})
	}
}

func TestRoomMemberLimit(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, roomTimeout)
	srv := start(t, server.Config{MaxRoomMembers: 2})
	a := wstest.Dial(t, srv.WS+"/ws/room/small", nil)
	wstest.Dial(t, srv.WS+"/ws/room/small", nil)
	roomWaitMembers(ctx, t, srv, 2)
	he := roomRefusal(t, srv, "/ws/room/small")
	if he.StatusCode != http.StatusServiceUnavailable || he.Header.Get("Retry-After") == "" || !strings.Contains(string(he.Body), `room "small" is full (2 members)`) {
		t.Errorf("got %d %q (Retry-After %q), want 503 saying the room is full", he.StatusCode, he.Body, he.Header.Get("Retry-After"))
	}
	wstest.Dial(t, srv.WS+"/ws/room/other", nil) // the limit is per room
	// A place frees when a member leaves.
	a.Close(1000, "")
	roomWaitMembers(ctx, t, srv, 2)
	wstest.Dial(t, srv.WS+"/ws/room/small", nil)
}

func TestRoomLimit(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, roomTimeout)
	srv := start(t, server.Config{MaxRooms: 1})
	wstest.Dial(t, srv.WS+"/ws/room/first", nil)
	roomWaitMembers(ctx, t, srv, 1)
	he := roomRefusal(t, srv, "/ws/room/second")
	if he.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(he.Body), "room limit (1 rooms)") {
		t.Errorf("got %d %q, want 503 saying the server is at its room limit", he.StatusCode, he.Body)
	}
	wstest.Dial(t, srv.WS+"/ws/room/first", nil) // an existing room still takes members
}

func TestRoomMessageTooBig(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{MaxMessageSize: 100})
	ch := wstest.Dial(t, srv.WS+"/ws/room/r", nil)
	if err := ch.Send(t.Context(), wschan.Binary, make([]byte, 101)); err != nil {
		t.Fatal(err)
	}
	wstest.WaitDone(t, ch)
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != wschan.StatusMessageTooBig {
		t.Errorf("Err() = %v, want 1009", ch.Err())
	}
}

func TestRoomMessageRate(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{MessageRate: 1, MessageBurst: 2, LimitLoopback: true})
	ch := wstest.Dial(t, srv.WS+"/ws/room/r", nil)
	for i := range 5 {
		if err := ch.SendText(t.Context(), fmt.Sprint(i)); err != nil {
			break
		}
	}
	wstest.WaitDone(t, ch)
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != wschan.StatusPolicyViolation || !strings.Contains(ce.Reason, "rate") {
		t.Errorf("Err() = %v, want 1008 naming the rate", ch.Err())
	}
}

// Draining closes room members with 1001, like every other connection.
func TestRoomDrain(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	ch := wstest.Dial(t, srv.WS+"/ws/room/r", nil)
	roomWaitMembers(wstest.Context(t, roomTimeout), t, srv, 1)
	srv.stop()
	wstest.WaitDone(t, ch)
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); !ok || ce.Code != wschan.StatusGoingAway {
		t.Errorf("Err() = %v, want 1001", ch.Err())
	}
	if err := <-srv.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	srv.done <- nil // for the cleanup
}

// The envelope protocol is chosen on a room route wherever the client
// offers it, not only first; elsewhere the first offer is taken.
func TestRoomSubprotocolPreferred(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{})
	offer := &wschan.DialOptions{Subprotocols: []string{"chat", rooms.Subprotocol}}
	if ch := wstest.Dial(t, srv.WS+"/ws/room/pref", offer); ch.Protocol() != rooms.Subprotocol {
		t.Errorf("room route selected %q, want %q", ch.Protocol(), rooms.Subprotocol)
	}
	if ch := wstest.Dial(t, srv.WS+"/ws", offer); ch.Protocol() != "chat" {
		t.Errorf("echo route selected %q, want the first offer", ch.Protocol())
	}
}
