package wschan

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/wschan/wschan/internal/backoff"
)

// Defaults for ReconnectOptions.
const (
	DefaultReconnectMinDelay = 250 * time.Millisecond
	DefaultReconnectMaxDelay = 30 * time.Second
	DefaultSendBuffer        = 256
)

// ReconnectOptions make a dialled Channel survive dropped connections.
//
// When the connection ends abnormally (see ShouldReconnect), the channel goes
// to StateReconnecting and redials after a capped exponential backoff with
// jitter; Read and Messages simply continue with the next connection's
// messages. On every successful (re)connect, OnConnect runs first, then the
// messages buffered while disconnected are sent in order, then the channel
// is StateOpen and Send writes directly again.
//
// What can be lost: WebSocket has no acknowledgements. Messages in the send
// buffer are never dropped silently: they are sent after reconnecting, or
// returned by Close in an *UndeliveredError. A message whose write fails
// because the connection just dropped is put back in the buffer and sent
// again, so the peer may see it twice. Messages the operating system had
// already accepted when the connection dropped may never have reached the
// peer, and nothing can tell. Messages the peer sent while disconnected are
// the peer's to keep or lose.
type ReconnectOptions struct {
	// MinDelay is the wait before the first redial; it doubles per failed
	// attempt up to MaxDelay, each drawn from [d/2, d]. Defaults
	// DefaultReconnectMinDelay (250ms) and DefaultReconnectMaxDelay (30s).
	MinDelay time.Duration
	MaxDelay time.Duration

	// MaxAttempts ends the channel after that many consecutive failed dials,
	// with the last dial error. Default 0: keep trying until Close.
	MaxAttempts int

	// BufferSize is how many messages Send keeps while disconnected. When it
	// is full, Send blocks until there is room or its context ends (then it
	// returns an error matching ErrBufferFull and the message is not taken).
	// Default DefaultSendBuffer (256).
	BufferSize int

	// OnConnect runs on every successful (re)connect before buffered
	// messages are flushed; messages sent through s go out first, so a
	// client can send its authentication or subscriptions again. An error
	// drops the new connection and counts as a failed attempt.
	OnConnect func(ctx context.Context, s Sender) error

	// ShouldReconnect decides, from the error that ended a connection,
	// whether to redial. Default: on connection loss and ping timeout (1006),
	// and on a close by the peer with 1001 (going away), 1011, 1012, 1013 or
	// 1014; not after a normal close, a policy or protocol close, or Close.
	ShouldReconnect func(err error) bool
}

// Sender is something messages can be sent through: a *Channel, or the
// fresh connection handed to ReconnectOptions.OnConnect.
type Sender interface {
	Send(ctx context.Context, typ MessageType, data []byte) error
}

var _ Sender = (*Channel)(nil)

// DefaultShouldReconnect is the default ReconnectOptions.ShouldReconnect.
func DefaultShouldReconnect(err error) bool {
	if errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrTimeout) {
		return true
	}
	var ce *CloseError
	if errors.As(err, &ce) && ce.Remote {
		switch ce.Code {
		case StatusGoingAway, StatusInternalError, StatusServiceRestart, StatusTryAgainLater, StatusBadGateway:
			return true
		}
	}
	return false
}

// retryableDial reports whether a failed dial is worth repeating: not for a
// bad URL, a certificate the client rejects, or a 4xx answer other than 408
// and 429.
func retryableDial(err error) bool {
	if errors.Is(err, ErrInvalidURL) {
		return false
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		s := he.StatusCode
		return s == http.StatusSwitchingProtocols || s >= 500 || s == http.StatusRequestTimeout || s == http.StatusTooManyRequests
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) {
		return false
	}
	return true
}

// connSender sends on one connection directly, bypassing the buffer.
type connSender struct{ c *wsconn }

func (s connSender) Send(ctx context.Context, typ MessageType, data []byte) error {
	return s.c.write(ctx, typ, data)
}

type reconnector struct {
	ch     *Channel
	u      *url.URL
	o      DialOptions
	ro     ReconnectOptions
	ctx    context.Context // the channel's life: cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sendMu sync.Mutex // orders Send, flushing and the switch to direct writes
	live   *wsconn    // connection Send writes to directly; nil while buffering
	buf    []Message
	space  chan struct{} // closed and replaced when buf shrinks

	closeCode   StatusCode
	closeReason string
	lastErr     error
}

func startReconnector(ch *Channel, u *url.URL, o *DialOptions) {
	rc := &reconnector{ch: ch, u: u, o: *o, ro: *o.Reconnect, space: make(chan struct{})}
	if rc.ro.MinDelay <= 0 {
		rc.ro.MinDelay = DefaultReconnectMinDelay
	}
	if rc.ro.MaxDelay <= 0 {
		rc.ro.MaxDelay = DefaultReconnectMaxDelay
	}
	if rc.ro.BufferSize <= 0 {
		rc.ro.BufferSize = DefaultSendBuffer
	}
	if rc.ro.ShouldReconnect == nil {
		rc.ro.ShouldReconnect = DefaultShouldReconnect
	}
	rc.ctx, rc.cancel = context.WithCancel(context.Background())
	ch.rc = rc
	if f := ch.set.onStateChange; f != nil {
		f(StateConnecting, nil)
	}
	rc.wg.Add(1)
	go rc.loop()
}

