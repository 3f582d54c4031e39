package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/wschan/wschan"
)

// maxTracked is the largest time the histograms hold; longer ones are
// recorded as this.
const maxTracked = int64(time.Hour)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxTracked, 3) // nanoseconds, 3 significant digits
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	v := min(max(int64(d), 1), maxTracked)
	_ = h.RecordValue(v) // v is in range: cannot fail
}

// Run runs the benchmark described by cfg and returns its result. It
// blocks until the run is over: Duration (or Messages on every connection)
// past the warmup, then the last replies, then every connection closed
// with 1000. When ctx ends, it stops sending (or holding) at once, waits
// for the replies in flight as at a normal end, and returns what was
// measured.
//
// Errors: one matching ErrConfig for a Config it cannot run (nothing is
// dialled); one matching ErrNoConnection, with the first dial error
// wrapped, when no connection could be opened at all (with the Result).
// Everything else (failed dials, corrupted or lost replies...) is counted
// in the Result: see Result.Failed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Room != "" {
		return runRoom(ctx, cfg)
	}
	r := &runner{
		cfg:      cfg,
		typ:      cfg.messageType(),
		connHist: newHistogram(),
		stop:     make(chan struct{}),
		closeNow: make(chan struct{}),
	}
	r.shards = make([]*shard, min(cfg.Conns, 2*runtime.GOMAXPROCS(0)))
	for i := range r.shards {
		r.shards[i] = &shard{rtt: newHistogram()}
	}
	r.firstSend.Store(math.MaxInt64)
	tick := make(chan struct{})
	r.tickCh.Store(&tick)
	var before procSample
	if cfg.ServerPID != 0 {
		if before, err = readProc(cfg.ServerPID); err != nil {
			return nil, fmt.Errorf("%w: --server-pid %d: %w", ErrConfig, cfg.ServerPID, err)
		}
	}
	return r.run(ctx, before)
}

// runner is one run's shared state.
type runner struct {
	cfg   Config
	typ   wschan.MessageType
	start time.Time

	shards []*shard // connection i records into shards[i%len]

	connMu   sync.Mutex
	connHist *hdrhistogram.Histogram // handshake times
	lastDial atomic.Int64            // since start, when the last dial ended

	opened, failed, open, closedEarly       atomic.Int64
	corrupted, lost, outOfOrder, unexpected atomic.Int64
	sent                                    atomic.Int64 // measured messages sent
	firstSend                               atomic.Int64 // since start, of the first measured message

	errMu        sync.Mutex
	firstErr     error
	firstDialErr error
	limited      string // the first refusal or close for a server limit

	stop     chan struct{} // closed: stop sending, or holding
	stopOnce sync.Once
	closeNow chan struct{} // closed: close every connection
	sendCtx  context.Context

	// tickCh is closed and replaced every tickPeriod: connections waiting
	// for a reply wake up on it to look for lost messages.
	tickCh atomic.Pointer[chan struct{}]

	cpuMu    sync.Mutex
	cpuStart *procSample // server sample at the warmup's end

	pacer *pacer // wakes open-loop connections on schedule; nil: Go's timers
}

// shard holds the round-trip times of some connections, so that
// connections do not all contend for one lock.
type shard struct {
	mu        sync.Mutex
	rtt       *hdrhistogram.Histogram
	received  int64         // measured intact replies
	replies   int64         // every intact reply, warmup included
	lastReply time.Duration // since start, the last measured reply
}

func (r *runner) since() time.Duration { return time.Since(r.start) }

func (r *runner) stopSending() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *runner) tick() <-chan struct{} { return *r.tickCh.Load() }

func (r *runner) tickPeriod() time.Duration {
	return min(max(r.cfg.ReplyTimeout/10, 10*time.Millisecond), 250*time.Millisecond)
}

// limit keeps what the server said when it refused or closed a
// connection for one of its limits, if it is the first such answer.
func (r *runner) limit(what string) {
	r.errMu.Lock()
	if r.limited == "" {
		r.limited = what
	}
	r.errMu.Unlock()
}

