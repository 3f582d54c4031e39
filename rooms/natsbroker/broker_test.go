package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/natstest"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
	"github.com/wschan/wschan/rooms/natsbroker"
)

const testTimeout = 60 * time.Second

// chanConn is a rooms.Conn that hands every message to a Go channel.
type chanConn chan wschan.Message

func (c chanConn) Send(ctx context.Context, typ wschan.MessageType, data []byte) error {
	select {
	case c <- wschan.Message{Type: typ, Data: slices.Clone(data)}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (chanConn) Close(wschan.StatusCode, string) error { return nil }

func connect(t testing.TB, urls string) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.Connect(natsbroker.Options{URLs: urls, ReconnectWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s", what)
		}
	}
}

// warmUp publishes "warm-up" messages from pub until every conn has one:
// room interest has then spread across the cluster. It drains them.
func warmUp(t testing.TB, ctx context.Context, pub *rooms.Hub, room string, conns []chanConn) {
	t.Helper()
	got := make([]bool, len(conns))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for slices.Contains(got, false) {
		if err := pub.Publish(ctx, room, wschan.Text, []byte("warm-up")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("room interest never spread: %v", got)
		}
		for i, c := range conns {
			for len(c) > 0 {
				if m := <-c; string(m.Data) == "warm-up" {
					got[i] = true
				}
			}
		}
	}
}

// readAll reads n messages from c, skipping warm-ups, and checks each
// sender's messages arrive in order, once.
func readAll(t testing.TB, ctx context.Context, c chanConn, senders, n int) {
	t.Helper()
	next := make([]int, senders)
	for got := 0; got < senders*n; {
		select {
		case m := <-c:
			if string(m.Data) == "warm-up" {
				continue
			}
			var s, k int
			if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &s, &k); err != nil || s >= senders {
				t.Fatalf("unexpected message %q", m.Data)
			}
			if k != next[s] {
				t.Fatalf("from sender %d got %d, want %d (each message once, in order)", s, k, next[s])
			}
			next[s]++
			got++
		case <-ctx.Done():
			t.Fatalf("after %v of %d messages per sender: %v", next, n, ctx.Err())
		}
	}
}

