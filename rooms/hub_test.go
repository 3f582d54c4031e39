package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
)

// testTimeout bounds each test's waits.
const testTimeout = 20 * time.Second

// newHub returns a hub closed at cleanup.
func newHub(t testing.TB, opts *rooms.HubOptions) *rooms.Hub {
	t.Helper()
	h := rooms.NewHub(opts)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// roomServer serves WebSocket members of hub at /?room=NAME on loopback, on
// engine eng ("" for the default), and
// returns its ws:// URL. Every message a member sends is published to its
// room.
func roomServer(t testing.TB, hub *rooms.Hub, eng wschan.Engine) string {
	t.Helper()
	var wg sync.WaitGroup
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		ch, err := wschan.Accept(w, r, &wschan.AcceptOptions{Engine: eng})
		if err != nil {
			return
		}
		m, err := hub.Join(r.Context(), r.URL.Query().Get("room"), ch)
		if err != nil {
			_ = ch.Close(wschan.StatusPolicyViolation, "cannot join")
			return
		}
		defer m.Leave()
		ctx := context.Background()
		for msg := range ch.Messages(ctx) {
			if err := m.Publish(ctx, msg.Type, msg.Data); err != nil {
				_ = ch.Close(wschan.StatusInternalError, "publish failed")
			}
			msg.Release()
		}
	}))
	t.Cleanup(wg.Wait) // runs before the httptest server closes
	return u
}

// fanOutMessage is message k of sender s: text or binary in turn, with the
// sender and sequence first so the receiver can check order.
func fanOutMessage(s, k int) (wschan.MessageType, []byte) {
	head := fmt.Sprintf("%d:%d:", s, k)
	if k%2 == 0 {
		return wschan.Text, append([]byte(head), wstest.RandomText(50+k*7, byte(s*31+k))...)
	}
	return wschan.Binary, append([]byte(head), wstest.RandomBytes(40+k*13, byte(s*17+k))...)
}

// TestFanOutOverWebSocket runs on both engines: on Linux the hub writes
// messages from the delivering goroutine (TrySend), elsewhere every one
// from the member's goroutine. Either way every member gets every message
// once, in each sender's order.
func TestFanOutOverWebSocket(t *testing.T) {
	t.Parallel()
	for _, eng := range []wschan.Engine{wschan.EngineGoroutine, wschan.EnginePoll} {
		t.Run(string(eng), func(t *testing.T) {
			t.Parallel()
			const senders, perSender = 4, 50
			ctx := wstest.Context(t, testTimeout)
			hub := newHub(t, nil)
			u := roomServer(t, hub, eng) + "/?room=lobby"
			var members []*wschan.Channel
			for range senders {
				members = append(members, wstest.Dial(t, u, nil))
			}
			waitStats(t, ctx, hub, "every member joined", func(s rooms.Stats) bool { return s.Members == senders && s.Rooms == 1 })

			var wg sync.WaitGroup
			for s, ch := range members {
				wg.Go(func() {
					for k := range perSender {
						typ, data := fanOutMessage(s, k)
						if err := ch.Send(ctx, typ, data); err != nil {
							t.Errorf("sender %d: %v", s, err)
							return
						}
					}
				})
			}
			for r, ch := range members {
				wg.Go(func() {
					wstest.ReadFanOut(t, ctx, ch, fmt.Sprintf("member %d", r), senders, perSender, fanOutMessage)
				})
			}
			wg.Wait()
			st := waitStats(t, ctx, hub, "every delivery counted", func(s rooms.Stats) bool { return s.Delivered == senders*senders*perSender })
			if st.Published != senders*perSender || st.SlowClosed != 0 {
				t.Errorf("stats %+v: want %d published, none closed", st, senders*perSender)
			}
			if linux := runtime.GOOS == "linux"; linux && st.Direct == 0 || !linux && st.Direct != 0 {
				t.Errorf("on %s %d of %d messages were written by the delivering goroutine", eng, st.Direct, st.Delivered)
			}
		})
	}
}