// limitOf says what err tells of a server limit: a handshake answered 429
// or 503, a close from the server with 1008 or 1013; or "".
func limitOf(err error) string {
	if he, ok := errors.AsType[*wschan.HandshakeError](err); ok &&
		(he.StatusCode == http.StatusTooManyRequests || he.StatusCode == http.StatusServiceUnavailable) {
		body, _, _ := strings.Cut(strings.TrimSpace(string(he.Body)), "\n")
		return fmt.Sprintf("answered %d %q", he.StatusCode, body)
	}
	if ce, ok := errors.AsType[*wschan.CloseError](err); ok && ce.Remote &&
		(ce.Code == wschan.StatusPolicyViolation || ce.Code == wschan.StatusTryAgainLater) {
		return fmt.Sprintf("closed with %d %q", int(ce.Code), ce.Reason)
	}
	return ""
}

// fail keeps err if it is the first error of the run.
func (r *runner) fail(err error) {
	r.errMu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.errMu.Unlock()
}

func (r *runner) run(ctx context.Context, before procSample) (*Result, error) {
	cfg := &r.cfg
	r.start = time.Now()
	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	r.sendCtx = sendCtx

	// Helpers: they end when run does.
	var helpers sync.WaitGroup
	done := make(chan struct{})
	defer helpers.Wait()
	defer close(done)
	if cfg.Rate > 0 && !cfg.Hold {
		// Without a kernel timer (not Linux) the connections keep to the
		// schedule with Go's timers, to about a millisecond.
		if p, err := startPacer(r.since); err == nil {
			r.pacer = p
			defer p.close() // the connections are done by then
		}
	}
	after := func(d time.Duration, f func()) {
		helpers.Go(func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				f()
			case <-done:
			}
		})
	}
	helpers.Go(func() {
		t := time.NewTicker(r.tickPeriod())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				next := make(chan struct{})
				close(*r.tickCh.Swap(&next))
			case <-done:
				return
			}
		}
	})
	helpers.Go(func() {
		select {
		case <-ctx.Done():
			r.stopSending()
		case <-done:
		}
	})
	// A send that blocks on a server that does not read is given up
	// ReplyTimeout (and a second) after the end.
	helpers.Go(func() {
		select {
		case <-r.stop:
		case <-done:
			return
		}
		t := time.NewTimer(cfg.ReplyTimeout + time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			cancelSend()
		case <-done:
		}
	})
	if cfg.ServerPID != 0 {
		if cfg.Warmup > 0 && !cfg.Hold {
			after(cfg.Warmup, func() {
				if s, err := readProc(cfg.ServerPID); err == nil {
					r.cpuMu.Lock()
					r.cpuStart = &s
					r.cpuMu.Unlock()
				}
			})
		} else {
			r.cpuStart = &before
		}
	}
	if !cfg.Hold && cfg.Messages == 0 {
		after(cfg.Warmup+cfg.Duration, r.stopSending)
	}
	if cfg.Progress != nil {
		helpers.Go(func() { r.progress(cfg.Progress, done) })
	}

	// Connections. drained counts those still sending or waiting for
	// replies (or holding); dials those still dialling; all of them.
	var drained, dials, all sync.WaitGroup
	drained.Add(1)
	dials.Add(1)
	all.Go(func() {
		defer drained.Done()
		defer dials.Done()
		r.launch(ctx, &drained, &dials, &all)
	})
	if cfg.Hold {
		dials.Wait()
		t := time.NewTimer(cfg.Duration)
		select {
		case <-t.C:
		case <-r.stop:
		}
		t.Stop()
		r.stopSending()
	}
	drained.Wait()
	var server *ServerStats
	if cfg.ServerPID != 0 {
		server = r.serverStats(before)
	}
	client := r.clientStats()
	elapsedAtEnd := r.since()
	close(r.closeNow)
	all.Wait()
	r.stopSending()
	res, err := r.result(server, elapsedAtEnd)
	if res != nil {
		res.Client = client
	}
	return res, err
}

