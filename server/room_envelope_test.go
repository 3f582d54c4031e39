package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
	"github.com/wschan/wschan/server"
)

// envDial connects to a room with the envelope protocol.
func envDial(t *testing.T, url string) *wschan.Channel {
	t.Helper()
	ch := wstest.Dial(t, url, &wschan.DialOptions{Subprotocols: []string{rooms.Subprotocol}})
	if ch.Protocol() != rooms.Subprotocol {
		t.Fatalf("subprotocol %q, want %q", ch.Protocol(), rooms.Subprotocol)
	}
	return ch
}

func sendCmd(t *testing.T, ch *wschan.Channel, cmd string) {
	t.Helper()
	if err := ch.SendText(t.Context(), cmd); err != nil {
		t.Fatal(err)
	}
}

func readEvent(t *testing.T, ch *wschan.Channel) rooms.Event {
	t.Helper()
	m := wstest.Read(t, ch)
	var ev rooms.Event
	if m.Type != wschan.Text {
		t.Fatalf("got %s %q, want a text event", m.Type, m.Data)
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatalf("event %q: %v", m.Data, err)
	}
	return ev
}

func expectEvent(t *testing.T, ch *wschan.Channel, what string, ok func(rooms.Event) bool) rooms.Event {
	t.Helper()
	ev := readEvent(t, ch)
	if !ok(ev) {
		t.Fatalf("got %+v, want %s", ev, what)
	}
	return ev
}

