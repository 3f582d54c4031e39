package pipe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
)

// DefaultDrainTimeout is how long Run waits, after its input ended, for the
// echoes of the messages it sent.
const DefaultDrainTimeout = 2 * time.Second

// Config configures Run. The zero value reads nothing, discards what
// arrives, and closes once the (empty) input has drained. Run copies it.
type Config struct {
	// In is read for outgoing messages: one per line, or per NUL-separated
	// record with NullSeparated. Default nil: nothing is sent.
	In io.Reader

	// Out receives every message that arrives (see the package doc for the
	// format). Default nil: discarded.
	Out io.Writer

	// Err receives warnings that do not end the run: input records skipped
	// because they are not UTF-8, and, without JSONL, reconnects reported on
	// States. Default nil: discarded.
	Err io.Writer

	// Binary sends each input record as a binary message instead of text.
	Binary bool

	// NullSeparated splits the input at NUL bytes instead of newlines, and
	// ends each message written to Out in plain mode with NUL.
	NullSeparated bool

	// JSONL writes one JSON object per event to Out instead of raw messages.
	JSONL bool

	// CloseAfter, when positive, closes the channel with 1000 that long
	// after Run starts. The end of In then does not close the channel: Run
	// keeps receiving until CloseAfter or the peer ends it. Default 0: close
	// once In has ended and drained.
	CloseAfter time.Duration

	// DrainTimeout bounds the wait, after In ends, until as many messages
	// were received as were sent. Default DefaultDrainTimeout (2s);
	// negative closes as soon as In ends.
	DrainTimeout time.Duration

	// States, when set, delivers the channel's state changes, typically
	// forwarded from wschan.DialOptions.OnStateChange of a reconnecting
	// channel: each StateOpen becomes an "open" event and each
	// StateReconnecting a "reconnecting" event (a line on Err in plain
	// mode). Default nil: Run writes one "open" event when it starts.
	States <-chan StateChange

	// Now returns the time stamped on JSONL events. Default time.Now.
	Now func() time.Time
}

// StateChange is one state change of a channel, as reported to
// wschan.DialOptions.OnStateChange.
type StateChange struct {
	State wschan.State
	Err   error
}

// ErrInput and ErrOutput are matched by Run's error when reading Config.In
// or writing Config.Out failed; the channel was closed with 1000.
var (
	ErrInput  = errors.New("pipe: cannot read input")
	ErrOutput = errors.New("pipe: cannot write output")
)

// EndError is returned by Run when the channel ended abnormally: the peer
// closed it with a code other than 1000 (normal), 1001 (going away) or
// 1005 (no status), the connection was lost or stopped answering pings
// (1006), or this side closed it because the peer broke the protocol
// (1002, 1007, 1009). Code and Reason are the channel's CloseCode and
// CloseReason; Err is its Err, reachable with errors.Is and errors.As.
type EndError struct {
	Code   wschan.StatusCode
	Reason string
	Err    error
}

func (e *EndError) Error() string { return "pipe: channel ended abnormally: " + e.Err.Error() }

// Unwrap returns the error that ended the channel.
func (e *EndError) Unwrap() error { return e.Err }

// Run copies Config.In to ch and ch to Config.Out until the channel ends,
// then returns. It blocks until then; ch should not be read by anyone else
// meanwhile. See the package doc for the formats and when Run closes.
//
// Run returns nil when the channel ended normally: closed by Run with 1000
// (In drained, or CloseAfter passed), or by the peer with 1000, 1001 or
// 1005. Otherwise it returns, in this order of precedence: an error
// matching wschan.ErrUndelivered when a reconnecting channel closed with
// messages it never sent; an *EndError when the channel ended abnormally;
// an error matching ErrInput or ErrOutput; ctx.Err() when ctx ended (Run
// then closed the channel with 1000).
//
// Every message received before the end is written to Out before Run
// returns. If In is still open when the channel ends, a Read on it may be
// left blocked: Run stops it with SetReadDeadline when In has that method
// (and clears the deadline afterwards); otherwise the goroutine reading In
// ends when that Read returns, and sends nothing more.
func Run(ctx context.Context, ch *wschan.Channel, cfg Config) error {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Err == nil {
		cfg.Err = io.Discard
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &runner{ch: ch, cfg: cfg, sep: '\n'}
	if cfg.NullSeparated {
		r.sep = 0
	}
	return r.run(ctx)
}

type runner struct {
	ch  *wschan.Channel
	cfg Config
	sep byte

	mu  sync.Mutex // serialises writes to cfg.Out and cfg.Err
	buf []byte     // line being written, under mu

	sent, received atomic.Int64
}

// errSend marks a failed Send: the channel is ending, and its end says why.
var errSend = errors.New("send failed")

func (r *runner) run(ctx context.Context) error {
	outErr := make(chan error, 1)
	if r.cfg.States == nil {
		r.open()
	}

	// The receiver is not bound to ctx: after ctx ends, Run closes the
	// channel and the receiver still writes what arrived before the close.
	recvCtx, stopRecv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecv()
	progress := make(chan struct{}, 1)
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		r.receive(recvCtx, progress, outErr)
	}()

	// Nor is the sender: it is stopped after Close, which also ends a Send
	// blocked on a peer that does not read. (Ending a Send's ctx while its
	// frame is already out can leave the connection's write deadline in the
	// past, and Close then drops the connection without a close frame.)
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	inDone := make(chan error, 1)
	senderExited := make(chan struct{})
	go func() {
		defer close(senderExited)
		inDone <- r.send(sendCtx)
	}()
	defer r.stopSender(stopSend, senderExited)

	var (
		closeAfter, drain <-chan time.Time
		eof               bool
		cause             error // why Run closes, when it is not a normal end
		states            = r.cfg.States
	)
	if d := r.cfg.CloseAfter; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		closeAfter = t.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			cause = ctx.Err()
			break loop
		case <-closeAfter:
			break loop
		case <-drain:
			break loop
		case err := <-inDone:
			inDone = nil
			if errors.Is(err, ErrInput) {
				cause = err
				break loop
			}
			if err != nil || r.cfg.CloseAfter > 0 {
				continue // a failed send: the channel's end follows
			}
			eof = true
			if r.drained() || r.cfg.DrainTimeout < 0 {
				break loop
			}
			t := time.NewTimer(r.cfg.DrainTimeout)
			defer t.Stop()
			drain = t.C
		case <-progress:
			if eof && r.drained() {
				break loop
			}
		case err := <-outErr:
			cause = err
			break loop
		case sc, ok := <-states:
			if !ok {
				states = nil
				continue
			}
			r.state(sc)
		case <-recvDone:
			break loop // the channel has ended
		}
	}

	closeErr := r.ch.Close(wschan.StatusNormalClosure, "")
	select {
	case <-r.ch.Done():
	default:
		stopRecv() // not expected: Close returns after the end
	}
	<-recvDone
	if cause == nil {
		select {
		case cause = <-outErr:
		default:
		}
	}
	for states != nil { // report state changes still queued, before "close"
		select {
		case sc, ok := <-states:
			if ok {
				r.state(sc)
				continue
			}
		default:
		}
		states = nil
	}
	end := r.end()
	r.closeEvent(end)

	switch {
	case errors.Is(closeErr, wschan.ErrUndelivered):
		return fmt.Errorf("pipe: close: %w", closeErr)
	case end != nil:
		return end
	}
	return cause
}