// TestTrySenderKeepsOrder: members whose connection takes some messages
// at once (TrySend) and refuses others, which then wait in the member's
// queue, get every message once and in order: nothing written at once
// overtakes a message still queued.
func TestTrySenderKeepsOrder(t *testing.T) {
	t.Parallel()
	const n = 300
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, &rooms.HubOptions{QueueSize: n})
	var conns []*fakeConn
	var tries []*tryConn
	for i := range 3 {
		c := newTryConn(n, 0.5, uint64(i))
		tries = append(tries, c)
		conns = append(conns, c.fakeConn)
		if _, err := hub.Join(ctx, "r", c); err != nil {
			t.Fatal(err)
		}
	}
	plain := newFakeConn(n)
	conns = append(conns, plain)
	if _, err := hub.Join(ctx, "r", plain); err != nil {
		t.Fatal(err)
	}
	// Half the messages go out in a burst, the rest one at a time, each
	// taken by every member before the next: a burst finds members'
	// queues busy, one at a time finds them mostly empty.
	for k := range n {
		if err := hub.Publish(ctx, "r", wschan.Binary, []byte{byte(k), byte(k >> 8)}); err != nil {
			t.Fatal(err)
		}
		if k < n/2-1 {
			continue
		}
		for i, c := range conns {
			for len(c.got) <= k {
				m := c.next(t, ctx)
				if len(m.Data) != 2 || int(m.Data[0])|int(m.Data[1])<<8 != len(c.got) {
					t.Fatalf("member %d: message %d is %v", i, len(c.got), m.Data)
				}
				c.got = append(c.got, m)
			}
		}
	}
	st := waitStats(t, ctx, hub, "every delivery counted", func(s rooms.Stats) bool { return s.Delivered == 4*n })
	taken := 0
	for i, c := range tries {
		if k := c.takenNow(); k == 0 || k == n {
			t.Errorf("member %d: TrySend took %d of %d messages; want some of each way", i, k, n)
		}
		taken += c.takenNow()
	}
	if st.Direct != uint64(taken) {
		t.Errorf("Stats.Direct = %d, want the %d messages TrySend took", st.Direct, taken)
	}
}

// waitStats polls hub's Stats until cond holds or ctx ends.
func waitStats(t testing.TB, ctx context.Context, hub *rooms.Hub, what string, cond func(rooms.Stats) bool) rooms.Stats {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st := hub.Stats()
		if cond(st) {
			return st
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: stats %+v", what, st)
		}
	}
}

func TestSlowMemberIsClosed(t *testing.T) {
	t.Parallel()
	const queue = 4
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, &rooms.HubOptions{QueueSize: queue})
	slow, fast := newFakeConn(100), newFakeConn(100)
	slow.stall = make(chan struct{})
	ms, err := hub.Join(ctx, "r", slow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Join(ctx, "r", fast); err != nil {
		t.Fatal(err)
	}
	// The slow member takes the first message into a Send that stalls; the
	// next queue messages fill its queue; one more overflows it. The fast
	// member takes each message before the next is published, so its own
	// queue never fills.
	const total = queue + 2
	for i := range total {
		publish(t, ctx, hub, "r", i)
		if m := fast.next(t, ctx); string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("fast member got %q, want %d", m.Data, i)
		}
		if i == 0 {
			select {
			case <-slow.entered:
			case <-ctx.Done():
				t.Fatal("first Send never started")
			}
		}
	}
	if st := hub.Stats(); st.Members != 1 {
		t.Errorf("members = %d after the overflow, want 1 (the slow member leaves the room at once)", st.Members)
	}
	close(slow.stall) // the stalled write completes; then the close
	code, reason := slow.waitClosed(t, ctx)
	if want := fmt.Sprintf("too slow: %d messages queued", queue); code != wschan.StatusPolicyViolation || reason != want {
		t.Errorf("closed with %d %q, want 1008 %q", code, reason, want)
	}
	<-ms.Done()
	if !errors.Is(ms.Err(), rooms.ErrTooSlow) {
		t.Errorf("Err() = %v, want ErrTooSlow", ms.Err())
	}
	if got := len(slow.msgs); got != 1 {
		t.Errorf("slow member got %d messages, want only the one in progress", got)
	}
	if st := hub.Stats(); st.SlowClosed != 1 {
		t.Errorf("SlowClosed = %d, want 1", st.SlowClosed)
	}
	// The room goes on.
	publish(t, ctx, hub, "r", total)
	if m := fast.next(t, ctx); string(m.Data) != fmt.Sprint(total) {
		t.Fatalf("after the close: got %q", m.Data)
	}
}