// Two envelope members and one plain one: who sent what, presence with
// the count, and a member that comes back gets what it missed.
func TestRoomEnvelope(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, roomTimeout)
	srv := start(t, server.Config{})
	url := srv.WS + "/ws/room/chat"
	plain := wstest.Dial(t, url, nil)
	a := envDial(t, url)
	sendCmd(t, a, `{"type":"join"}`)
	wa := expectEvent(t, a, "a welcome with 2 members", func(e rooms.Event) bool {
		return e.Type == rooms.EventWelcome && e.Members == 2 && e.Epoch != "" && e.Seq == 0
	})
	b := envDial(t, url)
	sendCmd(t, b, `{"type":"join"}`)
	wb := expectEvent(t, b, "b's welcome", func(e rooms.Event) bool { return e.Type == rooms.EventWelcome && e.Members == 3 })
	expectEvent(t, a, "b's join", func(e rooms.Event) bool { return e.Type == rooms.EventJoin && e.Member == wb.Member && e.Members == 3 })

	sendCmd(t, a, `{"type":"message","text":"<b>hi</b>"}`)
	if err := b.Send(ctx, wschan.Binary, []byte{1, 2, 3}); err != nil { // binary goes as it is
		t.Fatal(err)
	}
	if err := plain.SendText(ctx, "from plain"); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, ch := range []*wschan.Channel{a, b} {
		got := map[string]string{}
		for range 3 {
			ev := expectEvent(t, ch, "a message", func(e rooms.Event) bool { return e.Type == rooms.EventMessage && e.Seq > 0 })
			if ev.Text != nil {
				got[ev.From] = *ev.Text
			} else {
				got[ev.From] = fmt.Sprintf("%v", ev.Binary)
			}
			last = max(last, ev.Seq)
		}
		if got[wa.Member] != "<b>hi</b>" || got[wb.Member] != "[1 2 3]" || len(got) != 3 {
			t.Fatalf("senders and payloads %v", got)
		}
	}
	for range 3 { // the plain member gets the payloads alone
		m := wstest.Read(t, plain)
		if s := string(m.Data); s != "<b>hi</b>" && s != "\x01\x02\x03" && s != "from plain" {
			t.Fatalf("plain member got %q", m.Data)
		}
	}

	// b goes; two messages while it is away; it comes back with its last seq.
	_ = b.Close(wschan.StatusNormalClosure, "")
	expectEvent(t, a, "b's leave", func(e rooms.Event) bool { return e.Type == rooms.EventLeave && e.Member == wb.Member && e.Members == 2 })
	for _, s := range []string{"one", "two"} {
		sendCmd(t, a, fmt.Sprintf(`{"type":"message","text":%q}`, s))
		expectEvent(t, a, s, func(e rooms.Event) bool { return e.Text != nil && *e.Text == s })
	}
	b2 := envDial(t, url)
	sendCmd(t, b2, fmt.Sprintf(`{"type":"join","epoch":%q,"seq":%d}`, wb.Epoch, last))
	expectEvent(t, b2, "a welcome at the latest seq", func(e rooms.Event) bool { return e.Type == rooms.EventWelcome && e.Seq == last+2 })
	for i, s := range []string{"one", "two"} {
		expectEvent(t, b2, s+" replayed", func(e rooms.Event) bool {
			return e.Type == rooms.EventMessage && e.Seq == last+1+uint64(i) && e.From == wa.Member && e.Text != nil && *e.Text == s
		})
	}
	sc := metricsWait(ctx, t, srv.URL, "the resume counted", func(s metricsScrape) bool {
		v, _ := s.value("wschan_room_resumes_total", "result", "hit")
		return v == 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wschan_room_resumes_total", []string{"result", "gap"}, 0},
		{"wschan_room_history_messages_total", nil, 2},
	} {
		if v, ok := sc.value(c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
}

// Bad commands get an error event and lose nothing: the client can still
// join (or resume) on the same connection, and its messages go out.
func TestRoomEnvelopeBadInput(t *testing.T) {
	t.Parallel()
	srv := start(t, server.Config{RoomHistory: 3})
	// fill joins a room and sends it 5 messages, so only 3..5 are kept
	// in its history; the member stays so the room lives. It returns the
	// room's epoch.
	fill := func(t *testing.T, room string) string {
		filler := envDial(t, srv.WS+"/ws/room/"+room)
		sendCmd(t, filler, `{"type":"join"}`)
		welcome := readEvent(t, filler)
		for k := range 5 {
			sendCmd(t, filler, fmt.Sprintf(`{"type":"message","text":"m%d"}`, k+1))
			readEvent(t, filler)
		}
		return welcome.Epoch
	}
	type step struct {
		send string
		want func(rooms.Event) bool
		what string
	}
	isError := func(part string) func(rooms.Event) bool {
		return func(e rooms.Event) bool { return e.Type == rooms.EventError && strings.Contains(e.Error, part) }
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"malformed resume", []step{{`{"type":"join","epoch":"x","seq":"five"}`, isError("whole number"), "an error about seq"}}},
		{"resume without epoch", []step{{`{"type":"join","seq":4}`, isError(`both "epoch" and "seq"`), "an error naming both fields"}}},
		{"not JSON", []step{{`hello`, isError("JSON object"), "an error asking for JSON"}}},
		{"message before join", []step{{`{"type":"message","text":"early"}`, isError("join first"), "join first"}}},
		{"sequence from the future", []step{{`{"type":"join","epoch":"EPOCH","seq":99}`, isError("ahead of the room"), "an error: seq ahead"}}},
		{"different epoch", []step{
			{`{"type":"join","epoch":"another","seq":2}`, func(e rooms.Event) bool { return e.Type == rooms.EventWelcome && e.Seq == 5 }, "the welcome"},
			{"", func(e rooms.Event) bool {
				return e.Type == rooms.EventGap && e.Reason == rooms.GapEpoch && e.GapTo == 5
			}, "an epoch gap"},
		}},
		{"history too short", []step{
			{`{"type":"join","epoch":"EPOCH","seq":1}`, func(e rooms.Event) bool { return e.Type == rooms.EventWelcome }, "the welcome"},
			{"", func(e rooms.Event) bool {
				return e.Type == rooms.EventGap && e.Reason == rooms.GapExpired && e.GapFrom == 2 && e.GapTo == 2
			}, "a gap for message 2"},
			{"", func(e rooms.Event) bool { return e.Seq == 3 && e.Text != nil && *e.Text == "m3" }, "m3 replayed"},
		}},
		{"join twice", []step{
			{`{"type":"join"}`, func(e rooms.Event) bool { return e.Type == rooms.EventWelcome }, "the welcome"},
			{`{"type":"join"}`, isError("already joined"), "an error: already joined"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			room := strings.ReplaceAll(tt.name, " ", "-")
			epoch := fill(t, room)
			ch := envDial(t, srv.WS+"/ws/room/"+room)
			for _, s := range tt.steps {
				if s.send != "" {
					sendCmd(t, ch, strings.ReplaceAll(s.send, "EPOCH", epoch))
				}
				expectEvent(t, ch, s.what, s.want)
			}
			// Nothing lost: the connection still works.
			sendCmd(t, ch, `{"type":"join"}`)
			for {
				ev := readEvent(t, ch)
				if ev.Type == rooms.EventWelcome || ev.Type == rooms.EventError && strings.Contains(ev.Error, "already joined") {
					break
				}
			}
			text := "still here: " + tt.name
			sendCmd(t, ch, fmt.Sprintf(`{"type":"message","text":%q}`, text))
			for {
				ev := readEvent(t, ch)
				if ev.Type == rooms.EventMessage && ev.Text != nil && *ev.Text == text {
					break
				}
			}
		})
	}
}