// launch starts a goroutine per connection, at cfg.Ramp per second.
func (r *runner) launch(ctx context.Context, drained, dials, all *sync.WaitGroup) {
	var t *time.Timer
	for i := range r.cfg.Conns {
		if r.cfg.Ramp > 0 && i > 0 {
			at := time.Duration(float64(i) / r.cfg.Ramp * float64(time.Second))
			if d := at - r.since(); d > 0 {
				if t == nil {
					t = time.NewTimer(d)
					defer t.Stop()
				} else {
					t.Reset(d)
				}
				select {
				case <-t.C:
				case <-r.stop:
					return
				}
			}
		}
		select {
		case <-r.stop:
			return
		default:
		}
		drained.Add(1)
		dials.Add(1)
		all.Go(func() { r.connect(ctx, i, drained, dials) })
	}
}

// connect dials connection id, runs it, and closes it when told.
func (r *runner) connect(ctx context.Context, id int, drained, dials *sync.WaitGroup) {
	c := &conn{
		r:        r,
		id:       id,
		shard:    r.shards[id%len(r.shards)],
		want:     pattern(id, r.cfg.Size),
		slots:    make(chan struct{}, r.cfg.Pipeline),
		inflight: make(map[uint64]flight, r.cfg.Pipeline),
	}
	c.out = bytes.Clone(c.want)
	for range r.cfg.Pipeline {
		c.slots <- struct{}{}
	}
	opts := *r.cfg.Dial
	if r.cfg.Sources > 1 && opts.NetDial == nil {
		opts.NetDial = sourceDial(id, r.cfg.Sources)
	}
	opts.OnMessage = c.onMessage
	if r.cfg.Hold {
		opts.OnMessage = func(*wschan.Channel, wschan.Message) {} // an idle connection ignores what the server pushes
	}
	opts.OnStateChange = c.onState
	t0 := time.Now()
	ch, err := wschan.Dial(ctx, r.cfg.URL, &opts)
	took := time.Since(t0)
	for end := int64(r.since()); ; {
		last := r.lastDial.Load()
		if end <= last || r.lastDial.CompareAndSwap(last, end) {
			break
		}
	}
	dials.Done()
	if err != nil {
		drained.Done()
		if ctx.Err() != nil {
			return // interrupted, not refused
		}
		r.failed.Add(1)
		r.errMu.Lock()
		if r.firstDialErr == nil {
			r.firstDialErr = err
		}
		r.errMu.Unlock()
		if l := limitOf(err); l != "" {
			r.limit(l)
		}
		r.fail(fmt.Errorf("dial: %w", err))
		return
	}
	r.connMu.Lock()
	record(r.connHist, took)
	r.connMu.Unlock()
	r.opened.Add(1)
	r.open.Add(1)
	c.ch = ch
	c.openedAt = r.since()
	if r.cfg.Hold {
		select {
		case <-r.stop:
		case <-ch.Done():
		}
	} else {
		c.echo()
	}
	c.checkEnded()
	drained.Done()
	<-r.closeNow
	if !c.checkEnded() {
		_ = ch.Close(wschan.StatusNormalClosure, "")
	}
}

// checkEnded reports whether the connection has ended (before this side
// closed it), and counts it closed early the first time.
func (c *conn) checkEnded() bool {
	select {
	case <-c.ch.Done():
	default:
		return false
	}
	if !c.early {
		c.early = true
		c.r.closedEarly.Add(1)
		c.r.fail(fmt.Errorf("connection %d closed early: %w", c.id, c.ch.Err()))
		if l := limitOf(c.ch.Err()); l != "" {
			c.r.limit(l)
		}
	}
	return true
}

// conn is one connection's state.
type conn struct {
	r        *runner
	id       int
	ch       *wschan.Channel
	shard    *shard
	openedAt time.Duration
	want     []byte        // the pattern every message is made of
	out      []byte        // the message being sent: want with a header
	slots    chan struct{} // one token per message that may be in flight
	sleep    sleeper       // for open-loop schedules
	sent     int64         // measured messages sent
	early    bool          // counted closed early

	mu       sync.Mutex
	inflight map[uint64]flight // by sequence number
	checking bool              // onMessage took a message out of inflight and is still counting it
	replied  bool
	maxSeq   uint64 // highest sequence number replied to
}

// flight is a message waiting for its reply.
type flight struct {
	at       time.Duration // since start: when it was due (RTT counts from here)
	sentAt   time.Duration // since start: when it was sent (ReplyTimeout counts from here)
	measured bool
}

