package wschan_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// The echo benchmarks compare a round trip (client sends, server echoes,
// client receives) through wschan with the same round trip on the raw
// engine, over the same loopback in the same process. Each reports, besides
// ns/op, the process CPU time per message (cpu-ns/op, user+system from
// getrusage), which is less sensitive than wall time to a noisy machine.

var benchSizes = []struct {
	name string
	n    int
}{{"16B", 16}, {"1KiB", 1 << 10}, {"64KiB", 64 << 10}}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawEcho is the engine's own echo server: reply from the read loop,
// recycle the buffer. UTF-8 checking is on, as wschan has it.
type rawEcho struct{ gws.BuiltinEventHandler }

func (rawEcho) OnMessage(s *gws.Conn, m *gws.Message) {
	_ = s.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

// rawClient receives on the engine's read loop and hands each message over.
type rawClient struct {
	gws.BuiltinEventHandler
	got chan *gws.Message
}

func (c *rawClient) OnMessage(_ *gws.Conn, m *gws.Message) { c.got <- m }

func rawEchoURL(b *testing.B) string {
	up := gws.NewUpgrader(rawEcho{}, &gws.ServerOption{CheckUtf8Enabled: true})
	u, _ := wstest.Server(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go s.ReadLoop()
	}))
	return u
}

func callbackEchoURL(b *testing.B) string {
	return wstest.EchoServer(b, &wschan.AcceptOptions{
		OnMessage: func(ch *wschan.Channel, m wschan.Message) { _ = ch.Send(context.Background(), m.Type, m.Data) },
	})
}

func BenchmarkEcho(b *testing.B) {
	for _, typ := range []wschan.MessageType{wschan.Binary, wschan.Text} {
		for _, sz := range benchSizes {
			benchEcho(b, typ, sz.name, sz.n)
		}
	}
}

func benchEcho(b *testing.B, typ wschan.MessageType, size string, n int) {
	payload := bytes.Repeat([]byte("x"), n)
	prefix := "type=" + typ.String() + "/size=" + size + "/impl="
	{
		b.Run(prefix+"engine", func(b *testing.B) {
			h := &rawClient{got: make(chan *gws.Message, 1)}
			s, _, err := gws.NewClient(h, &gws.ClientOption{Addr: rawEchoURL(b), CheckUtf8Enabled: true})
			if err != nil {
				b.Fatal(err)
			}
			go s.ReadLoop()
			defer s.WriteClose(1000, nil)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				if err := s.WriteMessage(gws.Opcode(typ), payload); err != nil {
					b.Fatal(err)
				}
				m := <-h.got
				if m.Data.Len() != n {
					b.Fatalf("echo of %d bytes", m.Data.Len())
				}
				_ = m.Close()
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
		for _, mode := range []string{"channel", "channel-callback-server"} {
			b.Run(prefix+mode, func(b *testing.B) {
				url := wstest.EchoServer(b, nil)
				if strings.HasSuffix(mode, "callback-server") {
					url = callbackEchoURL(b)
				}
				ch := wstest.Dial(b, url, nil)
				ctx := context.Background()
				b.SetBytes(int64(n))
				b.ReportAllocs()
				c0 := cpuTime()
				for b.Loop() {
					if err := ch.Send(ctx, typ, payload); err != nil {
						b.Fatal(err)
					}
					m, err := ch.Read(ctx)
					if err != nil || len(m.Data) != n {
						b.Fatalf("echo: %d bytes, %v", len(m.Data), err)
					}
					m.Release()
				}
				b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// TestEchoAllocs pins the allocations of a steady stream round trip (both
// ends in this process) to the engine's own: wschan adds none per message.
func TestEchoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own: scripts/test runs this test without it")
	}
	ch := wstest.Dial(t, wstest.EchoServer(t, nil), nil)
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 1024)
	roundTrip := func() {
		if err := ch.Send(ctx, wschan.Text, payload); err != nil {
			t.Fatal(err)
		}
		m, err := ch.Read(ctx)
		if err != nil || len(m.Data) != len(payload) {
			t.Fatalf("echo: %d bytes, %v", len(m.Data), err)
		}
		m.Release()
	}
	for range 100 { // warm the pools
		roundTrip()
	}
	// The engine makes 4 per round trip (see BENCHMARKS.md); the slack is
	// for the runtime's own (timers, GC) landing inside a run.
	if n := testing.AllocsPerRun(500, roundTrip); n > 4.5 {
		t.Fatalf("%.2f allocations per round trip, want at most the engine's 4", n)
	}
}

// sendingServer returns a server channel on engine eng whose peer reads
// and drops everything.
func sendingServer(tb testing.TB, eng wschan.Engine) *wschan.Channel {
	tb.Helper()
	accepted := make(chan *wschan.Channel, 1)
	opts := &wschan.AcceptOptions{}
	wschan.UseEngine(opts, eng)
	u, _ := wstest.Server(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, err := wschan.Accept(w, r, opts); err == nil {
			accepted <- ch
		}
	}))
	raw := wstest.DialRaw(tb, u, nil)
	go func() { _, _ = io.Copy(io.Discard, raw.Conn) }()
	ch := <-accepted
	tb.Cleanup(ch.CloseNow)
	return ch
}

// BenchmarkSendContext: what a Send with a context that can end costs
// beside one with context.Background(), a server sending 64 B messages
// to a peer that reads them. The poll engine waits for its socket itself
// (ctxWriter); the goroutine engine arms a deadline around the write.
func BenchmarkSendContext(b *testing.B) {
	for _, eng := range wschan.Engines {
		for _, mode := range []string{"background", "cancellable"} {
			b.Run("engine="+string(eng)+"/ctx="+mode, func(b *testing.B) {
				ch := sendingServer(b, eng)
				ctx := context.Background()
				if mode == "cancellable" {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				p := make([]byte, 64)
				b.ReportAllocs()
				c0 := cpuTime()
				for b.Loop() {
					if err := ch.Send(ctx, wschan.Binary, p); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// TestSendContextAllocs: on the poll engine a Send with a context that
// can end allocates nothing (no deadline, no AfterFunc per message).
func TestSendContextAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own: scripts/test runs this test without it")
	}
	if !slices.Contains(wschan.Engines, wschan.EnginePoll) {
		t.Skip("no poll engine")
	}
	ch := sendingServer(t, wschan.EnginePoll)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := make([]byte, 64)
	send := func() {
		if err := ch.Send(ctx, wschan.Binary, p); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		send()
	}
	if n := testing.AllocsPerRun(1000, send); n > 0.1 {
		t.Fatalf("%.2f allocations per Send with a cancellable context, want none", n)
	}
}
