package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/bench"
	"github.com/wschan/wschan/internal/wstest"
)

// runBench runs cfg against url with the test's context and a deadline.
func runBench(t *testing.T, ctx context.Context, url string, cfg bench.Config) (*bench.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg.URL = url
	return bench.Run(ctx, cfg)
}

// faultyEcho echoes every message, but passes the n-th one (from 1, per
// connection) through alter first; alter returning nil drops the reply.
func faultyEcho(alter func(n int, data []byte) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		n := 0
		for m := range ch.Messages(ctx) {
			n++
			data := alter(n, bytes.Clone(m.Data))
			m.Release()
			if data == nil {
				continue
			}
			if err := ch.Send(ctx, m.Type, data); err != nil {
				return
			}
		}
	})
}

func TestRun(t *testing.T) {
	t.Parallel()
	echo := wstest.EchoServer(t, nil)
	deflate := wstest.EchoServer(t, &wschan.AcceptOptions{EnableCompression: true})
	corrupt, _ := wstest.Server(t, faultyEcho(func(n int, b []byte) []byte {
		if n%3 == 0 {
			b[len(b)-1] ^= 0x20 // a letter changes case
		}
		return b
	}))
	drop, _ := wstest.Server(t, faultyEcho(func(n int, b []byte) []byte {
		if n%5 == 0 {
			return nil
		}
		return b
	}))
	swap, _ := wstest.Server(t, swapEcho())

	tests := []struct {
		name string
		url  string
		cfg  bench.Config
		// want: measured messages received, and errors.
		received int64
		errs     bench.Errors
	}{
		{name: "ping-pong", url: echo, cfg: bench.Config{Conns: 3, Messages: 20, Size: 64}, received: 60},
		{name: "pipeline", url: echo, cfg: bench.Config{Conns: 2, Messages: 50, Pipeline: 8, Size: 100}, received: 100},
		{name: "text", url: echo, cfg: bench.Config{Conns: 2, Messages: 10, Text: true}, received: 20},
		{name: "compression", url: deflate, cfg: bench.Config{Conns: 2, Messages: 10, Compression: true, Size: 4096}, received: 20},
		{name: "open loop", url: echo, cfg: bench.Config{Conns: 2, Messages: 20, Rate: 2000, Pipeline: 4}, received: 40},
		{name: "ramp", url: echo, cfg: bench.Config{Conns: 3, Messages: 5, Ramp: 200}, received: 15},
		{name: "minimum size", url: echo, cfg: bench.Config{Conns: 1, Messages: 5, Size: bench.MinSize}, received: 5},
		{name: "corrupted", url: corrupt, cfg: bench.Config{Conns: 2, Messages: 12, Size: 32}, received: 16,
			errs: bench.Errors{Corrupted: 8}},
		{name: "lost", url: drop, cfg: bench.Config{Conns: 1, Messages: 10, Size: 32, ReplyTimeout: 200 * time.Millisecond}, received: 8,
			errs: bench.Errors{Lost: 2}},
		{name: "lost pipelined", url: drop, cfg: bench.Config{Conns: 2, Messages: 10, Pipeline: 3, Size: 32, ReplyTimeout: 200 * time.Millisecond}, received: 16,
			errs: bench.Errors{Lost: 4}},
		{name: "out of order", url: swap, cfg: bench.Config{Conns: 1, Messages: 4, Pipeline: 2, Size: 32}, received: 4,
			errs: bench.Errors{OutOfOrder: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := runBench(t, t.Context(), tt.url, tt.cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			conns := int64(tt.cfg.Conns)
			if res.Conns.Opened != conns || res.Conns.Failed != 0 || res.Conns.Connect.Count != conns {
				t.Errorf("conns = %+v, want %d opened", res.Conns, conns)
			}
			if want := conns * int64(tt.cfg.Messages); res.Sent != want {
				t.Errorf("sent = %d, want %d", res.Sent, want)
			}
			if res.Received != tt.received || res.RTT.Count != tt.received {
				t.Errorf("received = %d (RTT count %d), want %d", res.Received, res.RTT.Count, tt.received)
			}
			if res.Errors != tt.errs {
				t.Errorf("errors = %+v, want %+v (first error: %s)", res.Errors, tt.errs, res.FirstError)
			}
			if want := tt.errs.Corrupted+tt.errs.Lost+tt.errs.Unexpected+tt.errs.ClosedEarly > 0; res.Failed() != want {
				t.Errorf("Failed() = %v, want %v", res.Failed(), want)
			}
			if want := tt.errs != (bench.Errors{}); (res.FirstError != "") != want {
				t.Errorf("first error %q, want one: %v", res.FirstError, want)
			}
			if res.MessagesPerSecond <= 0 || res.BytesPerSecond != res.MessagesPerSecond*float64(res.Config.Size) {
				t.Errorf("throughput %v msg/s, %v B/s", res.MessagesPerSecond, res.BytesPerSecond)
			}
			if r := res.RTT; !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999 && r.P999 <= r.Max) {
				t.Errorf("RTT percentiles out of order: %+v", r)
			}
		})
	}
}