// stopSender ends the goroutine reading In if it can: by its context when
// it is sending, by a read deadline when it is blocked in In.Read.
func (r *runner) stopSender(stop context.CancelFunc, exited <-chan struct{}) {
	stop()
	d, ok := r.cfg.In.(interface{ SetReadDeadline(time.Time) error })
	if !ok {
		select {
		case <-exited:
		default: // blocked in In.Read: it sends nothing once stopped
		}
		return
	}
	if d.SetReadDeadline(time.Now()) == nil {
		<-exited
		_ = d.SetReadDeadline(time.Time{})
	}
}

// drained reports whether as many messages arrived as were sent.
func (r *runner) drained() bool { return r.received.Load() >= r.sent.Load() }

// send reads In and sends each record until In ends (nil), reading fails
// (ErrInput) or a send fails (errSend).
func (r *runner) send(ctx context.Context) error {
	if r.cfg.In == nil {
		return nil
	}
	typ := wschan.Text
	if r.cfg.Binary {
		typ = wschan.Binary
	}
	br := bufio.NewReaderSize(r.cfg.In, 64<<10)
	for n := 1; ; n++ {
		rec, err := br.ReadBytes(r.sep)
		if err != nil && err != io.EOF {
			if ctx.Err() != nil {
				return nil // stopped by Run
			}
			return fmt.Errorf("%w: %w", ErrInput, err)
		}
		if err == io.EOF && len(rec) == 0 {
			return nil
		}
		if err == nil {
			rec = rec[:len(rec)-1]
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case typ == wschan.Text && !utf8.Valid(rec):
			r.warn("skipped %s %d: not valid UTF-8, so it cannot be a text message (send bytes as binary)", r.recordName(), n)
		default:
			if serr := r.ch.Send(ctx, typ, rec); serr != nil {
				return fmt.Errorf("%w: %w", errSend, serr)
			}
			r.sent.Add(1)
		}
		if err == io.EOF {
			return nil
		}
	}
}

func (r *runner) recordName() string {
	if r.cfg.NullSeparated {
		return "record"
	}
	return "line"
}

// receive writes every message until the channel ends or ctx does. After
// the first write error (sent on outErr) it keeps reading, so the channel
// can finish its closing handshake, but writes nothing more.
func (r *runner) receive(ctx context.Context, progress chan<- struct{}, outErr chan<- error) {
	failed := false
	for {
		m, err := r.ch.Read(ctx)
		if err != nil {
			return
		}
		if !failed {
			if err := r.message(m); err != nil {
				failed = true
				outErr <- fmt.Errorf("%w: %w", ErrOutput, err)
			}
		}
		m.Release()
		r.received.Add(1)
		select {
		case progress <- struct{}{}:
		default:
		}
	}
}

// end classifies how the channel ended: nil for a normal end.
func (r *runner) end() *EndError {
	err := r.ch.Err()
	if err == nil || errors.Is(err, wschan.ErrClosed) {
		return nil
	}
	var ce *wschan.CloseError
	if errors.As(err, &ce) && ce.Remote {
		switch ce.Code {
		case wschan.StatusNormalClosure, wschan.StatusGoingAway, wschan.StatusNoStatusReceived:
			return nil
		}
	}
	return &EndError{Code: r.ch.CloseCode(), Reason: r.ch.CloseReason(), Err: err}
}
