//go:build soak

package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/HdrHistogram/hdrhistogram-go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// Load shape. The defaults give about 1,800 messages/s and 18 reconnects/s
// at 10,000 connections.
const (
	thinkMin     = 3 * time.Second // pause between a verified echo and the next send
	thinkMax     = 8 * time.Second
	echoTimeout  = 30 * time.Second // send and read of one echo
	dialTimeout  = 15 * time.Second
	dropEvery    = 100 // one exchange in dropEvery is followed by a disconnect
	redialPause  = time.Second
	sampleEvery  = 5 * time.Second  // server metrics for peaks
	progressEach = 30 * time.Second // one progress line
	stopTimeout  = 2 * time.Minute  // workers finish their exchange and close
	drainTimeout = time.Minute      // server reports zero connections open
	goroutineTol = 5                // server goroutines allowed above baseline
	fdTol        = 5                // server open files allowed above baseline
	rssSlack     = 48 << 20         // RSS allowed above baseline (or 2 × baseline)
	headerLen    = 13               // "%05x%07x:" worker id, sequence
	maxPayload   = 256 << 10
)

type soakConfig struct {
	conns    int
	idle     int // connections that only hold (WSCHAN_SOAK_IDLE), beside conns busy ones
	duration time.Duration
	ramp     int           // dials per second
	settle   time.Duration // how long the idle server has to come back to its baseline
}

func configFromEnv(t *testing.T) soakConfig {
	t.Helper()
	c := soakConfig{conns: 10000, duration: 10 * time.Minute, ramp: 500, settle: 6 * time.Minute}
	if v := os.Getenv("WSCHAN_SOAK_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<20-1 {
			t.Fatalf("WSCHAN_SOAK_CONNS=%q: want a count from 1 to %d", v, 1<<20-1)
		}
		c.conns = n
	}
	if v := os.Getenv("WSCHAN_SOAK_IDLE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1<<20-1 {
			t.Fatalf("WSCHAN_SOAK_IDLE=%q: want a count from 0 to %d", v, 1<<20-1)
		}
		c.idle = n
	}
	if v := os.Getenv("WSCHAN_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("WSCHAN_SOAK_DURATION=%q: want a positive duration such as 10m", v)
		}
		c.duration = d
	}
	if v := os.Getenv("WSCHAN_SOAK_SETTLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("WSCHAN_SOAK_SETTLE=%q: want a positive duration such as 5m", v)
		}
		c.settle = d
	}
	if v := os.Getenv("WSCHAN_SOAK_RAMP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("WSCHAN_SOAK_RAMP=%q: want dials per second, at least 1", v)
		}
		c.ramp = n
	}
	return c
}