// echo sends messages and checks the replies until the end, then waits
// for the last replies.
func (c *conn) echo() {
	r, cfg := c.r, &c.r.cfg
	var interval, next time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
		next = c.openedAt + interval*time.Duration(c.id)/time.Duration(cfg.Conns)
	}
	end := cfg.Warmup + cfg.Duration
	c.sleep = sleeper{p: r.pacer, since: r.since}
	defer c.sleep.release()
loop:
	for seq := uint64(0); ; seq++ {
		if cfg.Messages > 0 && c.sent >= int64(cfg.Messages) {
			break
		}
		select {
		case <-r.stop:
			break loop
		default:
		}
		if !c.acquire() {
			break
		}
		at := r.since()
		if interval > 0 {
			at, next = next, next+interval
			if !c.sleepUntil(at) {
				c.slots <- struct{}{}
				break
			}
		}
		if cfg.Messages == 0 && at >= end {
			c.slots <- struct{}{}
			break
		}
		if !c.send(seq, at) {
			break
		}
	}
	r.sent.Add(c.sent)
	c.drain()
}

// send sends message seq, due at at; false means the connection is over.
func (c *conn) send(seq uint64, at time.Duration) bool {
	r := c.r
	measured := at >= r.cfg.Warmup
	stamp(c.out, c.id, seq)
	c.mu.Lock()
	c.inflight[seq] = flight{at: at, sentAt: r.since(), measured: measured}
	c.mu.Unlock()
	if err := c.ch.Send(r.sendCtx, r.typ, c.out); err != nil {
		c.mu.Lock()
		_, pending := c.inflight[seq]
		delete(c.inflight, seq)
		c.mu.Unlock()
		if pending {
			c.slots <- struct{}{}
		}
		// A send fails when the connection is ending: wait for the end,
		// which checkEnded reports (closed early) with its reason, which
		// the send error may not tell.
		t := time.NewTimer(wschan.DefaultCloseTimeout)
		select {
		case <-c.ch.Done():
		case <-t.C:
		}
		t.Stop()
		if !errors.Is(err, wschan.ErrConnectionLost) && !errors.Is(err, wschan.ErrClosed) && wschan.CloseStatus(err) < 0 {
			r.fail(fmt.Errorf("connection %d: send: %w", c.id, err))
		}
		return false
	}
	if measured {
		c.sent++
		for a := int64(at); ; {
			first := r.firstSend.Load()
			if a >= first || r.firstSend.CompareAndSwap(first, a) {
				break
			}
		}
	}
	return true
}

// acquire waits for a slot for one more message in flight; false means
// stop.
func (c *conn) acquire() bool {
	for {
		select {
		case <-c.slots:
			return true
		case <-c.r.stop:
			return false
		case <-c.ch.Done():
			return false
		case <-c.r.tick():
			c.expire()
		}
	}
}

// sleepUntil waits until at (since start); false means stop.
func (c *conn) sleepUntil(at time.Duration) bool {
	return c.sleep.until(at, c.r.stop, c.ch.Done())
}

// drain waits until every message in flight has its reply or is lost.
func (c *conn) drain() {
	for {
		c.mu.Lock()
		idle := len(c.inflight) == 0 && !c.checking
		c.mu.Unlock()
		if idle {
			return
		}
		select {
		case <-c.slots:
		case <-c.ch.Done():
			c.loseAll()
			return
		case <-c.r.tick():
			c.expire()
		}
	}
}

// expire counts as lost the messages that waited ReplyTimeout.
func (c *conn) expire() {
	cut := c.r.since() - c.r.cfg.ReplyTimeout
	n := 0
	c.mu.Lock()
	for seq, f := range c.inflight {
		if f.sentAt <= cut {
			delete(c.inflight, seq)
			n++
		}
	}
	c.mu.Unlock()
	if n == 0 {
		return
	}
	c.r.lost.Add(int64(n))
	c.r.fail(fmt.Errorf("connection %d: no reply within %v (--reply-timeout)", c.id, c.r.cfg.ReplyTimeout))
	for range n {
		c.slots <- struct{}{}
	}
}

