package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/wschan/wschan"
)

// Room messages: a kind byte ('R' measured, 'P' probe), then lower-case
// hex: 6 digits of sender, 10 of sequence, 16 of nanoseconds since the
// run started (when the message was due), then letters up to Size.
const roomHeaderLen = 1 + 6 + 10 + 16

// roomRun is one fan-out run's shared state.
type roomRun struct {
	cfg      Config
	start    time.Time
	members  []*roomMember
	joined   atomic.Int64 // members that have seen a probe
	sent     atomic.Int64 // measured messages published
	measure  atomic.Bool  // senders are sending measured messages
	sending  sync.WaitGroup
	reading  sync.WaitGroup
	firstErr atomic.Pointer[string]
	limited  atomic.Pointer[string]
	pacer    *pacer // wakes publishers on schedule; nil: Go's timers
}

func (rr *roomRun) since() time.Duration { return time.Since(rr.start) }

// roomMember is one connection: it publishes at its share of Rate and
// checks every message it receives.
type roomMember struct {
	id        int
	ch        *wschan.Channel
	hist      *hdrhistogram.Histogram // delay from due to receipt; the reader's alone
	lastSeq   []int64                 // per sender; the reader's alone
	delivered atomic.Int64
	ooo       atomic.Int64
	corrupt   atomic.Int64
	probed    atomic.Bool
	ended     atomic.Bool // the connection ended before the run did
}

func (rr *roomRun) fail(err error) {
	s := err.Error()
	rr.firstErr.CompareAndSwap(nil, &s)
}

// roomURL is cfg.URL with the path of the room, unless it has one already.
func roomURL(raw, room string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return "", fmt.Errorf("%w: %q is not a ws:// or wss:// URL", ErrConfig, raw)
	}
	if !strings.HasPrefix(u.Path, "/ws/room/") {
		u.Path = "/ws/room/" + room
	}
	return u.String(), nil
}