// TestSoak holds many echo connections against a real `wschan serve` for a
// long time; see the package documentation.
func TestSoak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the soak reads /proc and runs on Linux only")
	}
	cfg := configFromEnv(t)
	checkMachine(t, cfg)
	ramp := time.Duration(cfg.conns+cfg.idle) * time.Second / time.Duration(cfg.ramp)
	// Everything but the settling, with margins; the settling gets what the
	// test deadline leaves, up to cfg.settle.
	need := ramp + cfg.duration + echoTimeout + stopTimeout/2 + drainTimeout/4 + 2*time.Minute
	if dl, ok := t.Deadline(); ok {
		left := time.Until(dl) - need
		if left < time.Minute {
			t.Fatalf("the test deadline is %v away but the soak may need %v: pass -timeout %v or more",
				time.Until(dl).Round(time.Second), (need + cfg.settle).Round(time.Second), (need + cfg.settle + 5*time.Minute).Round(time.Minute))
		}
		if left < cfg.settle {
			t.Logf("the test deadline (-timeout) leaves the server %v to settle instead of %v", left.Round(time.Second), cfg.settle)
			cfg.settle = left
		}
	}
	ctx := t.Context()

	var extra []string
	if cfg.idle > 0 {
		extra = append(extra, "--idle-timeout", "off") // the idle connections hold for the whole run
	}
	srv := startServer(t, ctx, buildWschan(t), extra...)
	t.Logf("server pid %d on %s; %d busy and %d idle connections for %v after a %v ramp", srv.pid(), srv.addr, cfg.conns, cfg.idle, cfg.duration, ramp.Round(time.Second))

	// Baseline: the server has answered a few requests and holds no client.
	for range 3 {
		if _, err := srv.scrape(ctx); err != nil {
			t.Fatal(err)
		}
	}
	base, err := srv.scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clientBase := runtime.NumGoroutine()

	r := newRun(cfg, "ws://"+srv.addr+"/ws")
	mon := startMonitor(t, ctx, srv, r, base)

	// Ramp up at cfg.ramp dials per second; each worker starts sending as
	// soon as it is connected.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	rampStart := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(cfg.ramp))
	for id := range cfg.conns {
		if id > 0 {
			select {
			case <-tick.C:
			case <-srv.exited:
				tick.Stop()
				close(stop)
				t.Fatalf("server exited during the ramp: %v\n%s", srv.err, srv.logTail())
			}
		}
		wg.Go(func() { newWorker(r, id).run(ctx, stop) })
	}
	tick.Stop()
	if !r.waitConnected(ctx, srv, ramp+2*time.Minute) {
		close(stop)
		wg.Wait()
		t.Fatalf("only %d of %d workers connected within %v (dial failures %d: %s)\n%s",
			r.connected.Load(), cfg.conns, ramp+2*time.Minute, r.dialFails.Load(), r.problems.sample("dial"), srv.logTail())
	}
	idle := openIdle(t, ctx, r, srv)
	rampTook := time.Since(rampStart)
	t.Logf("all %d busy and %d idle connected after %v", cfg.conns, len(idle), rampTook.Round(100*time.Millisecond))

	// Steady state: every connection open, for the whole duration.
	steadyStart := time.Now()
	r.resetRate()
	select {
	case <-time.After(cfg.duration):
	case <-srv.exited:
		close(stop)
		t.Fatalf("server exited during the soak: %v\n%s", srv.err, srv.logTail())
	}
	steady := time.Since(steadyStart)
	msgsSteady := r.verified.Load() - r.verifiedAtSteady.Load()

	// Leave: every worker finishes its exchange and closes with 1000.
	close(stop)
	leaveStart := time.Now()
	closeIdle(r, idle)
	if !waitGroupWithin(&wg, stopTimeout) {
		path := dumpGoroutines(t)
		t.Fatalf("%d workers still running %v after the stop (a hung Send, Read or Close?); goroutines in %s",
			r.running.Load(), stopTimeout, path)
	}
	t.Logf("all clients closed in %v", time.Since(leaveStart).Round(100*time.Millisecond))
	peak := mon.stop()

	// The test process: every channel's goroutines are gone.
	clientFinal := waitClientGoroutines(clientBase, 30*time.Second)

	// The server: connections, then goroutines and memory come back.
	open0, err := srv.waitOpen(ctx, 0, drainTimeout)
	if err != nil {
		t.Fatalf("server connections did not drain: %v\n%s", err, srv.logTail())
	}
	drained := time.Since(leaveStart)
	st := srv.settle(t, ctx, base, cfg.settle)

	sum := summary{cfg: cfg, r: r, base: base, peak: peak, atZero: open0, settle: st,
		rampTook: rampTook, steady: steady, msgsSteady: msgsSteady, drained: drained,
		clientBase: clientBase, clientFinal: clientFinal}
	fmt.Print(sum.String())

	// Assertions, after the figures are out.
	r.check(t)
	checkServerCounters(t, r, st.final, base)
	if st.goroutinesAt < 0 {
		t.Errorf("server goroutines did not return to baseline: baseline %d, final %d after %v (allowed %d)",
			base.goroutines, st.final.goroutines, cfg.settle, base.goroutines+goroutineTol)
	}
	if st.rssAt < 0 {
		t.Errorf("server RSS did not return to baseline: baseline %s, final %s (VmRSS %s) after %v (allowed %s)",
			mib(base.rss), mib(st.final.rss), mib(st.final.vmRSS), cfg.settle, mib(rssLimit(base.rss)))
	}
	if st.final.openFDs > base.openFDs+fdTol {
		t.Errorf("server open files: %d at baseline, %d with no client left", base.openFDs, st.final.openFDs)
	}
	if clientFinal > clientBase+2 {
		t.Errorf("test process goroutines: %d before the clients, %d after they all closed", clientBase, clientFinal)
	}
	if t.Failed() {
		t.Logf("server log tail:\n%s", srv.logTail())
	}
}

// checkMachine fails early when the file or port limits cannot hold the soak.
func checkMachine(t *testing.T, cfg soakConfig) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < uint64(cfg.conns+cfg.idle)+500 {
		t.Fatalf("open-file limit %d (hard %d) cannot hold %d connections plus a margin: raise it (ulimit -n) or lower WSCHAN_SOAK_CONNS and WSCHAN_SOAK_IDLE",
			lim.Cur, lim.Max, cfg.conns+cfg.idle)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, _ := strconv.Atoi(f[0])
			hi, _ := strconv.Atoi(f[1])
			if hi-lo+1 < cfg.conns+cfg.idle+2000 {
				t.Fatalf("local port range %d-%d is too narrow for %d connections and their reconnects", lo, hi, cfg.conns)
			}
		}
	}
}

// openIdle dials cfg.idle connections that send nothing and hold until
// the end (they answer the server's pings), at the ramp's pace. Their
// dials count with the workers'.
func openIdle(t *testing.T, ctx context.Context, r *run, srv *server) []*wschan.Channel {
	t.Helper()
	var idle []*wschan.Channel
	tick := time.NewTicker(time.Second / time.Duration(r.cfg.ramp))
	defer tick.Stop()
	opts := &wschan.DialOptions{Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }}
	for i := range r.cfg.idle {
		select {
		case <-tick.C:
		case <-srv.exited:
			t.Fatalf("server exited while the idle connections opened: %v\n%s", srv.err, srv.logTail())
		}
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		ch, err := wschan.Dial(dctx, r.url, opts)
		cancel()
		r.dials.Add(1)
		if err != nil {
			r.dialFails.Add(1)
			r.problems.add("dial", "idle connection %d: %v", i, err)
			continue
		}
		idle = append(idle, ch)
	}
	return idle
}