func (rc *reconnector) loop() {
	defer rc.wg.Done()
	defer rc.cancel()
	policy := backoff.Policy{Min: rc.ro.MinDelay, Max: rc.ro.MaxDelay}
	failures := 0
	for {
		if failures > 0 {
			if rc.ro.MaxAttempts > 0 && failures >= rc.ro.MaxAttempts {
				rc.finish(fmt.Errorf("wschan: gave up after %d attempts: %w", failures, rc.lastErr))
				return
			}
			t := time.NewTimer(policy.Delay(failures, nil))
			select {
			case <-t.C:
			case <-rc.ctx.Done():
				t.Stop()
				rc.finish(nil)
				return
			}
		}
		c, err := dialConn(rc.ctx, rc.u, &rc.o, rc.ch)
		if err != nil {
			if rc.ctx.Err() != nil {
				rc.finish(nil)
				return
			}
			if !retryableDial(err) {
				rc.finish(err)
				return
			}
			failures++
			rc.lastErr = err
			rc.ch.setState(StateReconnecting, err)
			continue
		}
		rc.ch.attach(c)
		go c.run()
		if err := rc.open(c); err != nil {
			c.stop()
			c.e.abort()
			<-c.ended.C()
			if rc.ctx.Err() != nil {
				rc.finish(nil)
				return
			}
			failures++
			rc.lastErr = err
			rc.ch.setState(StateReconnecting, err)
			continue
		}
		failures = 0
		rc.ch.setState(StateOpen, nil)
		select {
		case <-c.ended.C():
		case <-rc.ctx.Done():
			_ = c.closeHandshake(rc.closeCode, rc.closeReason)
			<-c.ended.C() // closeHandshake returns early when Close came from a callback
		}
		rc.sendMu.Lock()
		rc.live = nil
		rc.sendMu.Unlock()
		if rc.ctx.Err() != nil {
			rc.finish(nil)
			return
		}
		if !rc.ro.ShouldReconnect(c.endErr) {
			rc.ch.finishWith(c)
			return
		}
		failures = 1
		rc.lastErr = c.endErr
		rc.ch.setState(StateReconnecting, c.endErr)
	}
}

// open runs the OnConnect hook and flushes the buffer on a new connection,
// then lets Send write to it directly.
func (rc *reconnector) open(c *wsconn) error {
	rc.sendMu.Lock()
	defer rc.sendMu.Unlock()
	if f := rc.ro.OnConnect; f != nil {
		if err := f(rc.ctx, connSender{c}); err != nil {
			return fmt.Errorf("wschan: OnConnect: %w", err)
		}
	}
	for len(rc.buf) > 0 {
		m := rc.buf[0]
		if err := c.write(rc.ctx, m.Type, m.Data); err != nil {
			return err
		}
		rc.buf[0] = Message{}
		rc.buf = rc.buf[1:]
		rc.signalSpace()
	}
	rc.buf = nil
	rc.live = c
	close(c.live)
	return nil
}

func (rc *reconnector) signalSpace() {
	close(rc.space)
	rc.space = make(chan struct{})
}

func (rc *reconnector) send(ctx context.Context, typ MessageType, data []byte) error {
	for {
		select {
		case <-rc.ch.closing.C():
			return fmt.Errorf("wschan: send: %w", ErrClosed)
		case <-rc.ch.done.C():
			return fmt.Errorf("wschan: send: %w", rc.ch.Err())
		default:
		}
		rc.sendMu.Lock()
		if c := rc.live; c != nil {
			err := c.write(ctx, typ, data)
			if err == nil || ctx.Err() != nil {
				rc.sendMu.Unlock()
				return err
			}
			// The connection failed under this write: keep the message for
			// the next connection (the peer may have got it: see ReconnectOptions).
			rc.live = nil
		}
		if len(rc.buf) < rc.ro.BufferSize {
			rc.buf = append(rc.buf, Message{Type: typ, Data: slices.Clone(data)})
			rc.sendMu.Unlock()
			return nil
		}
		space := rc.space
		rc.sendMu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return fmt.Errorf("wschan: send: %w: %w", ErrBufferFull, ctx.Err())
		case <-rc.ch.done.C():
			return fmt.Errorf("wschan: send: %w", ErrClosed)
		}
	}
}

func (rc *reconnector) close(code StatusCode, reason string) error {
	rc.closeCode, rc.closeReason = code, reason
	rc.cancel()
	if c := rc.ch.cur.Load(); c == nil || !c.inCallback.Load() {
		rc.wg.Wait()
	}
	// Else maybe called from OnMessage or OnPing: the loop waits for the
	// read loop, which waits for the callback to return. What is still
	// buffered is not sent any more (a flush under way stops on the
	// cancelled context and lets go of sendMu).
	rc.sendMu.Lock()
	left := rc.buf
	rc.buf = nil
	rc.sendMu.Unlock()
	if len(left) > 0 {
		return &UndeliveredError{Messages: left}
	}
	return nil
}

// finish ends the channel from the reconnector: err nil means Close did it.
func (rc *reconnector) finish(err error) {
	if err == nil {
		rc.ch.finish(rc.closeCode, rc.closeReason, ErrClosed)
		return
	}
	rc.ch.finish(StatusAbnormalClosure, "", err)
}