// loseAll counts every message in flight as lost: the connection ended.
func (c *conn) loseAll() {
	c.mu.Lock()
	n := len(c.inflight)
	clear(c.inflight)
	c.mu.Unlock()
	c.r.lost.Add(int64(n))
}

// onMessage checks a reply, on the channel's read goroutine.
func (c *conn) onMessage(_ *wschan.Channel, m wschan.Message) {
	r := c.r
	now := r.since()
	id, seq, ok := parseHeader(m.Data)
	if !ok || id != c.id {
		r.corrupted.Add(1)
		r.fail(fmt.Errorf("connection %d: corrupted reply: header %q is not this connection's", c.id, clip(m.Data)))
		return
	}
	c.mu.Lock()
	f, found := c.inflight[seq]
	ooo := false
	if found {
		delete(c.inflight, seq)
		c.checking = true
		ooo = c.replied && seq < c.maxSeq
		if !c.replied || seq > c.maxSeq {
			c.replied, c.maxSeq = true, seq
		}
	}
	c.mu.Unlock()
	if !found {
		r.unexpected.Add(1)
		r.fail(fmt.Errorf("connection %d: unexpected reply to message %d: duplicate, late or never sent", c.id, seq))
		return
	}
	c.check(m, seq, f, ooo, now)
	c.mu.Lock()
	c.checking = false
	c.mu.Unlock()
	c.slots <- struct{}{} // after the counting, so that drain sees it done
}

// check verifies and counts the reply m to message seq.
func (c *conn) check(m wschan.Message, seq uint64, f flight, ooo bool, now time.Duration) {
	r := c.r
	if m.Type != r.typ || len(m.Data) != len(c.want) || !bytes.Equal(m.Data[headerLen:], c.want[headerLen:]) {
		r.corrupted.Add(1)
		r.fail(fmt.Errorf("connection %d: corrupted reply to message %d: %s", c.id, seq, c.diff(m)))
		return
	}
	if ooo {
		r.outOfOrder.Add(1)
		r.fail(fmt.Errorf("connection %d: reply to message %d came after a later one's", c.id, seq))
	}
	s := c.shard
	s.mu.Lock()
	s.replies++
	if f.measured {
		s.received++
		record(s.rtt, now-f.at)
		s.lastReply = max(s.lastReply, now)
	}
	s.mu.Unlock()
}

// diff says how a reply differs from its message.
func (c *conn) diff(m wschan.Message) string {
	switch {
	case m.Type != c.r.typ:
		return fmt.Sprintf("%v instead of %v", m.Type, c.r.typ)
	case len(m.Data) != len(c.want):
		return fmt.Sprintf("%d bytes instead of %d", len(m.Data), len(c.want))
	}
	for i := headerLen; i < len(m.Data); i++ {
		if m.Data[i] != c.want[i] {
			return fmt.Sprintf("byte %d is %#02x instead of %#02x", i, m.Data[i], c.want[i])
		}
	}
	return "differs"
}

func clip(b []byte) []byte { return b[:min(len(b), headerLen)] }

// onState counts the connections open, for the progress line.
func (c *conn) onState(s wschan.State, _ error) {
	if s == wschan.StateClosed {
		c.r.open.Add(-1)
	}
}

// progress writes a progress line every second until done.
func (r *runner) progress(w io.Writer, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	h := newHistogram()
	var lastReplies int64
	last := r.start
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-t.C:
			h.Reset()
			var replies int64
			for _, s := range r.shards {
				s.mu.Lock()
				h.Merge(s.rtt)
				replies += s.replies
				s.mu.Unlock()
			}
			rate := float64(replies-lastReplies) / now.Sub(last).Seconds()
			lastReplies, last = replies, now
			errs := r.failed.Load() + r.corrupted.Load() + r.lost.Load() + r.outOfOrder.Load() + r.unexpected.Load() + r.closedEarly.Load()
			line := fmt.Sprintf("%4.0fs  conns %d/%d", now.Sub(r.start).Seconds(), r.open.Load(), r.cfg.Conns)
			if !r.cfg.Hold {
				line += fmt.Sprintf("  %.0f msg/s  p50 %s  p99 %s",
					rate, formatDuration(time.Duration(h.ValueAtQuantile(50))), formatDuration(time.Duration(h.ValueAtQuantile(99))))
			}
			fmt.Fprintf(w, "\r\033[K%s  errors %d", line, errs)
		}
	}
}