func TestStalledWriteTimesOut(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, &rooms.HubOptions{WriteTimeout: 20 * time.Millisecond})
	c := newFakeConn(10)
	c.stall = make(chan struct{}) // never released: only the write timeout ends the Send
	m, err := hub.Join(ctx, "r", c)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, hub, "r", 0)
	code, reason := c.waitClosed(t, ctx)
	if code != wschan.StatusPolicyViolation || !strings.HasPrefix(reason, "too slow: no message taken for") {
		t.Errorf("closed with %d %q, want 1008 too slow", code, reason)
	}
	<-m.Done()
	if !errors.Is(m.Err(), rooms.ErrTooSlow) {
		t.Errorf("Err() = %v, want ErrTooSlow", m.Err())
	}
	waitStats(t, ctx, hub, "the room dropped", func(s rooms.Stats) bool { return s.Rooms == 0 && s.Members == 0 && s.SlowClosed == 1 })
}

func TestFailingConnLeaves(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, nil)
	c := newFakeConn(10)
	c.sendErr = wschan.ErrConnectionLost
	m, err := hub.Join(ctx, "r", c)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, hub, "r", 0)
	<-m.Done()
	if !errors.Is(m.Err(), wschan.ErrConnectionLost) {
		t.Errorf("Err() = %v, want the Send error", m.Err())
	}
	select {
	case <-c.closed:
		t.Error("the hub closed a connection that failed by itself")
	default:
	}
	waitStats(t, ctx, hub, "the room dropped", func(s rooms.Stats) bool { return s.Rooms == 0 && s.Members == 0 && s.SlowClosed == 0 })
}

func publish(t testing.TB, ctx context.Context, hub *rooms.Hub, room string, i int) {
	t.Helper()
	if err := hub.Publish(ctx, room, wschan.Text, []byte(fmt.Sprint(i))); err != nil {
		t.Fatalf("Publish %d: %v", i, err)
	}
}

func TestLeave(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, nil)
	a, b := newFakeConn(10), newFakeConn(10)
	ma, _ := hub.Join(ctx, "r", a)
	mb, _ := hub.Join(ctx, "r", b)
	if ma.ID() == mb.ID() || ma.Room() != "r" {
		t.Fatalf("IDs %q %q, room %q", ma.ID(), mb.ID(), ma.Room())
	}
	ma.Leave()
	ma.Leave() // again: nothing
	if ma.Err() != nil {
		t.Errorf("Err() after Leave = %v, want nil", ma.Err())
	}
	if err := mb.Publish(ctx, wschan.Text, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := b.next(t, ctx); string(m.Data) != "after" {
		t.Fatalf("got %q", m.Data)
	}
	if len(a.msgs) != 0 {
		t.Errorf("a member that left got %d messages", len(a.msgs))
	}
	if st := hub.Stats(); st.Members != 1 || st.Rooms != 1 {
		t.Errorf("stats %+v, want one member in one room", st)
	}
	mb.Leave()
	if st := hub.Stats(); st.Members != 0 || st.Rooms != 0 {
		t.Errorf("stats %+v after the last member left, want no room", st)
	}
	select {
	case <-a.closed:
		t.Error("Leave closed the connection")
	default:
	}
}

func TestJoinRoomFull(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, &rooms.HubOptions{MaxMembers: 2})
	for range 2 {
		if _, err := hub.Join(ctx, "r", newFakeConn(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := hub.CanJoin("r"); !errors.Is(err, rooms.ErrRoomFull) {
		t.Errorf("CanJoin = %v, want ErrRoomFull", err)
	}
	_, err := hub.Join(ctx, "r", newFakeConn(1))
	if !errors.Is(err, rooms.ErrRoomFull) || !strings.Contains(err.Error(), `"r" has 2 members`) {
		t.Errorf("Join = %v, want ErrRoomFull naming the room and limit", err)
	}
	if err := hub.CanJoin("other"); err != nil {
		t.Errorf("CanJoin(other) = %v: the limit is per room", err)
	}
}

func TestJoinTooManyRooms(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := newHub(t, &rooms.HubOptions{MaxRooms: 1})
	m, err := hub.Join(ctx, "one", newFakeConn(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Join(ctx, "one", newFakeConn(1)); err != nil {
		t.Errorf("joining an existing room at the room limit: %v", err)
	}
	if err := hub.CanJoin("two"); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Errorf("CanJoin = %v, want ErrTooManyRooms", err)
	}
	if _, err := hub.Join(ctx, "two", newFakeConn(1)); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Errorf("Join = %v, want ErrTooManyRooms", err)
	}
	_ = m
}

func TestJoinInvalidName(t *testing.T) {
	t.Parallel()
	hub := newHub(t, nil)
	for _, name := range []string{"", "a.b", "*", ">"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			t.Parallel()
			if _, err := hub.Join(t.Context(), name, newFakeConn(1)); !errors.Is(err, rooms.ErrInvalidName) {
				t.Errorf("Join = %v, want ErrInvalidName", err)
			}
			if err := hub.CanJoin(name); !errors.Is(err, rooms.ErrInvalidName) {
				t.Errorf("CanJoin = %v, want ErrInvalidName", err)
			}
			if err := hub.Publish(t.Context(), name, wschan.Text, nil); !errors.Is(err, rooms.ErrInvalidName) {
				t.Errorf("Publish = %v, want ErrInvalidName", err)
			}
		})
	}
}

