package natsbroker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wschan/wschan/internal/natstest"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
)

// waitEvent reads envelope events sent to c until one satisfies want, and
// fails the test with what it read instead when ctx ends first.
func waitEvent(t testing.TB, ctx context.Context, c chanConn, what string, want func(rooms.Event) bool) {
	t.Helper()
	var seen []string
	for {
		select {
		case m := <-c:
			var ev rooms.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatalf("event %q: %v", m.Data, err)
			}
			if want(ev) {
				return
			}
			seen = append(seen, string(m.Data))
		case <-ctx.Done():
			t.Fatalf("waiting for %s; got only %q", what, seen)
		}
	}
}

// Hubs on brokers connected to different nodes of a cluster count each
// other's members: an envelope member on one hears joins and leaves on the
// other with the room's total, and when one hub loses NATS for good its
// members stop counting on the other once their TTL has run out.
func TestClusterPresence(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond // TTL 600ms
	ctx := wstest.Context(t, testTimeout)
	cluster := natstest.StartCluster(t, 3)
	eastBroker, westBroker := connect(t, cluster.Nodes[0].URL), connect(t, cluster.Nodes[1].URL)
	east := rooms.NewHub(&rooms.HubOptions{Broker: eastBroker, PresenceInterval: interval})
	west := rooms.NewHub(&rooms.HubOptions{Broker: westBroker, PresenceInterval: interval})
	t.Cleanup(func() { east.Close(); west.Close() })
	env := &rooms.JoinOptions{Envelopes: true}

	a, b := make(chanConn, 64), make(chanConn, 64)
	if _, err := east.JoinWith(ctx, "r", a, env); err != nil {
		t.Fatal(err)
	}
	if _, err := west.JoinWith(ctx, "r", b, env); err != nil {
		t.Fatal(err)
	}
	// Each hub's first updates may go out before the other's interest has
	// crossed the cluster; the announcements make up for it.
	waitFor(t, ctx, "both hubs to count both members", func() bool { return east.Members("r") == 2 && west.Members("r") == 2 })
	waitEvent(t, ctx, a, "a to hear of 2 members", func(ev rooms.Event) bool { return ev.Members == 2 })
	waitEvent(t, ctx, b, "b to hear of 2 members", func(ev rooms.Event) bool { return ev.Members == 2 })

	c := make(chanConn, 64)
	mc, err := west.JoinWith(ctx, "r", c, env)
	if err != nil {
		t.Fatal(err)
	}
	for name, conn := range map[string]chanConn{"a (east)": a, "b (west)": b} {
		waitEvent(t, ctx, conn, name+" to hear c join with 3 members", func(ev rooms.Event) bool {
			return ev.Type == rooms.EventJoin && ev.Member == mc.ID() && ev.Members == 3
		})
	}
	mc.Leave()
	waitEvent(t, ctx, a, "a to hear c leave with 2 members", func(ev rooms.Event) bool {
		return ev.Type == rooms.EventLeave && ev.Member == mc.ID() && ev.Members == 2
	})

	// West loses NATS for good (its hub lives on, unheard): east stops
	// counting b once b's TTL has run out.
	if err := westBroker.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, a, "a to hear the count drop to 1", func(ev rooms.Event) bool {
		return ev.Type == rooms.EventMembers && ev.Members == 1
	})
	if n := east.Members("r"); n != 1 {
		t.Errorf("east counts %d members, want 1", n)
	}
}

// A presence update with a room name that is not one is refused, as a
// publication is.
func TestPresenceSubjectInjectionRefused(t *testing.T) {
	t.Parallel()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	b := connect(t, "nats://"+addr)
	for _, room := range []string{"a.b", "*", ">"} {
		u := rooms.PresenceUpdate{Hub: "h", Members: 1, TTL: time.Second}
		if err := b.PublishPresence(t.Context(), room, u); err == nil {
			t.Errorf("PublishPresence(%q) succeeded", room)
		}
		if _, err := b.SubscribePresence(t.Context(), room, func(rooms.PresenceUpdate) {}); err == nil {
			t.Errorf("SubscribePresence(%q) succeeded", room)
		}
	}
}