// Hubs on brokers connected to different nodes of a three-node cluster
// share a room: every member receives every message once, in per-sender
// order.
func TestClusterFanOut(t *testing.T) {
	t.Parallel()
	const n = 200
	ctx := wstest.Context(t, testTimeout)
	cluster := natstest.StartCluster(t, 3)
	var hubs []*rooms.Hub
	var members []*rooms.Member
	var conns []chanConn
	var brokers []*natsbroker.Broker
	for _, node := range cluster.Nodes {
		b := connect(t, node.URL)
		brokers = append(brokers, b)
		h := rooms.NewHub(&rooms.HubOptions{Broker: b, QueueSize: 4 * n})
		t.Cleanup(func() { h.Close() })
		for range 2 {
			c := make(chanConn, 4*n)
			m, err := h.Join(ctx, "lobby", c)
			if err != nil {
				t.Fatal(err)
			}
			members, conns = append(members, m), append(conns, c)
		}
		hubs = append(hubs, h)
	}
	for _, h := range hubs {
		warmUp(t, ctx, h, "lobby", conns)
	}
	var wg sync.WaitGroup
	senders := []*rooms.Member{members[0], members[2], members[4]} // one per node
	for s, m := range senders {
		wg.Go(func() {
			for k := range n {
				if err := m.Publish(ctx, wschan.Text, fmt.Appendf(nil, "%d:%d", s, k)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, c := range conns {
		wg.Go(func() { readAll(t, ctx, c, len(senders), n) })
	}
	wg.Wait()
	for i, b := range brokers {
		if b.Lost() != 0 || b.Check() != nil {
			t.Errorf("broker %d: lost %d, check %v", i, b.Lost(), b.Check())
		}
	}
}

// A node dies: the broker connected to it moves to a live node, rooms work
// again, and what it missed meanwhile is counted.
func TestNodeKilled(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	cluster := natstest.StartCluster(t, 3)
	var statuses []error
	var mu sync.Mutex
	victim, err := natsbroker.Connect(natsbroker.Options{URLs: cluster.Nodes[0].URL + "," + cluster.Nodes[1].URL,
		ReconnectWait: 50 * time.Millisecond, OnStatus: func(err error) { mu.Lock(); statuses = append(statuses, err); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Close() })
	waitFor(t, ctx, "the first connection", func() bool { return victim.Check() == nil })
	other := connect(t, cluster.Nodes[2].URL)
	hv := rooms.NewHub(&rooms.HubOptions{Broker: victim})
	ho := rooms.NewHub(&rooms.HubOptions{Broker: other})
	t.Cleanup(func() { hv.Close(); ho.Close() })
	cv, co := make(chanConn, 1000), make(chanConn, 1000)
	if _, err := hv.Join(ctx, "r", cv); err != nil {
		t.Fatal(err)
	}
	if _, err := ho.Join(ctx, "r", co); err != nil {
		t.Fatal(err)
	}
	warmUp(t, ctx, ho, "r", []chanConn{cv, co})

	// Kill whichever node the victim is on.
	on := victim.ConnectedURL()
	killed := false
	for _, node := range cluster.Nodes[:2] {
		if node.URL == on {
			node.Kill()
			killed = true
		}
	}
	if !killed {
		t.Fatalf("victim on %q, not on node 1 or 2", on)
	}
	// The status callback, not Check: the victim may be back on a live
	// node before a poll of Check would see it away.
	waitFor(t, ctx, "the victim to notice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(statuses, func(e error) bool { return e != nil })
	})
	const during = 5
	for i := range during {
		if err := ho.Publish(ctx, "r", wschan.Text, fmt.Appendf(nil, "during %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the victim to reconnect", func() bool { return victim.Check() == nil })
	// Publish from the same hub until the victim hears it again: a gap in
	// its sequence is counted then. Whatever of "during" the victim did not
	// receive (it may have been back in time for some) must be counted lost:
	// nothing is missed silently.
	received := 0
	back := false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !back {
		if err := ho.Publish(ctx, "r", wschan.Text, []byte("warm-up")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the victim never heard the room again")
		}
		for len(cv) > 0 {
			switch m := <-cv; {
			case string(m.Data) == "warm-up":
				back = true
			case strings.HasPrefix(string(m.Data), "during "):
				received++
			}
		}
	}
	if lost := victim.Lost(); received+int(lost) < during {
		t.Errorf("victim received %d and counted %d lost of the %d published while it was away", received, lost, during)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(statuses) < 3 || statuses[len(statuses)-1] != nil || !slices.ContainsFunc(statuses, func(e error) bool { return e != nil && strings.Contains(e.Error(), "reconnecting") }) {
		t.Errorf("status changes %v: want connected, lost (reconnecting), connected", statuses)
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	b := connect(t, "nats://"+addr)
	err = b.Check()
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Check() = %v, want an error naming %s", err, addr)
	}
	// Publishing waits in the reconnect buffer: no error, nothing lost yet.
	if _, err := b.Publish(t.Context(), "r", rooms.Publication{Type: wschan.Text, Data: []byte("x")}); err != nil {
		t.Errorf("Publish while connecting = %v", err)
	}
}

func TestSubjectInjectionRefused(t *testing.T) {
	t.Parallel()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	b := connect(t, "nats://"+addr)
	for _, room := range []string{"a.b", "*", ">", "lobby.>", "a b", ""} {
		t.Run(fmt.Sprintf("%q", room), func(t *testing.T) {
			t.Parallel()
			if _, err := b.Publish(t.Context(), room, rooms.Publication{Type: wschan.Text}); !errors.Is(err, rooms.ErrInvalidName) {
				t.Errorf("Publish = %v, want ErrInvalidName", err)
			}
			if _, err := b.Subscribe(t.Context(), room, func(rooms.Publication) {}); !errors.Is(err, rooms.ErrInvalidName) {
				t.Errorf("Subscribe = %v, want ErrInvalidName", err)
			}
		})
	}
}

func TestConnectBadOptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts natsbroker.Options
		says string
	}{
		{"no URL", natsbroker.Options{}, "no NATS URL"},
		{"wildcard prefix", natsbroker.Options{URLs: "nats://127.0.0.1:1", Prefix: "rooms.*"}, "subject prefix"},
		{"missing nkey file", natsbroker.Options{URLs: "nats://127.0.0.1:1", NKeyFile: "/nonexistent/seed.nk"}, "nkey"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := natsbroker.Connect(tt.opts)
			if err == nil {
				b.Close()
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Connect = %v, want it to mention %q", err, tt.says)
			}
		})
	}
}