// runRoom is Run in room mode: see Config.Room.
func runRoom(ctx context.Context, cfg Config) (*Result, error) {
	var targets []string
	for raw := range strings.SplitSeq(cfg.URL, ",") {
		target, err := roomURL(strings.TrimSpace(raw), cfg.Room)
		if err != nil {
			return nil, err
		}
		targets = append(targets, target)
	}
	rr := &roomRun{cfg: cfg, start: time.Now()}
	res := &Result{URL: strings.Join(targets, ","), Mode: "room", Config: cfg}
	res.Config.Progress = nil
	connHist := newHistogram()

	// Connect every member, at Ramp per second.
	var ramp *time.Ticker
	if cfg.Ramp > 0 {
		ramp = time.NewTicker(time.Duration(float64(time.Second) / cfg.Ramp))
		defer ramp.Stop()
	}
	var firstDialErr error
	for i := range cfg.Conns {
		if ramp != nil && i > 0 {
			select {
			case <-ramp.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		m := &roomMember{id: i, hist: newHistogram(), lastSeq: make([]int64, cfg.Conns)}
		for j := range m.lastSeq {
			m.lastSeq[j] = -1
		}
		t0 := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ch, err := wschan.Dial(dctx, targets[i%len(targets)], cfg.Dial)
		cancel()
		res.Conns.Attempted++
		if err != nil {
			res.Conns.Failed++
			res.Errors.ConnectFailures++
			if firstDialErr == nil {
				firstDialErr = err
				rr.fail(fmt.Errorf("dial: %w", err))
			}
			if l := limitOf(err); l != "" {
				rr.limited.CompareAndSwap(nil, &l)
			}
			continue
		}
		record(connHist, time.Since(t0))
		res.Conns.Opened++
		m.ch = ch
		rr.members = append(rr.members, m)
		rr.reading.Add(1)
		go rr.read(m)
	}
	res.Conns.Connect = latency(connHist)
	if dialed := time.Since(rr.start); dialed > 0 {
		res.Conns.PerSecond = float64(res.Conns.Opened) / dialed.Seconds()
	}
	defer rr.closeAll()
	if len(rr.members) == 0 {
		res.Elapsed = time.Since(rr.start)
		return res, fmt.Errorf("%w: %w", ErrNoConnection, firstDialErr)
	}

	// Wait until every member is in the room: the first one publishes a
	// probe until each has heard one.
	n := int64(len(rr.members))
	probeTick := time.NewTicker(100 * time.Millisecond)
	deadline := time.After(cfg.ReplyTimeout + 10*time.Second)
	for seq := int64(0); rr.joined.Load() < n-rr.endedCount(); seq++ {
		if err := rr.members[0].ch.Send(ctx, cfg.messageType(), rr.message('P', 0, seq, 0)); err != nil {
			break
		}
		select {
		case <-probeTick.C:
		case <-deadline:
			rr.fail(fmt.Errorf("only %d of %d members heard the room within %v", rr.joined.Load(), n, cfg.ReplyTimeout+10*time.Second))
			seq = -2
		case <-ctx.Done():
		}
		if seq < 0 || ctx.Err() != nil {
			break
		}
	}
	probeTick.Stop()
	joined := rr.joined.Load()

	// Publish for Duration (or Messages each), each member at Rate/Conns.
	// Cancelled, never timed out: a Send whose context ends mid-write with
	// DeadlineExceeded after one that ended with Canceled panics in the
	// library (conn.go stores both in one atomic.Value; reported).
	runCtx, stop := context.WithCancel(ctx)
	if cfg.Messages == 0 {
		defer time.AfterFunc(cfg.Warmup+cfg.Duration, stop).Stop()
	}
	measureFrom := time.Now()
	rr.measure.Store(true)
	interval := time.Duration(float64(time.Second) * float64(len(rr.members)) / cfg.Rate)
	if p, err := startPacer(rr.since); err == nil {
		rr.pacer = p // as in echo mode: see pacer
	}
	for _, m := range rr.members {
		rr.sending.Add(1)
		go rr.publish(runCtx, m, measureFrom, interval)
	}
	rr.sending.Wait()
	if rr.pacer != nil {
		rr.pacer.close() // the publishers are done
	}
	stop()
	sent := rr.sent.Load()

	// Wait for the last deliveries: until all came, or none for ReplyTimeout.
	expected := sent * joined
	last, lastChange := int64(-1), time.Now()
	wait := time.NewTicker(20 * time.Millisecond)
	for {
		got := rr.delivered()
		if got >= expected || time.Since(lastChange) > cfg.ReplyTimeout {
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		select {
		case <-wait.C:
		case <-ctx.Done():
			lastChange = time.Time{}
		}
	}
	wait.Stop()
	res.Measured = time.Since(measureFrom)
	res.Elapsed = time.Since(rr.start)
	rr.closeAll()

	delay := newHistogram()
	for _, m := range rr.members {
		delay.Merge(m.hist)
		res.Errors.OutOfOrder += m.ooo.Load()
		res.Errors.Corrupted += m.corrupt.Load()
		if m.ended.Load() {
			res.Conns.ClosedEarly++
		}
	}
	res.Errors.ClosedEarly = res.Conns.ClosedEarly
	res.Sent, res.Received, res.Expected = sent, rr.delivered(), expected
	if res.Received < expected {
		res.Errors.Lost = expected - res.Received
	}
	res.RTT = latency(delay)
	if res.Measured > 0 {
		res.MessagesPerSecond = float64(res.Received) / res.Measured.Seconds()
		res.BytesPerSecond = res.MessagesPerSecond * float64(max(cfg.Size, roomHeaderLen))
	}
	if p := rr.firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	if p := rr.limited.Load(); p != nil {
		res.Limited = *p
	}
	return res, nil
}

func (rr *roomRun) delivered() int64 {
	var n int64
	for _, m := range rr.members {
		n += m.delivered.Load()
	}
	return n
}

func (rr *roomRun) endedCount() int64 {
	var n int64
	for _, m := range rr.members {
		if m.ended.Load() && !m.probed.Load() {
			n++
		}
	}
	return n
}

// message builds one message of kind from sender with seq, due at (since
// the start).
func (rr *roomRun) message(kind byte, sender int, seq int64, at time.Duration) []byte {
	b := make([]byte, 0, max(rr.cfg.Size, roomHeaderLen))
	b = append(b, kind)
	b = fmt.Appendf(b, "%06x%010x%016x", sender, seq, int64(at))
	for i := 0; len(b) < cap(b); i++ {
		b = append(b, 'a'+byte((sender+i)%26))
	}
	return b
}

// publish sends measured messages from m every interval, on schedule
// (open loop: each is stamped with when it was due), until ctx ends or
// Messages are sent.
func (rr *roomRun) publish(ctx context.Context, m *roomMember, from time.Time, interval time.Duration) {
	defer rr.sending.Done()
	offset := interval * time.Duration(m.id) / time.Duration(len(rr.members)) // spread the members over the interval
	typ := rr.cfg.messageType()
	sleep := sleeper{p: rr.pacer, since: rr.since}
	defer sleep.release()
	for seq := int64(0); rr.cfg.Messages == 0 || seq < int64(rr.cfg.Messages); seq++ {
		due := from.Add(offset + time.Duration(seq)*interval)
		if !sleep.until(due.Sub(rr.start), ctx.Done(), nil) {
			return
		}
		if err := m.ch.Send(ctx, typ, rr.message('R', m.id, seq, due.Sub(rr.start))); err != nil {
			if ctx.Err() == nil {
				rr.fail(fmt.Errorf("member %d: send: %w", m.id, err))
			}
			return
		}
		rr.sent.Add(1)
	}
}

// read checks every message m receives until its connection ends.
func (rr *roomRun) read(m *roomMember) {
	defer rr.reading.Done()
	for msg := range m.ch.Messages(context.Background()) {
		now := time.Since(rr.start)
		rr.check(m, msg.Data, now)
		msg.Release()
	}
	if err := m.ch.Err(); !errors.Is(err, wschan.ErrClosed) {
		if !rr.measure.Load() || m.ch.CloseCode() != wschan.StatusNormalClosure {
			m.ended.Store(true)
			rr.fail(fmt.Errorf("member %d: %w", m.id, err))
			if l := limitOf(err); l != "" {
				rr.limited.CompareAndSwap(nil, &l)
			}
		}
	}
}

func (rr *roomRun) check(m *roomMember, b []byte, now time.Duration) {
	if len(b) < roomHeaderLen {
		m.corrupt.Add(1)
		return
	}
	sender, err1 := strconv.ParseUint(string(b[1:7]), 16, 32)
	seq, err2 := strconv.ParseInt(string(b[7:17]), 16, 64)
	at, err3 := strconv.ParseInt(string(b[17:33]), 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || int(sender) >= len(m.lastSeq) || len(b) != max(rr.cfg.Size, roomHeaderLen) {
		m.corrupt.Add(1)
		return
	}
	switch b[0] {
	case 'P':
		if !m.probed.Swap(true) {
			rr.joined.Add(1)
		}
	case 'R':
		if seq <= m.lastSeq[sender] {
			m.ooo.Add(1)
		}
		m.lastSeq[sender] = max(m.lastSeq[sender], seq)
		record(m.hist, now-time.Duration(at))
		m.delivered.Add(1)
	default:
		m.corrupt.Add(1)
	}
}

// closeAll closes every member with 1000 and waits for the readers.
func (rr *roomRun) closeAll() {
	var wg sync.WaitGroup
	for _, m := range rr.members {
		wg.Go(func() { _ = m.ch.Close(wschan.StatusNormalClosure, "") })
	}
	wg.Wait()
	rr.reading.Wait()
}
