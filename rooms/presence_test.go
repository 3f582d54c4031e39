package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// cutBroker is a MemoryBroker whose presence updates can be cut off: it
// stands for a hub that died or lost its broker, which hubs in one process
// cannot do for real (natsbroker's tests do it to a NATS connection).
type cutBroker struct {
	*rooms.MemoryBroker
	cut atomic.Bool
}

func (b *cutBroker) PublishPresence(ctx context.Context, room string, u rooms.PresenceUpdate) error {
	if b.cut.Load() {
		return nil
	}
	return b.MemoryBroker.PublishPresence(ctx, room, u)
}

// events returns the events sent to c so far, without waiting: call it
// after synctest.Wait.
func events(t testing.TB, c *fakeConn) []rooms.Event {
	t.Helper()
	var evs []rooms.Event
	for {
		select {
		case m := <-c.msgs:
			var ev rooms.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatalf("event %q: %v", m.Data, err)
			}
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// brief is an event as the tests compare it: type, member (with the
// member's name for the test's), count.
func brief(evs []rooms.Event, names map[string]string) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Type
		if ev.Member != "" {
			name, ok := names[ev.Member]
			if !ok {
				name = "?"
			}
			s += " " + name
		}
		out = append(out, fmt.Sprintf("%s %d", s, ev.Members))
	}
	return out
}

// Hubs that share a Presence broker count each other's members: joins and
// leaves on one hub reach the envelope members of the other with the
// room's total; a hub that goes quiet stops counting once its TTL runs
// out, and counts again when it speaks; a hub that closes is dropped at
// once.
func TestPresenceAcrossHubs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		ctx := t.Context()
		mem := rooms.NewMemoryBroker(nil)
		westBroker := &cutBroker{MemoryBroker: mem}
		east := rooms.NewHub(&rooms.HubOptions{Broker: mem, PresenceInterval: interval})
		west := rooms.NewHub(&rooms.HubOptions{Broker: westBroker, PresenceInterval: interval})
		defer east.Close()
		env := &rooms.JoinOptions{Envelopes: true}
		names := map[string]string{}
		step := func(what string, conns []*fakeConn, want ...[]string) {
			t.Helper()
			synctest.Wait()
			for i, c := range conns {
				if got := brief(events(t, c), names); !slices.Equal(got, want[i]) {
					t.Errorf("%s: member %d got %q, want %q", what, i, got, want[i])
				}
			}
		}

		a := newFakeConn(64)
		ma, err := east.JoinWith(ctx, "r", a, env)
		if err != nil {
			t.Fatal(err)
		}
		names[ma.ID()] = "a"
		step("a joins on east", []*fakeConn{a}, []string{"welcome a 1"})
		b := newFakeConn(64)
		mb, err := west.JoinWith(ctx, "r", b, env)
		if err != nil {
			t.Fatal(err)
		}
		names[mb.ID()] = "b"
		// b's welcome comes before west has heard from east: east's count
		// follows as a members event.
		step("b joins on west", []*fakeConn{a, b}, []string{"join b 2"}, []string{"welcome b 1", "members 2"})

		raw := newFakeConn(64)
		if _, err := west.Join(ctx, "r", raw); err != nil {
			t.Fatal(err)
		}
		step("a member without envelopes joins on west", []*fakeConn{a, b}, []string{"members 3"}, []string{"members 3"})
		if e, w := east.Members("r"), west.Members("r"); e != 3 || w != 3 {
			t.Errorf("Members: east %d, west %d, want 3", e, w)
		}

		mb.Leave()
		step("b leaves", []*fakeConn{a}, []string{"leave b 2"})

		// West goes quiet: east counts its member for the TTL (three
		// intervals), then drops it at its next check.
		westBroker.cut.Store(true)
		time.Sleep(3 * interval)
		step("west quiet for the TTL", []*fakeConn{a}, nil)
		time.Sleep(interval)
		step("west quiet for longer", []*fakeConn{a}, []string{"members 1"})
		if n := east.Members("r"); n != 1 {
			t.Errorf("east counts %d members with west quiet, want 1", n)
		}

		// West speaks again at its next announcement.
		westBroker.cut.Store(false)
		time.Sleep(interval)
		step("west back", []*fakeConn{a}, []string{"members 2"})

		// A hub that closes says so: its members stop counting at once.
		if err := west.Close(); err != nil {
			t.Fatal(err)
		}
		step("west closed", []*fakeConn{a}, []string{"members 1"})
		if n := east.Members("r"); n != 1 {
			t.Errorf("east counts %d members after west closed, want 1", n)
		}
		if err := ma.Publish(ctx, wschan.Text, []byte("still here")); err != nil {
			t.Fatal(err)
		}
		step("a publishes", []*fakeConn{a}, []string{"message 0"})
	})
}

// A hub given no broker, or PresenceInterval -1, counts only its own
// members, and starts no goroutine for presence (goleak would see it).
func TestPresenceOff(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := rooms.NewMemoryBroker(nil)
	on := newHub(t, &rooms.HubOptions{Broker: mem})
	off := newHub(t, &rooms.HubOptions{Broker: mem, PresenceInterval: -1})
	if _, err := on.Join(ctx, "r", newFakeConn(8)); err != nil {
		t.Fatal(err)
	}
	c := newFakeConn(8)
	if _, err := off.JoinWith(ctx, "r", c, &rooms.JoinOptions{Envelopes: true}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, c); ev.Type != rooms.EventWelcome || ev.Members != 1 {
		t.Fatalf("welcome %+v, want 1 member: presence is off", ev)
	}
	noMore(t, off, "r", c)
	if n := off.Members("r"); n != 1 {
		t.Errorf("Members = %d, want 1", n)
	}
}