func TestPublishInvalidUTF8(t *testing.T) {
	t.Parallel()
	hub := newHub(t, nil)
	if err := hub.Publish(t.Context(), "r", wschan.Text, []byte{0xff}); !errors.Is(err, wschan.ErrInvalidUTF8) {
		t.Errorf("Publish = %v, want ErrInvalidUTF8", err)
	}
}

func TestPublishBadType(t *testing.T) {
	t.Parallel()
	hub := newHub(t, nil)
	if err := hub.Publish(t.Context(), "r", wschan.MessageType(9), []byte("x")); err == nil {
		t.Error("Publish with type 9 succeeded")
	}
}

func TestClosedHub(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, testTimeout)
	hub := rooms.NewHub(nil)
	c := newFakeConn(1)
	c.stall = make(chan struct{}) // a write in progress is abandoned by Close
	m, err := hub.Join(ctx, "r", c)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, hub, "r", 0)
	<-c.entered
	if err := hub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Close returned before the member's goroutine ended")
	}
	if !errors.Is(m.Err(), rooms.ErrClosed) {
		t.Errorf("member Err() = %v, want ErrClosed", m.Err())
	}
	if _, err := hub.Join(ctx, "r", newFakeConn(1)); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("Join after Close = %v", err)
	}
	if err := hub.Publish(ctx, "r", wschan.Text, nil); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if err := hub.CanJoin("r"); !errors.Is(err, rooms.ErrClosed) {
		t.Errorf("CanJoin after Close = %v", err)
	}
	if err := hub.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if st := hub.Stats(); st.Rooms != 0 || st.Members != 0 {
		t.Errorf("stats after Close %+v", st)
	}
}

// Hubs sharing a broker share their rooms, and every member sees the
// room's messages in one order.
func TestSharedBroker(t *testing.T) {
	t.Parallel()
	const hubs, perHub, n = 3, 2, 200
	ctx := wstest.Context(t, testTimeout)
	broker := rooms.NewMemoryBroker(nil)
	var all []*rooms.Member
	var conns []*fakeConn
	for range hubs {
		h := newHub(t, &rooms.HubOptions{Broker: broker, QueueSize: hubs * n})
		for range perHub {
			c := newFakeConn(hubs * n)
			m, err := h.Join(ctx, "shared", c)
			if err != nil {
				t.Fatal(err)
			}
			all, conns = append(all, m), append(conns, c)
		}
	}
	var wg sync.WaitGroup
	for i, m := range all[:hubs] { // one publisher per hub, at once
		wg.Go(func() {
			for k := range n {
				if err := m.Publish(ctx, wschan.Text, fmt.Appendf(nil, "%d:%d", i, k)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var first []string
	for ci, c := range conns {
		var got []string
		next := make([]int, hubs)
		for range hubs * n {
			m := c.next(t, ctx)
			var s, k int
			fmt.Sscanf(string(m.Data), "%d:%d", &s, &k)
			if k != next[s] {
				t.Fatalf("member %d: from %d got %d, want %d", ci, s, k, next[s])
			}
			next[s]++
			got = append(got, string(m.Data))
		}
		if first == nil {
			first = got
		} else if strings.Join(got, ",") != strings.Join(first, ",") {
			t.Fatalf("member %d saw another order than member 0", ci)
		}
	}
}
