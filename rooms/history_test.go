package rooms_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
)

// nextEvent reads the next message sent to c as an envelope event.
func nextEvent(t testing.TB, c *fakeConn) rooms.Event {
	t.Helper()
	ctx := wstest.Context(t, testTimeout)
	m := c.next(t, ctx)
	var ev rooms.Event
	if m.Type != wschan.Text {
		t.Fatalf("got a %s message, want a text event", m.Type)
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatalf("event %q: %v", m.Data, err)
	}
	return ev
}

// noMore checks nothing more was sent to c: it publishes a marker to room
// through hub and expects it next.
func noMore(t testing.TB, hub *rooms.Hub, room string, c *fakeConn) {
	t.Helper()
	if err := hub.Publish(t.Context(), room, wschan.Text, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Type != rooms.EventMessage || ev.Text == nil || *ev.Text != "marker" {
		t.Fatalf("got %+v, want the marker message next", ev)
	}
}

// historyHub's queues have room for every message a test sends a member
// that does not read, plus the presence events, whenever the member's
// writer runs: a full queue would close it as too slow.
func historyHub(t testing.TB, size int, now func() time.Time) *rooms.Hub {
	return newHub(t, &rooms.HubOptions{QueueSize: 2*size + 64, Broker: rooms.NewMemoryBroker(&rooms.MemoryBrokerOptions{HistorySize: size, Now: now})})
}

func TestResume(t *testing.T) {
	t.Parallel()
	const size, published = 5, 10
	type want struct {
		gap      string // reason, "" for none
		from, to uint64
		replay   []uint64
		err      error
	}
	for _, tt := range []struct {
		name  string
		since func(epoch string) *rooms.StreamPosition
		noHis bool
		want  want
	}{
		{"fresh join", func(string) *rooms.StreamPosition { return nil }, false, want{}},
		{"caught up", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e, Offset: published} }, false, want{}},
		{"missed two", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e, Offset: published - 2} }, false, want{replay: []uint64{9, 10}}},
		{"missed all the history holds", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e, Offset: 5} }, false, want{replay: []uint64{6, 7, 8, 9, 10}}},
		{"history too short", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e, Offset: 1} }, false,
			want{gap: rooms.GapExpired, from: 2, to: 5, replay: []uint64{6, 7, 8, 9, 10}}},
		{"from the start", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e} }, false,
			want{gap: rooms.GapExpired, from: 1, to: 5, replay: []uint64{6, 7, 8, 9, 10}}},
		{"other epoch", func(string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: "before", Offset: 3} }, false,
			want{gap: rooms.GapEpoch, from: 1, to: published}},
		{"future sequence", func(e string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: e, Offset: published + 1} }, false,
			want{err: rooms.ErrFuturePosition}},
		{"no history", func(string) *rooms.StreamPosition { return &rooms.StreamPosition{Epoch: "x", Offset: 3} }, true,
			want{gap: rooms.GapNoHistory, from: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := wstest.Context(t, testTimeout)
			hub := historyHub(t, size, nil)
			if tt.noHis {
				hub = newHub(t, nil)
			}
			// A first member learns the epoch and stays, so the room lives.
			first := newFakeConn(64)
			if _, err := hub.JoinWith(ctx, "r", first, &rooms.JoinOptions{Envelopes: true}); err != nil {
				t.Fatal(err)
			}
			welcome := nextEvent(t, first)
			for k := range published {
				if err := hub.Publish(ctx, "r", wschan.Text, fmt.Appendf(nil, "m%d", k+1)); err != nil {
					t.Fatal(err)
				}
			}
			c := newFakeConn(64)
			m, err := hub.JoinWith(ctx, "r", c, &rooms.JoinOptions{Envelopes: true, Since: tt.since(welcome.Epoch)})
			if tt.want.err != nil {
				if !errors.Is(err, tt.want.err) {
					t.Fatalf("JoinWith = %v, want %v", err, tt.want.err)
				}
				if st := hub.Stats(); st.Members != 1 {
					t.Errorf("members after a refused join = %d, want 1", st.Members)
				}
				for range published {
					nextEvent(t, first)
				}
				noMore(t, hub, "r", first) // no presence event for the refused member
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ev := nextEvent(t, c)
			wantSeq := uint64(published)
			if tt.noHis {
				wantSeq = 0
			}
			if ev.Type != rooms.EventWelcome || ev.Member != m.ID() || ev.Seq != wantSeq || ev.Members != 2 || (ev.Epoch != welcome.Epoch) {
				t.Fatalf("first event %+v, want a welcome for %s at seq %d, epoch %q, 2 members", ev, m.ID(), wantSeq, welcome.Epoch)
			}
			if tt.want.gap != "" {
				ev := nextEvent(t, c)
				if ev.Type != rooms.EventGap || ev.Reason != tt.want.gap || ev.GapFrom != tt.want.from || ev.GapTo != tt.want.to {
					t.Fatalf("got %+v, want a gap %d..%d (%s)", ev, tt.want.from, tt.want.to, tt.want.gap)
				}
			}
			for _, seq := range tt.want.replay {
				ev := nextEvent(t, c)
				if ev.Type != rooms.EventMessage || ev.Seq != seq || ev.Text == nil || *ev.Text != fmt.Sprintf("m%d", seq) {
					t.Fatalf("got %+v, want message %d replayed", ev, seq)
				}
			}
			noMore(t, hub, "r", c)
			st := hub.Stats()
			resumed, gaps := uint64(0), uint64(0)
			if tt.since(welcome.Epoch) != nil {
				if tt.want.gap != "" {
					gaps = 1
				} else {
					resumed = 1
				}
			}
			if st.Resumed != resumed || st.Gaps != gaps || st.Replayed != uint64(len(tt.want.replay)) {
				t.Errorf("stats %+v, want %d resumed, %d gaps, %d replayed", st, resumed, gaps, len(tt.want.replay))
			}
		})
	}
}