// swapEcho echoes each pair of messages in reverse order.
func swapEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		var held *wschan.Message
		for m := range ch.Messages(ctx) {
			if held == nil {
				held = &m
				continue
			}
			if ch.Send(ctx, m.Type, m.Data) != nil || ch.Send(ctx, held.Type, held.Data) != nil {
				return
			}
			held = nil
		}
	})
}

func TestRunDuration(t *testing.T) {
	t.Parallel()
	res, err := runBench(t, t.Context(), wstest.EchoServer(t, nil),
		bench.Config{Conns: 2, Duration: 150 * time.Millisecond, Warmup: 50 * time.Millisecond, Pipeline: 2, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Received != res.Sent || res.RTT.Count != res.Sent {
		t.Errorf("sent %d, received %d, RTT count %d: want equal and above 0", res.Sent, res.Received, res.RTT.Count)
	}
	if res.Errors != (bench.Errors{}) {
		t.Errorf("errors %+v: %s", res.Errors, res.FirstError)
	}
}

// TestRunInterrupted ends the context in the middle of a long run: Run
// stops, waits for the replies in flight, and reports what it measured.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var seen atomic.Int64
	url, _ := wstest.Server(t, faultyEcho(func(_ int, b []byte) []byte {
		if seen.Add(1) == 50 {
			cancel()
		}
		return b
	}))
	res, err := runBench(t, ctx, url, bench.Config{Conns: 2, Duration: time.Hour, Pipeline: 4, Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if res.Received < 40 || res.Received != res.Sent || res.Failed() {
		t.Errorf("sent %d, received %d, errors %+v: want every message sent (at least 40) echoed", res.Sent, res.Received, res.Errors)
	}
}

func TestRunRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res, err := runBench(t, t.Context(), "ws://"+addr+"/ws", bench.Config{Conns: 3, Messages: 1})
	if !errors.Is(err, bench.ErrNoConnection) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Run: %v, want ErrNoConnection wrapping ECONNREFUSED", err)
	}
	if res == nil || res.Conns.Failed != 3 || res.Errors.ConnectFailures != 3 || res.Conns.Opened != 0 {
		t.Errorf("result %+v, want 3 failed dials", res)
	}
}

func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  bench.Config
		want string
	}{
		{"no URL", bench.Config{}, "no URL"},
		{"small size", bench.Config{URL: "ws://x", Size: 8}, "--size 8"},
		{"negative rate", bench.Config{URL: "ws://x", Rate: -1}, "--rate"},
		{"duration and messages", bench.Config{URL: "ws://x", Duration: time.Second, Messages: 5}, "do not go together"},
		{"hold messages", bench.Config{URL: "ws://x", Hold: true, Messages: 5}, "--hold"},
		{"too many conns", bench.Config{URL: "ws://x", Conns: bench.MaxConns + 1}, "--conns"},
		{"no such server", bench.Config{URL: "ws://x", ServerPID: 1 << 30}, "--server-pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := bench.Run(t.Context(), tt.cfg)
			if !errors.Is(err, bench.ErrConfig) || !strings.Contains(err.Error(), tt.want) || res != nil {
				t.Errorf("Run: %v, %v; want ErrConfig mentioning %q", res, err, tt.want)
			}
		})
	}
}