// clientStats samples this process with every connection still open, or
// returns nil where /proc cannot tell.
func (r *runner) clientStats() *ClientStats {
	s, err := readProc(os.Getpid())
	if err != nil || s.rss == 0 {
		return nil
	}
	c := &ClientStats{RSS: s.rss}
	if n := r.opened.Load(); n > 0 {
		c.RSSPerConn = float64(s.rss) / float64(n)
	}
	return c
}

// serverStats samples the server after the run, before closing.
func (r *runner) serverStats(before procSample) *ServerStats {
	s := &ServerStats{PID: r.cfg.ServerPID, RSSBefore: before.rss}
	now, err := readProc(r.cfg.ServerPID)
	if err != nil {
		r.fail(err)
		return s
	}
	s.RSSAfter = now.rss
	if n := r.opened.Load(); n > 0 {
		s.RSSPerConn = float64(now.rss-before.rss) / float64(n)
	}
	r.cpuMu.Lock()
	start := r.cpuStart
	r.cpuMu.Unlock()
	if start != nil {
		s.CPU = now.cpu - start.cpu
	}
	return s
}

// result gathers the counters into a Result.
func (r *runner) result(server *ServerStats, elapsed time.Duration) (*Result, error) {
	cfg := r.cfg
	cfg.Progress = nil
	res := &Result{
		URL:     cfg.URL,
		Config:  cfg,
		Elapsed: elapsed,
		Sent:    r.sent.Load(),
		Server:  server,
		Conns: ConnStats{
			Attempted:   r.opened.Load() + r.failed.Load(),
			Opened:      r.opened.Load(),
			Failed:      r.failed.Load(),
			ClosedEarly: r.closedEarly.Load(),
			Connect:     latency(r.connHist),
		},
		Errors: Errors{
			ConnectFailures: r.failed.Load(),
			Corrupted:       r.corrupted.Load(),
			Lost:            r.lost.Load(),
			OutOfOrder:      r.outOfOrder.Load(),
			Unexpected:      r.unexpected.Load(),
			ClosedEarly:     r.closedEarly.Load(),
		},
	}
	if cfg.Hold {
		res.Mode = "hold"
	} else {
		res.Mode = "echo"
	}
	if d := time.Duration(r.lastDial.Load()); d > 0 {
		res.Conns.PerSecond = float64(res.Conns.Opened) / d.Seconds()
	}
	h := newHistogram()
	var lastReply time.Duration
	for _, s := range r.shards {
		s.mu.Lock()
		h.Merge(s.rtt)
		res.Received += s.received
		lastReply = max(lastReply, s.lastReply)
		s.mu.Unlock()
	}
	res.RTT = latency(h)
	if first := time.Duration(r.firstSend.Load()); res.Received > 0 && lastReply > first {
		res.Measured = lastReply - first
		res.MessagesPerSecond = float64(res.Received) / res.Measured.Seconds()
		res.BytesPerSecond = res.MessagesPerSecond * float64(cfg.Size)
	}
	if server != nil && res.Received > 0 {
		server.CPUPerMessage = float64(server.CPU) / float64(time.Microsecond) / float64(res.Received)
	}
	r.errMu.Lock()
	firstErr, firstDialErr := r.firstErr, r.firstDialErr
	res.Limited = r.limited
	r.errMu.Unlock()
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	if res.Conns.Opened == 0 && firstDialErr != nil {
		return res, fmt.Errorf("%w: %w", ErrNoConnection, firstDialErr)
	}
	return res, nil
}

func latency(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	q := func(p float64) time.Duration { return time.Duration(h.ValueAtQuantile(p)) }
	return Latency{
		Count: h.TotalCount(),
		P50:   q(50), P90: q(90), P99: q(99), P999: q(99.9),
		Max:  time.Duration(h.Max()),
		Mean: time.Duration(h.Mean()),
	}
}