// Messages published while a member resumes reach it once each, in order,
// whether they come from the history or live.
func TestResumeWhilePublishing(t *testing.T) {
	t.Parallel()
	// The resuming member's connection is plain, or takes half its
	// messages at once (TrySend) and queues the rest.
	for _, refuse := range []float64{1, 0.5} {
		t.Run(fmt.Sprintf("refused=%v", refuse), func(t *testing.T) {
			t.Parallel()
			const total = 400
			ctx := wstest.Context(t, testTimeout)
			hub := historyHub(t, total, nil)
			first := newFakeConn(total + 8)
			if _, err := hub.JoinWith(ctx, "r", first, &rooms.JoinOptions{Envelopes: true}); err != nil {
				t.Fatal(err)
			}
			epoch := nextEvent(t, first).Epoch
			var wg sync.WaitGroup
			wg.Go(func() {
				for k := range total {
					if err := hub.Publish(ctx, "r", wschan.Binary, []byte{byte(k), byte(k >> 8)}); err != nil {
						t.Error(err)
						return
					}
				}
			})
			var c *fakeConn
			var conn rooms.Conn
			if refuse == 1 {
				c = newFakeConn(2*total + 8)
				conn = c
			} else {
				tc := newTryConn(2*total+8, refuse, 7)
				c, conn = tc.fakeConn, tc
			}
			if _, err := hub.JoinWith(ctx, "r", conn, &rooms.JoinOptions{Envelopes: true, Since: &rooms.StreamPosition{Epoch: epoch}}); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if ev := nextEvent(t, c); ev.Type != rooms.EventWelcome {
				t.Fatalf("first event %+v, want the welcome", ev)
			}
			for want := uint64(1); want <= total; want++ {
				ev := nextEvent(t, c)
				if ev.Type != rooms.EventMessage || ev.Seq != want || len(ev.Binary) != 2 || uint64(ev.Binary[0])|uint64(ev.Binary[1])<<8 != want-1 {
					t.Fatalf("got %+v, want message %d", ev, want)
				}
			}
			noMore(t, hub, "r", c)
		})
	}
}