// TestRunHold holds idle connections and reads the server's figures: the
// server runs in this process, so its pid is ours.
func TestRunHold(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: ", err)
	}
	res, err := runBench(t, t.Context(), wstest.EchoServer(t, nil),
		bench.Config{Conns: 4, Hold: true, Duration: 50 * time.Millisecond, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != "hold" || res.Conns.Opened != 4 || res.Conns.PerSecond <= 0 || res.Sent != 0 || res.Failed() {
		t.Errorf("result %+v", res)
	}
	if s := res.Server; s == nil || s.PID != os.Getpid() || s.RSSBefore <= 0 || s.RSSAfter <= 0 {
		t.Errorf("server stats %+v", s)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"held idle", "Connections", "Server", "pid"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRunHoldClosedEarly holds connections that the server closes.
func TestRunHoldClosedEarly(t *testing.T) {
	t.Parallel()
	url, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, err := wschan.Accept(w, r, nil); err == nil {
			_ = ch.Close(wschan.StatusGoingAway, "bye")
		}
	}))
	res, err := runBench(t, t.Context(), url, bench.Config{Conns: 3, Hold: true, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns.Opened != 3 || res.Errors.ClosedEarly != 3 || res.Conns.ClosedEarly != 3 || !res.Failed() {
		t.Errorf("conns %+v, errors %+v: want 3 opened and closed early", res.Conns, res.Errors)
	}
	if !strings.Contains(res.FirstError, "closed early") {
		t.Errorf("first error %q", res.FirstError)
	}
}

// TestRunLimited: a server that refuses or closes connections for its
// limits is named in Result.Limited, with what it said; other closes are
// not limits.
func TestRunLimited(t *testing.T) {
	t.Parallel()
	closeWith := func(code wschan.StatusCode, reason string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ch, err := wschan.Accept(w, r, nil); err == nil {
				_ = ch.Close(code, reason)
			}
		}
	}
	var n atomic.Int64
	perIP := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 1 {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many connections from 127.0.0.1 (limit 1); try again later", http.StatusServiceUnavailable)
			return
		}
		_, _ = wschan.Accept(w, r, nil)
	})
	tests := []struct {
		name    string
		handler http.Handler
		want    string
	}{
		{"rate limit close", closeWith(wschan.StatusPolicyViolation, "message rate limit exceeded (5/s)"),
			`closed with 1008 "message rate limit exceeded (5/s)"`},
		{"try again later", closeWith(wschan.StatusTryAgainLater, "busy"), `closed with 1013 "busy"`},
		{"per-IP limit", perIP, `answered 503 "too many connections from 127.0.0.1 (limit 1); try again later"`},
		{"going away is no limit", closeWith(wschan.StatusGoingAway, "bye"), ""},
		{"internal error is no limit", closeWith(wschan.StatusInternalError, "oops"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := wstest.Server(t, tt.handler)
			res, err := runBench(t, t.Context(), url, bench.Config{Conns: 3, Ramp: 100, Hold: true, Duration: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Limited != tt.want {
				t.Errorf("Limited = %q, want %q", res.Limited, tt.want)
			}
			var text strings.Builder
			if err := res.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(text.String(), "Limited: the server "+tt.want); got != (tt.want != "") {
				t.Errorf("text report has the limit: %v, want %v:\n%s", got, tt.want != "", text.String())
			}
		})
	}
}

// TestJSONShape pins the JSON document's field names.
func TestJSONShape(t *testing.T) {
	t.Parallel()
	res, err := runBench(t, t.Context(), wstest.EchoServer(t, nil), bench.Config{Conns: 1, Messages: 3, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := res.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	want := map[string][]string{
		"": {"client", "config", "conns", "connect_us", "elapsed_s", "errors", "first_error", "limited", "measured_s",
			"messages", "mode", "rtt_us", "server", "throughput", "url", "version"},
		"client":     {"rss_bytes", "rss_per_conn_bytes"},
		"config":     {"compression", "conns", "duration_s", "messages", "pipeline", "ramp", "rate", "reply_timeout_s", "size", "type", "warmup_s"},
		"conns":      {"attempted", "closed_early", "failed", "opened", "per_s"},
		"connect_us": {"count", "max", "mean", "p50", "p90", "p99", "p999"},
		"rtt_us":     {"count", "max", "mean", "p50", "p90", "p99", "p999"},
		"messages":   {"received", "sent"},
		"throughput": {"bytes_per_s", "msgs_per_s"},
		"errors":     {"closed_early", "connect_failures", "corrupted", "lost", "out_of_order", "unexpected"},
		"server":     {"cpu_us", "cpu_us_per_msg", "pid", "rss_after_bytes", "rss_before_bytes", "rss_per_conn_bytes"},
	}
	for key, fields := range want {
		obj := doc
		if key != "" {
			var ok bool
			if obj, ok = doc[key].(map[string]any); !ok {
				t.Errorf("%s is %T, want an object", key, doc[key])
				continue
			}
		}
		var got []string
		for k := range obj {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, slices.Sorted(slices.Values(fields))) {
			t.Errorf("fields of %q = %v, want %v", key, got, fields)
		}
	}
	if doc["version"] != 1.0 || doc["mode"] != "echo" || doc["messages"].(map[string]any)["received"] != 3.0 {
		t.Errorf("version, mode or received wrong:\n%s", out.String())
	}

	// Without a server pid, "server" is null.
	res.Server = nil
	out.Reset()
	if err := res.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"server": null`) {
		t.Errorf("want \"server\": null:\n%s", out.String())
	}
}

// TestProgress runs past the first progress line.
func TestProgress(t *testing.T) {
	t.Parallel()
	var progress bytes.Buffer
	_, err := runBench(t, t.Context(), wstest.EchoServer(t, nil),
		bench.Config{Conns: 1, Duration: 1200 * time.Millisecond, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	p := progress.String()
	if !strings.HasPrefix(p, "\r\033[K") || !strings.Contains(p, "conns 1/1") || !strings.Contains(p, "msg/s  p50 ") || !strings.HasSuffix(p, "\r\033[K") {
		t.Errorf("progress = %q", p)
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	res, err := runBench(t, t.Context(), wstest.EchoServer(t, nil), bench.Config{Conns: 2, Messages: 5, Size: 2048})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 connections, 2KiB binary messages 5 each, pipeline 1", "Throughput", "10 sent, 10 received", "RTT", "p99.9", "Connect", "corrupted 0, lost 0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("00000a000000002a"))
	f.Add([]byte("ffffffffffffffffrest"))
	f.Add([]byte("00000G0000000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, seq, ok := bench.ParseHeader(b)
		if !ok {
			return
		}
		again := make([]byte, 16)
		bench.Stamp(again, id, seq)
		if !bytes.Equal(again, b[:16]) {
			t.Errorf("ParseHeader(%q) = %d, %d; stamped back: %q", b, id, seq, again)
		}
	})
}

// TestSources spreads connections over loopback source addresses: the
// server sees as many client addresses as asked for.
func TestSources(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen[host] = true
		mu.Unlock()
		(&wstest.Echo{}).ServeHTTP(w, r)
	}))
	res, err := bench.Run(t.Context(), bench.Config{URL: u, Conns: 6, Sources: 3, Messages: 2})
	if err != nil || res.Failed() {
		t.Fatalf("Run: %v, %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !seen["127.0.0.1"] || !seen["127.0.0.2"] || !seen["127.0.0.3"] {
		t.Fatalf("client addresses seen by the server: %v, want 127.0.0.1 to 127.0.0.3", seen)
	}
	if res.Client == nil || res.Client.RSS <= 0 {
		t.Errorf("no client memory reported: %+v", res.Client)
	}
}

// TestSourcesAndFilesRefused checks the configurations bench cannot run,
// each with an error that says what to do.
func TestSourcesAndFilesRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  bench.Config
		want string
	}{
		{"sources to a remote server", bench.Config{URL: "ws://192.0.2.1/ws", Sources: 2}, "need a server on 127.0.0.0/8"},
		{"too many sources", bench.Config{URL: "ws://127.0.0.1:1/ws", Sources: 255}, "want 1 to 254"},
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Max < bench.MaxConns-64 {
		tests = append(tests, struct {
			name string
			cfg  bench.Config
			want string
		}{"more connections than open files", bench.Config{URL: "ws://127.0.0.1:1/ws", Conns: int(rl.Max)}, fmt.Sprintf("this process may hold %d", rl.Max)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := bench.Run(t.Context(), tt.cfg)
			if !errors.Is(err, bench.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want ErrConfig saying %q", err, tt.want)
			}
		})
	}
}
