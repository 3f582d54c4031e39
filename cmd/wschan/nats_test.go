package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/natstest"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/rooms"
)

// TestServeNATSCluster runs three `wschan serve --nats` processes, each on
// a different node of a three-node nats-server cluster, and clients spread
// over them in one room: every client receives every message once, in
// per-sender order.
func TestServeNATSCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs nats-server and wschan processes")
	}
	const instances, clientsPer, perSender = 3, 2, 100
	ctx := wstest.Context(t, 3*time.Minute)
	cluster := natstest.StartCluster(t, 3)
	bin := filepath.Join(t.TempDir(), "wschan")
	if err := wstest.BuildWschan(ctx, bin); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for i := range instances {
		urls = append(urls, startServe(t, ctx, bin, cluster.Nodes[i].URL).url)
	}
	var chans []*wschan.Channel
	for i := range instances * clientsPer {
		chans = append(chans, wstest.Dial(t, urls[i%instances]+"/ws/room/everyone", nil))
	}
	warmUpRoom(t, ctx, chans, instances)
	// Late warm-ups may still arrive: readers skip them.
	var wg sync.WaitGroup
	senders := chans[:instances] // one on each instance
	for s, ch := range senders {
		wg.Go(func() {
			for k := range perSender {
				if err := ch.SendText(ctx, fmt.Sprintf("%d:%d", s, k)); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
			}
		})
	}
	for r, ch := range chans {
		wg.Go(func() {
			next := make([]int, len(senders))
			for got := 0; got < len(senders)*perSender; {
				m, err := ch.Read(ctx)
				if err != nil {
					t.Errorf("client %d: %v after %v", r, err, next)
					return
				}
				if strings.HasPrefix(string(m.Data), "warm-up") {
					continue
				}
				var s, k int
				if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &s, &k); err != nil || s >= len(senders) {
					t.Errorf("client %d: unexpected %q", r, m.Data)
					return
				}
				if k != next[s] {
					t.Errorf("client %d: from sender %d got %d, want %d (once each, in order)", r, s, k, next[s])
					return
				}
				next[s]++
				got++
			}
		})
	}
	wg.Wait()
	for i, u := range urls {
		resp, err := http.Get(strings.Replace(u, "ws://", "http://", 1) + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("instance %d: /readyz %d", i, resp.StatusCode)
		}
	}
}

// warmUpRoom waits until room interest has spread over the cluster: the
// first senders clients (one per instance) send "warm-up S" until every
// client has heard from each. Late warm-ups may still arrive: readers skip
// them.
func warmUpRoom(t *testing.T, ctx context.Context, chans []*wschan.Channel, senders int) {
	t.Helper()
	warm := make([][]bool, len(chans))
	for i := range warm {
		warm[i] = make([]bool, senders)
	}
	for done := false; !done; {
		for s := range senders {
			if err := chans[s].SendText(ctx, fmt.Sprintf("warm-up %d", s)); err != nil {
				t.Fatal(err)
			}
		}
		done = true
		for i, ch := range chans {
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			for {
				m, err := ch.Read(rctx)
				if err != nil {
					break
				}
				var s int
				if _, err := fmt.Sscanf(string(m.Data), "warm-up %d", &s); err == nil {
					warm[i][s] = true
				}
			}
			cancel()
			for _, ok := range warm[i] {
				done = done && ok
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("room interest never spread: %v", warm)
		}
	}
}

// serveProc is a `wschan serve --nats` process started by startServe.
type serveProc struct {
	url  string // ws://host:port
	http string // http://host:port
	cmd  *exec.Cmd

	logged chan struct{} // closed when stderr has been read to its end
	mu     sync.Mutex
	logs   strings.Builder
	once   sync.Once
}

// Kill ends the process at once (SIGKILL, by PID: our own child) and
// waits for it. Calling it again does nothing.
func (p *serveProc) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.logged
		_ = p.cmd.Wait()
	})
}

// Logs returns what the process wrote to stderr so far.
func (p *serveProc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// metric returns the value of a metric without labels from /metrics.
func (p *serveProc) metric(t testing.TB, ctx context.Context, name string) float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.http+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("%s/metrics has no %s", p.http, name)
	return 0
}

// startServe runs `wschan serve --nats natsURL` (and args) on a free
// loopback port until the test ends, and returns it once it is ready.
func startServe(t *testing.T, ctx context.Context, bin, natsURL string, args ...string) *serveProc {
	t.Helper()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--nats", natsURL, "--log-level", "warn"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{url: "ws://" + addr, http: "http://" + addr, cmd: cmd, logged: make(chan struct{})}
	go func() {
		defer close(p.logged)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("wschan serve on %s:\n%s", addr, p.Logs())
		}
	})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.http+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("wschan serve on %s never became ready", addr)
		}
	}
}