// History older than its TTL is gone: the room starts a new epoch, and a
// member resuming from the old one is told.
func TestHistoryExpires(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	hub := historyHub(t, 10, clock)
	c := newFakeConn(16)
	m, err := hub.JoinWith(ctx, "r", c, &rooms.JoinOptions{Envelopes: true})
	if err != nil {
		t.Fatal(err)
	}
	old := nextEvent(t, c).Epoch
	if err := hub.Publish(ctx, "r", wschan.Text, []byte("a")); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, c)
	m.Leave()
	mu.Lock()
	now = now.Add(rooms.DefaultHistoryTTL + time.Second)
	mu.Unlock()
	c2 := newFakeConn(16)
	if _, err := hub.JoinWith(ctx, "r", c2, &rooms.JoinOptions{Envelopes: true, Since: &rooms.StreamPosition{Epoch: old, Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c2); ev.Type != rooms.EventWelcome || ev.Epoch == old || ev.Seq != 0 {
		t.Fatalf("welcome %+v, want a new epoch at seq 0", ev)
	}
	if ev := nextEvent(t, c2); ev.Type != rooms.EventGap || ev.Reason != rooms.GapEpoch {
		t.Fatalf("got %+v, want an epoch gap", ev)
	}
}

// Envelope members hear who joins and leaves, with the count; a member
// without envelopes hears only messages.
func TestPresence(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, nil)
	raw := newFakeConn(16)
	if _, err := hub.Join(ctx, "r", raw); err != nil {
		t.Fatal(err)
	}
	a, b := newFakeConn(16), newFakeConn(16)
	ma, err := hub.JoinWith(ctx, "r", a, &rooms.JoinOptions{Envelopes: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, a); ev.Type != rooms.EventWelcome || ev.Members != 2 {
		t.Fatalf("a's welcome %+v, want 2 members", ev)
	}
	mb, err := hub.JoinWith(ctx, "r", b, &rooms.JoinOptions{Envelopes: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, b); ev.Type != rooms.EventWelcome || ev.Members != 3 {
		t.Fatalf("b's welcome %+v, want 3 members", ev)
	}
	if ev := nextEvent(t, a); ev.Type != rooms.EventJoin || ev.Member != mb.ID() || ev.Members != 3 {
		t.Fatalf("a got %+v, want b's join with 3 members", ev)
	}
	if err := mb.Publish(ctx, wschan.Text, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*fakeConn{a, b} {
		if ev := nextEvent(t, c); ev.Type != rooms.EventMessage || ev.From != mb.ID() || ev.Text == nil || *ev.Text != "hi" {
			t.Fatalf("got %+v, want b's message", ev)
		}
	}
	if m := raw.next(t, ctx); string(m.Data) != "hi" || m.Type != wschan.Text {
		t.Fatalf("the raw member got %s %q, want the message alone", m.Type, m.Data)
	}
	mb.Leave()
	if ev := nextEvent(t, a); ev.Type != rooms.EventLeave || ev.Member != mb.ID() || ev.Members != 2 {
		t.Fatalf("a got %+v, want b's leave with 2 members", ev)
	}
	if err := ma.Publish(ctx, wschan.Binary, nil); err != nil {
		t.Fatal(err)
	}
	if m := raw.next(t, ctx); m.Type != wschan.Binary || len(m.Data) != 0 {
		t.Fatalf("the raw member got %s %q, want the empty binary message (no presence events)", m.Type, m.Data)
	}
}

func TestParseCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, in string
		want     rooms.Command
		bad      string // part of the error, "" for none
	}{
		{"join", `{"type":"join"}`, rooms.Command{Type: "join"}, ""},
		{"resume", `{"type":"join","epoch":"e1","seq":42}`, rooms.Command{Type: "join", Since: &rooms.StreamPosition{Epoch: "e1", Offset: 42}}, ""},
		{"text", `{"type":"message","text":"héllo"}`, rooms.Command{Type: "message", MessageType: wschan.Text, Data: []byte("héllo")}, ""},
		{"binary", `{"type":"message","binary":"AAH/"}`, rooms.Command{Type: "message", MessageType: wschan.Binary, Data: []byte{0, 1, 255}}, ""},
		{"empty text", `{"type":"message","text":""}`, rooms.Command{Type: "message", MessageType: wschan.Text, Data: []byte{}}, ""},
		{"not JSON", `join`, rooms.Command{}, "JSON object"},
		{"truncated", `{"type":"join","seq":`, rooms.Command{}, "JSON object"},
		{"no type", `{"seq":3}`, rooms.Command{}, `no "type"`},
		{"unknown type", `{"type":"leave"}`, rooms.Command{}, "unknown type"},
		{"seq without epoch", `{"type":"join","seq":3}`, rooms.Command{}, "both"},
		{"epoch without seq", `{"type":"join","epoch":"e"}`, rooms.Command{}, "both"},
		{"negative seq", `{"type":"join","epoch":"e","seq":-1}`, rooms.Command{}, "whole number"},
		{"fractional seq", `{"type":"join","epoch":"e","seq":1.5}`, rooms.Command{}, "whole number"},
		{"seq as a string", `{"type":"join","epoch":"e","seq":"3"}`, rooms.Command{}, "whole number"},
		{"seq too large", `{"type":"join","epoch":"e","seq":18446744073709551616}`, rooms.Command{}, "whole number"},
		{"long epoch", `{"type":"join","epoch":"` + strings.Repeat("e", 65) + `","seq":1}`, rooms.Command{}, "longer"},
		{"join with text", `{"type":"join","text":"x"}`, rooms.Command{}, "no text"},
		{"message with both", `{"type":"message","text":"x","binary":"AA=="}`, rooms.Command{}, "exactly one"},
		{"message with neither", `{"type":"message"}`, rooms.Command{}, "exactly one"},
		{"bad base64", `{"type":"message","binary":"!!"}`, rooms.Command{}, "JSON object"},
		{"message with seq", `{"type":"message","text":"x","seq":1}`, rooms.Command{}, "no epoch"},
		{"not UTF-8", "{\"type\":\"join\xff\"}", rooms.Command{}, "UTF-8"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := rooms.ParseCommand([]byte(tt.in))
			if tt.bad != "" {
				if !errors.Is(err, rooms.ErrBadCommand) || !strings.Contains(err.Error(), tt.bad) {
					t.Fatalf("ParseCommand = %v, want ErrBadCommand mentioning %q", err, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.want.Type || got.MessageType != tt.want.MessageType || string(got.Data) != string(tt.want.Data) ||
				(got.Since == nil) != (tt.want.Since == nil) || got.Since != nil && *got.Since != *tt.want.Since {
				t.Fatalf("ParseCommand = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseCommand feeds any bytes to ParseCommand: no panic, an error
// or a command that makes sense. Seeds are valid commands, also cut in two.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{`{"type":"join"}`, `{"type":"join","epoch":"abc","seq":7}`, `{"type":"message","text":"hi"}`, `{"type":"message","binary":"AAE="}`} {
		f.Add([]byte(s))
		f.Add([]byte(s[:len(s)/2]))
		f.Add([]byte(s[len(s)/2:]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := rooms.ParseCommand(b)
		if err != nil {
			if !errors.Is(err, rooms.ErrBadCommand) {
				t.Fatalf("error %v does not match ErrBadCommand", err)
			}
			return
		}
		switch c.Type {
		case "join":
			if c.Data != nil {
				t.Fatalf("join with data: %+v", c)
			}
		case "message":
			if c.MessageType != wschan.Text && c.MessageType != wschan.Binary {
				t.Fatalf("message of type %v", c.MessageType)
			}
		default:
			t.Fatalf("command type %q", c.Type)
		}
	})
}
