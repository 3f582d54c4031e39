package natsbroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/natstest"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
	"github.com/wschan/wschan/rooms/natsbroker"
)

func nextEvent(t testing.TB, ctx context.Context, c chanConn) rooms.Event {
	t.Helper()
	select {
	case m := <-c:
		var ev rooms.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("event %q: %v", m.Data, err)
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no event arrived")
		return rooms.Event{}
	}
}

// History on JetStream in a three-node cluster: members on hubs connected
// to different nodes see the same positions, and one that resumes gets
// what it missed from the stream, or a gap where the history (5 messages)
// does not reach.
func TestJetStreamHistory(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	cluster := natstest.StartJetStreamCluster(t, 3)
	var hubs []*rooms.Hub
	for _, node := range cluster.Nodes {
		b, err := natsbroker.Connect(natsbroker.Options{URLs: node.URL, ReconnectWait: 100 * time.Millisecond,
			HistorySize: 5, HistoryReplicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		waitFor(t, ctx, "a connection to "+node.Name, func() bool { return b.Check() == nil })
		// Presence off: the test counts the events history gives, and a
		// member joining on another hub would add a count update to them
		// (TestClusterPresence covers presence).
		h := rooms.NewHub(&rooms.HubOptions{Broker: b, PresenceInterval: -1})
		t.Cleanup(func() { h.Close() })
		hubs = append(hubs, h)
	}
	a := make(chanConn, 64)
	if _, err := hubs[0].JoinWith(ctx, "hist", a, &rooms.JoinOptions{Envelopes: true}); err != nil {
		t.Fatal(err)
	}
	welcome := nextEvent(t, ctx, a)
	if welcome.Type != rooms.EventWelcome || welcome.Epoch == "" {
		t.Fatalf("welcome %+v, want one with an epoch", welcome)
	}
	// Publish from the third node's hub (no members there) until a hears
	// it: the stream then takes the room's messages from every node.
	var last uint64
	for last == 0 {
		if err := hubs[2].Publish(ctx, "hist", wschan.Text, []byte("warm-up")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-a:
			var ev rooms.Event
			_ = json.Unmarshal(m.Data, &ev)
			last = ev.Seq
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("the room's stream never took a message")
		}
	}
	for k := range 8 {
		if err := hubs[2].Publish(ctx, "hist", wschan.Text, fmt.Appendf(nil, "m%d", k+1)); err != nil {
			t.Fatal(err)
		}
	}
	var base uint64 // m1 is base+1 ... m8 is base+8
	for k := 0; k < 8; {
		ev := nextEvent(t, ctx, a)
		if ev.Text != nil && *ev.Text == "warm-up" {
			continue
		}
		if k == 0 {
			base = ev.Seq - 1
		}
		if ev.Type != rooms.EventMessage || ev.Seq != base+uint64(k)+1 || *ev.Text != fmt.Sprintf("m%d", k+1) {
			t.Fatalf("live event %+v (%q), want m%d at seq %d", ev, *ev.Text, k+1, base+uint64(k)+1)
		}
		k++
	}
	type want struct {
		gap            string
		gapFrom, gapTo uint64
		replayFrom     uint64 // first replayed seq; 0 for none
		err            error
	}
	top := base + 8
	for _, tt := range []struct {
		name  string
		since rooms.StreamPosition
		want  want
	}{
		{"missed three", rooms.StreamPosition{Epoch: welcome.Epoch, Offset: top - 3}, want{replayFrom: top - 2}},
		{"caught up", rooms.StreamPosition{Epoch: welcome.Epoch, Offset: top}, want{}},
		{"history too short", rooms.StreamPosition{Epoch: welcome.Epoch, Offset: top - 7}, want{gap: rooms.GapExpired, gapFrom: top - 6, gapTo: top - 5, replayFrom: top - 4}},
		{"other epoch", rooms.StreamPosition{Epoch: "elsewhere", Offset: 2}, want{gap: rooms.GapEpoch, gapFrom: 1, gapTo: top}},
		{"future sequence", rooms.StreamPosition{Epoch: welcome.Epoch, Offset: top + 10}, want{err: rooms.ErrFuturePosition}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := make(chanConn, 64)
			m, err := hubs[1].JoinWith(ctx, "hist", c, &rooms.JoinOptions{Envelopes: true, Since: &tt.since})
			if tt.want.err != nil {
				if !errors.Is(err, tt.want.err) {
					t.Fatalf("JoinWith = %v, want %v", err, tt.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Leave()
			if ev := nextEvent(t, ctx, c); ev.Type != rooms.EventWelcome || ev.Seq != top || ev.Epoch != welcome.Epoch {
				t.Fatalf("welcome %+v, want seq %d in epoch %s", ev, top, welcome.Epoch)
			}
			if tt.want.gap != "" {
				if ev := nextEvent(t, ctx, c); ev.Type != rooms.EventGap || ev.Reason != tt.want.gap || ev.GapFrom != tt.want.gapFrom || ev.GapTo != tt.want.gapTo {
					t.Fatalf("got %+v, want a %s gap %d..%d", ev, tt.want.gap, tt.want.gapFrom, tt.want.gapTo)
				}
			}
			if tt.want.replayFrom != 0 {
				for seq := tt.want.replayFrom; seq <= top; seq++ {
					ev := nextEvent(t, ctx, c)
					if ev.Type != rooms.EventMessage || ev.Seq != seq || *ev.Text != fmt.Sprintf("m%d", seq-base) {
						t.Fatalf("got %+v, want m%d replayed at seq %d", ev, seq-base, seq)
					}
				}
			}
			if len(c) != 0 {
				t.Fatalf("%d more events, want none", len(c))
			}
		})
	}
}