// envelopeClient dials a room with the envelope protocol (wschan.room.v1)
// and joins; it returns the channel and the member ID from the welcome.
func envelopeClient(t *testing.T, ctx context.Context, url string) (*wschan.Channel, string) {
	t.Helper()
	ch := wstest.Dial(t, url, &wschan.DialOptions{Subprotocols: []string{rooms.Subprotocol}})
	if err := ch.SendText(ctx, `{"type":"join"}`); err != nil {
		t.Fatal(err)
	}
	ev, err := wschan.ReadJSON[rooms.Event](ctx, ch)
	if err != nil || ev.Type != rooms.EventWelcome {
		t.Fatalf("welcome: %+v, %v", ev, err)
	}
	return ch, ev.Member
}

// waitRoomEvent reads events from ch until one satisfies want; it fails
// the test with the events it read when ctx ends first.
func waitRoomEvent(t *testing.T, ctx context.Context, ch *wschan.Channel, what string, want func(rooms.Event) bool) {
	t.Helper()
	var seen []rooms.Event
	for {
		ev, err := wschan.ReadJSON[rooms.Event](ctx, ch)
		if err != nil {
			t.Fatalf("waiting for %s: %v; got only %+v", what, err, seen)
		}
		if want(ev) {
			return
		}
		seen = append(seen, ev)
	}
}

// TestServeNATSPresence runs two `wschan serve --nats` processes on
// different nodes of a cluster: envelope members on each hear joins on the
// other with the room's total, and when one process is killed (no chance
// to say goodbye) its members stop counting on the other within the TTL.
func TestServeNATSPresence(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs nats-server and wschan processes")
	}
	ctx := wstest.Context(t, 3*time.Minute)
	cluster := natstest.StartCluster(t, 3)
	bin := filepath.Join(t.TempDir(), "wschan")
	if err := wstest.BuildWschan(ctx, bin); err != nil {
		t.Fatal(err)
	}
	// A short interval (TTL 600ms) keeps the test short.
	flags := []string{"--room-presence-interval", "200ms", "--room-history", "-1"}
	east := startServe(t, ctx, bin, cluster.Nodes[0].URL, flags...)
	west := startServe(t, ctx, bin, cluster.Nodes[1].URL, flags...)

	a, _ := envelopeClient(t, ctx, east.url+"/ws/room/lobby")
	b, _ := envelopeClient(t, ctx, west.url+"/ws/room/lobby")
	// The first updates may cross before the other's interest has spread
	// over the cluster; the announcements make up for it.
	twoMembers := func(ev rooms.Event) bool { return ev.Members == 2 }
	waitRoomEvent(t, ctx, a, "a (east) to count b", twoMembers)
	waitRoomEvent(t, ctx, b, "b (west) to count a", twoMembers)

	_, cid := envelopeClient(t, ctx, west.url+"/ws/room/lobby")
	waitRoomEvent(t, ctx, a, "a (east) to hear c join on west", func(ev rooms.Event) bool {
		return ev.Type == rooms.EventJoin && ev.Member == cid && ev.Members == 3
	})

	west.Kill()
	waitRoomEvent(t, ctx, a, "a (east) to stop counting west's members", func(ev rooms.Event) bool {
		return ev.Type == rooms.EventMembers && ev.Members == 1
	})
}