// closeIdle closes the idle connections with 1000; one that ended before
// is an unexpected end.
func closeIdle(r *run, idle []*wschan.Channel) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for i, ch := range idle {
		if err := ch.Err(); err != nil {
			r.unexpected.Add(1)
			r.problems.add("unexpected", "idle connection %d ended during the run: %v (code %d)", i, err, ch.CloseCode())
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := ch.Close(wschan.StatusNormalClosure, ""); err != nil {
				r.closeFails.Add(1)
				r.problems.add("close", "idle connection %d: %v", i, err)
				return
			}
			r.finalCloses.Add(1)
		})
	}
	wg.Wait()
}

// --- the server process -----------------------------------------------------

// buildWschan builds ./cmd/wschan from this module into a temporary directory.
func buildWschan(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wschan")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := wstest.BuildWschan(ctx, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// server is one `wschan serve` child process.
type server struct {
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when Wait has returned
	err     error         // Wait's result, set before exited is closed
	http    *http.Client
}

var errPortTaken = errors.New("port in use")

// startServer starts `wschan serve` on a free loopback port with every
// limit off and waits until it is ready; the process is stopped (by PID) at
// cleanup.
func startServer(t *testing.T, ctx context.Context, bin string, extra ...string) *server {
	t.Helper()
	var err error
	for range 5 {
		var s *server
		if s, err = tryServer(t, ctx, bin, freeLoopbackAddr(t), extra...); err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatal(err)
	return nil
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	addr, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func tryServer(t *testing.T, ctx context.Context, bin, addr string, extra ...string) (*server, error) {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	s := &server{
		addr:    addr,
		logPath: logf.Name(),
		exited:  make(chan struct{}),
		http: &http.Client{
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			Timeout:   10 * time.Second,
		},
	}
	// Per-connection lines are at info level: tens of thousands of them
	// would cost the server CPU for nothing, so only warnings are logged.
	s.cmd = exec.Command(bin, "serve", "--addr", addr,
		"--max-conns", "-1", "--max-conns-per-ip", "-1", "--message-rate", "-1",
		"--log-format", "json", "--log-level", "warn")
	s.cmd.Args = append(s.cmd.Args, extra...)
	s.cmd.Stdout = logf
	s.cmd.Stderr = logf
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	last := "no answer yet"
	for {
		code, _, err := s.get(ctx, "/readyz")
		if err == nil && code == http.StatusOK {
			return s, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "HTTP " + strconv.Itoa(code)
		}
		select {
		case <-tick.C:
		case <-s.exited:
			out := s.logTail()
			if strings.Contains(out, "already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, out)
			}
			return nil, fmt.Errorf("wschan serve exited before ready (%v):\n%s", s.err, out)
		case <-deadline:
			return nil, fmt.Errorf("wschan serve on %s not ready after 30s: %s\n%s", addr, last, s.logTail())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop interrupts the server (by PID) so it drains and exits, and kills it
// if it has not exited after the drain timeout and a margin.
func (s *server) stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("SIGINT pid %d: %v", s.pid(), err)
	}
	select {
	case <-s.exited:
		return
	case <-time.After(20 * time.Second):
	}
	t.Errorf("wschan serve (pid %d) still running 20s after SIGINT: killing it\n%s", s.pid(), s.logTail())
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("pid %d still running after SIGKILL", s.pid())
	}
}

// logTail returns the last lines the server wrote.
func (s *server) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(server log: " + err.Error() + ")"
	}
	const keep = 4 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(b) == 0 {
		return "(server log empty)"
	}
	return string(b)
}

func (s *server) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// figures are one reading of the server.
type figures struct {
	at         time.Time
	goroutines int
	rss        int64 // process_resident_memory_bytes
	vmRSS      int64 // /proc/PID/status, the cross-check
	open       int
	msgsIn     int64
	msgsOut    int64
	bytesIn    int64
	bytesOut   int64
	slow       int64
	openFDs    int

	// Go runtime memory, to tell live heap from memory not yet returned.
	heapAlloc, heapInuse, heapReleased, stackInuse int64
	gcs                                            int64

	handshakes map[string]int64 // by outcome
	closes     map[string]int64 // "code/direction"
}

// scrape reads /metrics and VmRSS.
func (s *server) scrape(ctx context.Context) (figures, error) {
	code, body, err := s.get(ctx, "/metrics")
	if err != nil {
		return figures{}, fmt.Errorf("GET /metrics: %w", err)
	}
	if code != http.StatusOK {
		return figures{}, fmt.Errorf("GET /metrics: HTTP %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return figures{}, fmt.Errorf("parse /metrics: %w", err)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "wschan_connections_open",
		"process_open_fds", "go_memstats_heap_inuse_bytes", "go_gc_duration_seconds"} {
		if fams[name] == nil {
			return figures{}, fmt.Errorf("/metrics has no %s", name)
		}
	}
	f := figures{
		at:         time.Now(),
		goroutines: int(value(fams, "go_goroutines", "")),
		rss:        int64(value(fams, "process_resident_memory_bytes", "")),
		open:       int(value(fams, "wschan_connections_open", "")),
		msgsIn:     int64(value(fams, "wschan_messages_total", "direction=in")),
		msgsOut:    int64(value(fams, "wschan_messages_total", "direction=out")),
		bytesIn:    int64(value(fams, "wschan_message_bytes_total", "direction=in")),
		bytesOut:   int64(value(fams, "wschan_message_bytes_total", "direction=out")),
		slow:       int64(value(fams, "wschan_slow_reader_disconnects_total", "")),
		openFDs:    int(value(fams, "process_open_fds", "")),

		heapAlloc:    int64(value(fams, "go_memstats_heap_alloc_bytes", "")),
		heapInuse:    int64(value(fams, "go_memstats_heap_inuse_bytes", "")),
		heapReleased: int64(value(fams, "go_memstats_heap_released_bytes", "")),
		stackInuse:   int64(value(fams, "go_memstats_stack_inuse_bytes", "")),
		gcs:          int64(value(fams, "go_gc_duration_seconds", "")),

		handshakes: byLabel(fams, "wschan_handshakes_total", "outcome"),
		closes:     byLabels(fams, "wschan_close_codes_total"),
	}
	f.vmRSS, err = vmRSS(s.pid())
	if err != nil {
		return figures{}, err
	}
	return f, nil
}

// value returns the value of the sample of family name whose labels, as
// "k=v,k=v" in the order served, are labels ("" for none); for a summary,
// its count.
func value(fams map[string]*dto.MetricFamily, name, labels string) float64 {
	fam := fams[name]
	if fam == nil {
		return 0
	}
	for _, m := range fam.GetMetric() {
		if labelString(m) != labels {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount())
		}
	}
	return 0
}

// byLabels returns every sample of a counter family by its label values
// joined with "/".
func byLabels(fams map[string]*dto.MetricFamily, name string) map[string]int64 {
	out := map[string]int64{}
	if fam := fams[name]; fam != nil {
		for _, m := range fam.GetMetric() {
			var vs []string
			for _, l := range m.GetLabel() {
				vs = append(vs, l.GetValue())
			}
			out[strings.Join(vs, "/")] = int64(m.GetCounter().GetValue())
		}
	}
	return out
}

// byLabel sums a counter family by one label's values (over the others,
// such as wschan_handshakes_total's proto).
func byLabel(fams map[string]*dto.MetricFamily, name, label string) map[string]int64 {
	out := map[string]int64{}
	if fam := fams[name]; fam != nil {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += int64(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	var kv []string
	for _, l := range m.GetLabel() {
		kv = append(kv, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(kv, ",")
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// waitOpen polls until the server reports want connections open.
func (s *server) waitOpen(ctx context.Context, want int, within time.Duration) (figures, error) {
	deadline := time.Now().Add(within)
	for {
		f, err := s.scrape(ctx)
		if err == nil && f.open == want {
			return f, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return f, err
			}
			return f, fmt.Errorf("%d connections open after %v, want %d", f.open, within, want)
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-s.exited:
			return f, fmt.Errorf("server exited: %v", s.err)
		case <-ctx.Done():
			return f, ctx.Err()
		}
	}
}

// settled says how the server came back to its baseline once idle.
type settled struct {
	final        figures
	goroutinesAt time.Duration // time from idle until back within bounds; -1: never
	rssAt        time.Duration
	trail        []figures // every 15 s, for the log
}

func rssLimit(base int64) int64 { return max(2*base, base+rssSlack) }

// settle polls the idle server until goroutines and RSS are back near
// their baseline, or within has passed. RSS takes minutes: an idle Go
// process collects garbage only every two minutes (forced GC), the
// engine's sync.Pool buffers (a bufio.Reader per connection and message
// buffers, about 50 MiB for 10,000 connections) survive the first
// collection in the pools' victim cache and are freed by the second, and
// only then does the scavenger give the pages back. Measured at 10,000
// connections: 3m31s and 4m2s from the last client leaving; the worst
// case is two forced collections, just over 4 minutes.
func (s *server) settle(t *testing.T, ctx context.Context, base figures, within time.Duration) settled {
	t.Helper()
	st := settled{goroutinesAt: -1, rssAt: -1}
	start := time.Now()
	lastTrail := time.Time{}
	for {
		f, err := s.scrape(ctx)
		if err != nil {
			t.Fatalf("settle: %v\n%s", err, s.logTail())
		}
		st.final = f
		el := time.Since(start)
		if st.goroutinesAt < 0 && f.goroutines <= base.goroutines+goroutineTol {
			st.goroutinesAt = el
		}
		if st.rssAt < 0 && f.rss <= rssLimit(base.rss) && f.vmRSS <= rssLimit(base.vmRSS) {
			st.rssAt = el
		}
		if f.at.Sub(lastTrail) >= 15*time.Second {
			st.trail = append(st.trail, f)
			lastTrail = f.at
			t.Logf("settle +%3.0fs: goroutines %d (baseline %d), RSS %s, VmRSS %s (limit %s); heap alloc %s, in use %s, released %s, stacks %s; GCs %d; fds %d",
				el.Seconds(), f.goroutines, base.goroutines, mib(f.rss), mib(f.vmRSS), mib(rssLimit(base.rss)),
				mib(f.heapAlloc), mib(f.heapInuse), mib(f.heapReleased), mib(f.stackInuse), f.gcs, f.openFDs)
		}
		if (st.goroutinesAt >= 0 && st.rssAt >= 0) || el > within {
			return st
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
}

// --- the clients ------------------------------------------------------------

// run is the state shared by all workers.
type run struct {
	cfg soakConfig
	url string

	binSrc, textSrc []byte // read-only payload sources, maxPayload+8 bytes

	connected atomic.Int64 // workers that have connected at least once
	live      atomic.Int64 // connections open now, client side
	running   atomic.Int64 // workers not yet returned

	sent, verified, bytesSent atomic.Int64
	corrupted, lost           atomic.Int64
	sendFails, unexpected     atomic.Int64 // Send failed; connection ended between exchanges
	dials, dialFails          atomic.Int64
	cleanDrops, abruptDrops   atomic.Int64
	closeFails, dropHangs     atomic.Int64 // Close returned an error; an RST channel never ended
	finalCloses               atomic.Int64

	verifiedAtSteady atomic.Int64

	problems problemLog

	latMu sync.Mutex
	lat   *hdrhistogram.Histogram // echo round trip, µs
}

func newRun(cfg soakConfig, url string) *run {
	r := &run{cfg: cfg, url: url, lat: hdrhistogram.New(1, int64(echoTimeout/time.Microsecond), 3)}
	src := rand.New(rand.NewPCG(1, 2))
	r.binSrc = make([]byte, maxPayload+8)
	for i := range r.binSrc {
		r.binSrc[i] = byte(src.Uint32())
	}
	// Text: ASCII mixed with 2-, 3- and 4-byte runes.
	runes := []rune("abcdefghijklmnopqrstuvwxyz 0123456789éßñøЖщ€漢字の🙂𝄞")
	tb := make([]byte, 0, maxPayload+16)
	for len(tb) < maxPayload+8 {
		tb = utf8.AppendRune(tb, runes[src.IntN(len(runes))])
	}
	r.textSrc = tb
	return r
}

func (r *run) resetRate() { r.verifiedAtSteady.Store(r.verified.Load()) }

// waitConnected waits until every worker has connected once.
func (r *run) waitConnected(ctx context.Context, s *server, within time.Duration) bool {
	deadline := time.After(within)
	for r.connected.Load() < int64(r.cfg.conns) {
		select {
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return false
		case <-s.exited:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (r *run) recordLatency(d time.Duration) {
	r.latMu.Lock()
	_ = r.lat.RecordValue(max(1, d.Microseconds()))
	r.latMu.Unlock()
}

// check fails the test for every kind of problem seen.
func (r *run) check(t *testing.T) {
	t.Helper()
	for _, c := range []struct {
		name string
		n    int64
		kind string
	}{
		{"corrupted echoes", r.corrupted.Load(), "corrupt"},
		{"lost echoes", r.lost.Load(), "lost"},
		{"failed sends", r.sendFails.Load(), "send"},
		{"connections ended by someone else", r.unexpected.Load(), "unexpected"},
		{"failed dials", r.dialFails.Load(), "dial"},
		{"Close errors", r.closeFails.Load(), "close"},
		{"reset connections that never ended", r.dropHangs.Load(), "hang"},
	} {
		if c.n != 0 {
			t.Errorf("%d %s; first ones:\n%s", c.n, c.name, r.problems.sample(c.kind))
		}
	}
}

// problemLog keeps the first few problems of each kind (the run's
// counters count them all).
type problemLog struct {
	mu      sync.Mutex
	samples map[string][]string
}

func (p *problemLog) add(kind, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.samples == nil {
		p.samples = map[string][]string{}
	}
	if len(p.samples[kind]) < 10 {
		p.samples[kind] = append(p.samples[kind], time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
}

func (p *problemLog) sample(kind string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples[kind]) == 0 {
		return "  (none)"
	}
	return "  " + strings.Join(p.samples[kind], "\n  ")
}

// worker keeps one connection busy, reconnecting now and then.
type worker struct {
	r   *run
	id  int
	rng *rand.Rand
	seq uint64

	ch  *wschan.Channel
	raw *net.TCPConn // the channel's socket, for an abrupt drop
}

func newWorker(r *run, id int) *worker {
	return &worker{r: r, id: id, rng: rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))}
}

func (w *worker) run(ctx context.Context, stop <-chan struct{}) {
	w.r.running.Add(1)
	defer w.r.running.Add(-1)
	if !w.dial(ctx, stop) {
		return
	}
	w.r.connected.Add(1)
	timer := time.NewTimer(w.randDur(0, thinkMax)) // spread the first sends
	defer timer.Stop()
	for {
		select {
		case <-stop:
			w.finalClose()
			return
		case <-w.ch.Done():
			w.r.unexpected.Add(1)
			w.r.problems.add("unexpected", "worker %d: connection ended between exchanges: code %d %q: %v",
				w.id, w.ch.CloseCode(), w.ch.CloseReason(), w.ch.Err())
			w.gone()
			if !w.dial(ctx, stop) {
				return
			}
			timer.Reset(w.randDur(thinkMin, thinkMax))
			continue
		case <-timer.C:
		}
		if !w.exchange(ctx) {
			w.discard()
			if !w.dial(ctx, stop) {
				return
			}
		} else if w.rng.IntN(dropEvery) == 0 {
			w.drop()
			if !w.dial(ctx, stop) {
				return
			}
		}
		timer.Reset(w.randDur(thinkMin, thinkMax))
	}
}

func (w *worker) randDur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(w.rng.Int64N(int64(hi-lo)))
}

// dial connects, retrying after a pause until it works or the soak stops.
func (w *worker) dial(ctx context.Context, stop <-chan struct{}) bool {
	for {
		select {
		case <-stop:
			return false
		default:
		}
		w.raw = nil
		opts := &wschan.DialOptions{
			Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
			NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := new(net.Dialer).DialContext(ctx, network, addr)
				if err == nil {
					w.raw = c.(*net.TCPConn)
				}
				return c, err
			},
		}
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		start := time.Now()
		ch, err := wschan.Dial(dctx, w.r.url, opts)
		cancel()
		w.r.dials.Add(1)
		if err == nil {
			w.ch = ch
			w.r.live.Add(1)
			return true
		}
		w.r.dialFails.Add(1)
		var he *wschan.HandshakeError
		if errors.As(err, &he) {
			w.r.problems.add("dial", "worker %d after %v: %v (Retry-After %q, body %q)", w.id,
				time.Since(start).Round(time.Millisecond), err, he.Header.Get("Retry-After"), he.Body)
		} else {
			w.r.problems.add("dial", "worker %d after %v: %v", w.id, time.Since(start).Round(time.Millisecond), err)
		}
		select {
		case <-stop:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(redialPause):
		}
	}
}

// size picks a payload size: log-uniform 16 B..4 KiB mostly, 4..64 KiB
// sometimes, 64..256 KiB rarely. Together they cover the three WebSocket
// length encodings (7-bit, 16-bit, 64-bit).
func (w *worker) size() int {
	switch p := w.rng.IntN(100); {
	case p < 80:
		return int(16 * math.Exp2(w.rng.Float64()*8))
	case p < 98:
		return 4<<10 + 1 + w.rng.IntN(60<<10)
	default:
		return 64<<10 + 1 + w.rng.IntN(192<<10)
	}
}

// payload makes the next message: a header with worker id and sequence,
// then bytes from the shared source at a random offset. Text stays valid
// UTF-8.
func (w *worker) payload() (wschan.MessageType, []byte) {
	n := min(max(w.size(), 16), maxPayload)
	w.seq++
	buf := make([]byte, n)
	copy(buf, fmt.Appendf(nil, "%05x%07x:", w.id, w.seq&0xfffffff))
	body := buf[headerLen:]
	if w.rng.IntN(2) == 0 {
		copy(body, w.r.binSrc[w.rng.IntN(len(w.r.binSrc)-len(body)):])
		return wschan.Binary, buf
	}
	src := w.r.textSrc
	off := w.rng.IntN(len(src) - len(body) - 4)
	for !utf8.RuneStart(src[off]) {
		off++
	}
	copy(body, src[off:])
	// The last rune may be cut: pad it out with ASCII.
	i := len(body) - 1
	for i > 0 && !utf8.RuneStart(body[i]) {
		i--
	}
	if !utf8.FullRune(body[i:]) {
		for j := i; j < len(body); j++ {
			body[j] = '.'
		}
	}
	return wschan.Text, buf
}

// exchange sends one message and checks its echo. It returns false when
// the connection should not be used any more.
func (w *worker) exchange(ctx context.Context) bool {
	typ, data := w.payload()
	ectx, cancel := context.WithTimeout(ctx, echoTimeout)
	defer cancel()
	start := time.Now()
	if err := w.ch.Send(ectx, typ, data); err != nil {
		w.r.sendFails.Add(1)
		w.r.problems.add("send", "worker %d seq %d (%s, %d B): %v (channel: code %d, err %v)",
			w.id, w.seq, typ, len(data), err, w.ch.CloseCode(), w.ch.Err())
		return false
	}
	w.r.sent.Add(1)
	w.r.bytesSent.Add(int64(len(data)))
	m, err := w.ch.Read(ectx)
	if err != nil {
		w.r.lost.Add(1)
		w.r.problems.add("lost", "worker %d seq %d (%s, %d B) after %v: %v (channel: code %d %q, err %v)",
			w.id, w.seq, typ, len(data), time.Since(start).Round(time.Millisecond), err,
			w.ch.CloseCode(), w.ch.CloseReason(), w.ch.Err())
		return false
	}
	rtt := time.Since(start)
	ok := m.Type == typ && bytes.Equal(m.Data, data)
	if !ok {
		w.r.corrupted.Add(1)
		w.r.problems.add("corrupt", "worker %d seq %d: %s", w.id, w.seq, describeMismatch(typ, data, m))
	}
	m.Release()
	if !ok {
		return false
	}
	w.r.verified.Add(1)
	w.r.recordLatency(rtt)
	return true
}

func describeMismatch(typ wschan.MessageType, want []byte, m wschan.Message) string {
	got := m.Data
	hdr := func(b []byte) string { return fmt.Sprintf("%q", b[:min(len(b), headerLen)]) }
	s := fmt.Sprintf("sent %s %d B header %s, got %s %d B header %s", typ, len(want), hdr(want), m.Type, len(got), hdr(got))
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return s + fmt.Sprintf(", first difference at byte %d", i)
		}
	}
	return s
}

// gone records that the current connection has ended.
func (w *worker) gone() {
	w.r.live.Add(-1)
	w.ch, w.raw = nil, nil
}

// discard closes a connection that went wrong, whatever state it is in.
func (w *worker) discard() {
	_ = w.ch.Close(wschan.StatusNormalClosure, "")
	w.gone()
}

// drop ends the connection on purpose between exchanges: half the time
// with a clean close, half the time by resetting the TCP socket without a
// close frame, as a client that vanished.
func (w *worker) drop() {
	if w.rng.IntN(2) == 0 || w.raw == nil {
		w.r.cleanDrops.Add(1)
		if err := w.ch.Close(wschan.StatusNormalClosure, "soak: reconnect"); err != nil {
			w.r.closeFails.Add(1)
			w.r.problems.add("close", "worker %d: Close: %v", w.id, err)
		}
		w.gone()
		return
	}
	w.r.abruptDrops.Add(1)
	_ = w.raw.SetLinger(0)
	_ = w.raw.Close()
	select {
	case <-w.ch.Done():
	case <-time.After(10 * time.Second):
		w.r.dropHangs.Add(1)
		w.r.problems.add("hang", "worker %d: channel still open 10s after its socket was reset", w.id)
		_ = w.ch.Close(wschan.StatusNormalClosure, "")
	}
	w.gone()
}

// finalClose leaves at the end of the soak.
func (w *worker) finalClose() {
	w.r.finalCloses.Add(1)
	if err := w.ch.Close(wschan.StatusNormalClosure, "soak over"); err != nil {
		w.r.closeFails.Add(1)
		w.r.problems.add("close", "worker %d: final Close: %v", w.id, err)
	}
	w.gone()
}

// --- monitoring -------------------------------------------------------------

// monitor samples the server every few seconds for peaks, and logs progress.
type monitor struct {
	cancel context.CancelFunc
	done   chan struct{}

	stopOnce sync.Once

	mu   sync.Mutex
	peak peaks
}

type peaks struct {
	goroutines int
	rss, vmRSS int64
	heapInuse  int64
	open       int
	openFDs    int
	samples    int
	scrapeErrs int
}

func startMonitor(t *testing.T, ctx context.Context, s *server, r *run, base figures) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{cancel: cancel, done: make(chan struct{})}
	m.peak = peaks{goroutines: base.goroutines, rss: base.rss, vmRSS: base.vmRSS, heapInuse: base.heapInuse, openFDs: base.openFDs}
	t.Cleanup(func() { m.stop() }) // no logging after the test, even when it fails early
	go func() {
		defer close(m.done)
		start := time.Now()
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		lastLog, lastVerified := start, int64(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			f, err := s.scrape(ctx)
			m.mu.Lock()
			if err != nil {
				m.peak.scrapeErrs++
				m.mu.Unlock()
				if ctx.Err() == nil {
					t.Logf("scrape: %v", err)
				}
				continue
			}
			m.peak.samples++
			m.peak.goroutines = max(m.peak.goroutines, f.goroutines)
			m.peak.rss = max(m.peak.rss, f.rss)
			m.peak.vmRSS = max(m.peak.vmRSS, f.vmRSS)
			m.peak.open = max(m.peak.open, f.open)
			m.peak.openFDs = max(m.peak.openFDs, f.openFDs)
			m.peak.heapInuse = max(m.peak.heapInuse, f.heapInuse)
			m.mu.Unlock()
			if now := time.Now(); now.Sub(lastLog) >= progressEach-time.Second {
				v := r.verified.Load()
				t.Logf("%6.0fs  open %5d (client %5d)  verified %8d  %6.0f msg/s  reconnects %6d  RSS %s  goroutines %6d  problems %d",
					now.Sub(start).Seconds(), f.open, r.live.Load(), v, float64(v-lastVerified)/now.Sub(lastLog).Seconds(),
					r.cleanDrops.Load()+r.abruptDrops.Load(), mib(f.rss), f.goroutines,
					r.corrupted.Load()+r.lost.Load()+r.sendFails.Load()+r.unexpected.Load()+r.dialFails.Load())
				lastLog, lastVerified = now, v
			}
		}
	}()
	return m
}

// stop ends the sampling and returns the peaks; it may be called again.
func (m *monitor) stop() peaks {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// --- helpers ----------------------------------------------------------------

func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// waitClientGoroutines waits until the test process is back to about base
// goroutines, and returns the count it got to.
func waitClientGoroutines(base int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= base+2 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond) // polling a process-wide count: nothing to wait on
	}
}

// dumpGoroutines writes every goroutine's stack to a file that outlives
// the test and returns its path.
func dumpGoroutines(t *testing.T) string {
	f, err := os.CreateTemp("", "wschan-soak-goroutines-*.txt")
	if err != nil {
		return "(no dump: " + err.Error() + ")"
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 1)
	return f.Name()
}

// checkServerCounters compares the server's counters with the client's.
func checkServerCounters(t *testing.T, r *run, f, base figures) {
	t.Helper()
	if got, want := f.msgsIn-base.msgsIn, r.sent.Load(); got != want {
		t.Errorf("server counted %d messages in, the clients sent %d", got, want)
	}
	if got, want := f.msgsOut-base.msgsOut, f.msgsIn-base.msgsIn; got != want {
		t.Errorf("server counted %d messages out for %d in", got, want)
	}
	if got, want := f.bytesIn-base.bytesIn, r.bytesSent.Load(); got != want {
		t.Errorf("server counted %d bytes in, the clients sent %d", got, want)
	}
	if got, want := f.handshakes["accepted"]-base.handshakes["accepted"], r.dials.Load()-r.dialFails.Load(); got != want {
		t.Errorf("server accepted %d handshakes, the clients completed %d dials", got, want)
	}
	for k, v := range f.handshakes {
		if k != "accepted" && v != base.handshakes[k] {
			t.Errorf("server refused %d handshakes as %s", v-base.handshakes[k], k)
		}
	}
	if f.slow != base.slow {
		t.Errorf("server dropped %d clients as slow readers", f.slow-base.slow)
	}
	if r.corrupted.Load()+r.lost.Load()+r.sendFails.Load()+r.unexpected.Load()+r.closeFails.Load()+r.dropHangs.Load() != 0 {
		return // the close codes below only add up on a clean run
	}
	want := map[string]int64{
		"1000/received": r.cleanDrops.Load() + r.finalCloses.Load(),
		"1006/none":     r.abruptDrops.Load(),
	}
	got := map[string]int64{}
	for k, v := range f.closes {
		if d := v - base.closes[k]; d != 0 {
			got[k] = d
		}
	}
	for k, v := range want {
		if v == 0 {
			delete(want, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server close codes (code/direction: count) %v, want %v", got, want)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// summary is the figures block printed at the end.
type summary struct {
	cfg                     soakConfig
	r                       *run
	base, atZero            figures
	peak                    peaks
	settle                  settled
	rampTook, steady        time.Duration
	drained                 time.Duration
	msgsSteady              int64
	clientBase, clientFinal int
}

func (s summary) String() string {
	r := s.r
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	at := func(d time.Duration) string {
		if d < 0 {
			return fmt.Sprintf("not within %v", s.cfg.settle)
		}
		return d.Round(time.Second).String()
	}
	r.latMu.Lock()
	lat := func(q float64) string {
		return (time.Duration(r.lat.ValueAtQuantile(q)) * time.Microsecond).Round(10 * time.Microsecond).String()
	}
	latLine := fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s", lat(50), lat(99), lat(99.9), lat(100))
	r.latMu.Unlock()
	sent := r.sent.Load()
	p("")
	p("--- wschan soak summary (%s, %s/%s, %d CPUs) ---", time.Now().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	p("connections        %d busy + %d idle (ramp %d/s, all open after %v), loopback, client: wschan library", s.cfg.conns, s.cfg.idle, s.cfg.ramp, s.rampTook.Round(100*time.Millisecond))
	p("duration           %v steady with all connections (asked %v)", s.steady.Round(time.Second), s.cfg.duration)
	p("messages           sent %d, verified %d; %.0f msg/s during the steady phase", sent, r.verified.Load(), float64(s.msgsSteady)/s.steady.Seconds())
	p("bytes              %s sent and echoed (mean %d B per message)", mib(r.bytesSent.Load()), r.bytesSent.Load()/max(1, sent))
	p("echo round trip    %s", latLine)
	p("reconnects         %d (clean 1000: %d, abrupt RST: %d); dials %d", r.cleanDrops.Load()+r.abruptDrops.Load(), r.cleanDrops.Load(), r.abruptDrops.Load(), r.dials.Load())
	p("corrupted          %d", r.corrupted.Load())
	p("lost               %d", r.lost.Load())
	p("other problems     dial failures %d, send failures %d, unexpected ends %d, close errors %d, reset hangs %d",
		r.dialFails.Load(), r.sendFails.Load(), r.unexpected.Load(), r.closeFails.Load(), r.dropHangs.Load())
	p("server RSS         baseline %s, peak %s, at 0 conns %s, final %s (VmRSS: %s, %s, %s, %s)",
		mib(s.base.rss), mib(s.peak.rss), mib(s.atZero.rss), mib(s.settle.final.rss),
		mib(s.base.vmRSS), mib(s.peak.vmRSS), mib(s.atZero.vmRSS), mib(s.settle.final.vmRSS))
	p("server heap        in use: baseline %s, peak %s, at 0 conns %s, final %s; %d GCs while settling",
		mib(s.base.heapInuse), mib(s.peak.heapInuse), mib(s.atZero.heapInuse), mib(s.settle.final.heapInuse), s.settle.final.gcs-s.atZero.gcs)
	p("per connection     %.1f KiB RSS at peak above baseline", float64(s.peak.rss-s.base.rss)/1024/float64(s.cfg.conns+s.cfg.idle))
	p("server goroutines  baseline %d, peak %d, at 0 conns %d, final %d", s.base.goroutines, s.peak.goroutines, s.atZero.goroutines, s.settle.final.goroutines)
	p("server open files  baseline %d, peak %d, final %d", s.base.openFDs, s.peak.openFDs, s.settle.final.openFDs)
	p("settle             conns 0 after %v; then goroutines back in %s, RSS under %s in %s",
		s.drained.Round(100*time.Millisecond), at(s.settle.goroutinesAt), mib(rssLimit(s.base.rss)), at(s.settle.rssAt))
	p("server counters    in %d, out %d messages; close codes %s", s.settle.final.msgsIn-s.base.msgsIn, s.settle.final.msgsOut-s.base.msgsOut, closeCodes(s.settle.final.closes))
	p("test process       goroutines %d before clients, %d after; %d metrics samples (%d failed)", s.clientBase, s.clientFinal, s.peak.samples, s.peak.scrapeErrs)
	p("---")
	return b.String()
}

func closeCodes(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