// TestServeNATSNodeKilled runs three `wschan serve --nats` processes, each
// on its own node of a three-node cluster, with two clients on each in one
// room and one sender per instance sending all along. Mid-run the node of
// the first instance is killed: its clients keep receiving once nats.go
// has moved to a live node, and whatever an instance missed meanwhile is
// counted in its wschan_room_messages_lost_total and logged. Per client,
// the messages received plus those its instance counted lost add up to
// those sent, each received once and in per-sender order.
func TestServeNATSNodeKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs nats-server and wschan processes")
	}
	const instances, clientsPer = 3, 2
	ctx := wstest.Context(t, 3*time.Minute)
	cluster := natstest.StartCluster(t, 3)
	bin := filepath.Join(t.TempDir(), "wschan")
	if err := wstest.BuildWschan(ctx, bin); err != nil {
		t.Fatal(err)
	}
	var procs []*serveProc
	for i := range instances {
		// Each knows only its own node's URL at first; nats.go learns the
		// others from the cluster and moves there when its node dies.
		procs = append(procs, startServe(t, ctx, bin, cluster.Nodes[i].URL, "--room-history", "-1"))
	}
	var chans []*wschan.Channel
	var on []int // the instance of each client
	for i := range instances * clientsPer {
		chans = append(chans, wstest.Dial(t, procs[i%instances].url+"/ws/room/kill", nil))
		on = append(on, i%instances)
	}
	warmUpRoom(t, ctx, chans, instances)

	// Senders (one per instance) send "s:k" until stop, pacing themselves
	// so that readers keep up; sent[s] is how many sender s has sent.
	senders := chans[:instances]
	sent := make([]atomic.Int64, len(senders))
	stop := make(chan struct{})
	var sendWG sync.WaitGroup
	for s, ch := range senders {
		sendWG.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if err := ch.SendText(ctx, fmt.Sprintf("%d:%d", s, k)); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
				sent[s].Store(int64(k + 1))
			}
		})
	}
	// Readers record, per sender, the messages received and the last k.
	type tally struct {
		mu   sync.Mutex
		got  []int64 // per sender
		last []int64 // per sender, -1 before the first
		err  error
	}
	tallies := make([]*tally, len(chans))
	var readWG sync.WaitGroup
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	for r, ch := range chans {
		tl := &tally{got: make([]int64, len(senders)), last: make([]int64, len(senders))}
		for s := range tl.last {
			tl.last[s] = -1
		}
		tallies[r] = tl
		readWG.Go(func() {
			for {
				m, err := ch.Read(readCtx)
				if err != nil {
					if readCtx.Err() == nil {
						tl.mu.Lock()
						tl.err = fmt.Errorf("client %d: %w", r, err)
						tl.mu.Unlock()
					}
					return
				}
				if strings.HasPrefix(string(m.Data), "warm-up") {
					continue
				}
				var s int
				var k int64
				tl.mu.Lock()
				if _, err := fmt.Sscanf(string(m.Data), "%d:%d", &s, &k); err != nil || s >= len(senders) || k <= tl.last[s] {
					tl.err = fmt.Errorf("client %d: %q after %d from that sender (want each once, in order)", r, m.Data, tl.last[s%len(senders)])
					tl.mu.Unlock()
					return
				}
				tl.got[s]++
				tl.last[s] = k
				tl.mu.Unlock()
			}
		})
	}
	// until waits for cond, checking the readers' errors.
	until := func(what string, cond func() bool) {
		t.Helper()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for !cond() {
			for _, tl := range tallies {
				tl.mu.Lock()
				err := tl.err
				tl.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
		}
	}
	// everyone reports whether every client (on instance only, when
	// instance >= 0) has received from every sender a message numbered at
	// least from[s].
	everyone := func(instance int, from []int64) func() bool {
		return func() bool {
			for r, tl := range tallies {
				if instance >= 0 && on[r] != instance {
					continue
				}
				tl.mu.Lock()
				ok := true
				for s := range from {
					ok = ok && tl.last[s] >= from[s]
				}
				tl.mu.Unlock()
				if !ok {
					return false
				}
			}
			return true
		}
	}
	sentNow := func() []int64 {
		n := make([]int64, len(sent))
		for s := range sent {
			n[s] = sent[s].Load()
		}
		return n
	}
	until("50 messages from each sender", func() bool { return slices.Min(sentNow()) >= 50 })

	// Kill the victim's node mid-run; its clients must hear from every
	// sender again, with messages sent after the kill.
	victim := procs[0]
	cluster.Nodes[0].Kill()
	atKill := sentNow()
	until("the victim's clients to receive again", everyone(0, atKill))
	until("50 more messages from each sender", func() bool {
		now := sentNow()
		for s := range now {
			if now[s] < atKill[s]+50 {
				return false
			}
		}
		return true
	})
	close(stop)
	sendWG.Wait()
	final := sentNow()
	lastK := make([]int64, len(final))
	for s := range final {
		lastK[s] = final[s] - 1
	}
	// Every sender's last message reaches every client: all that was
	// missed before it has been found missing and counted by then.
	until("every client to receive every sender's last message", everyone(-1, lastK))
	stopReading()
	readWG.Wait()

	var total int64
	for _, n := range final {
		total += n
	}
	for i, p := range procs {
		lost := int64(p.metric(t, ctx, "wschan_room_messages_lost_total"))
		if up := p.metric(t, ctx, "wschan_room_broker_up"); up != 1 {
			t.Errorf("instance %d: wschan_room_broker_up %v after the reconnect, want 1", i, up)
		}
		if lost > 0 && !strings.Contains(p.Logs(), "messages from other instances lost") {
			t.Errorf("instance %d counted %d messages lost but did not log it", i, lost)
		}
		for r, tl := range tallies {
			if on[r] != i {
				continue
			}
			var got int64
			for _, n := range tl.got {
				got += n
			}
			if got+lost != total {
				t.Errorf("client %d on instance %d: received %d + counted lost %d = %d, want the %d sent (per sender: got %v of %v)",
					r, i, got, lost, got+lost, total, tl.got, final)
			}
		}
		t.Logf("instance %d: %d of %d messages counted lost", i, lost, total)
	}
	if !strings.Contains(victim.Logs(), "NATS unavailable") {
		t.Errorf("the victim did not log losing NATS")
	}
}
