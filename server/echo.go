package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wschan/wschan"
	"golang.org/x/time/rate"
)

// session is one echo connection's state.
type session struct {
	s         *Server
	ch        atomic.Pointer[wschan.Channel] // set once Accept returns; callbacks get it as an argument
	client    client
	mu        sync.Mutex
	tracked   bool          // the handler has counted the connection
	over      bool          // the channel has closed
	greeted   chan struct{} // closed once the greeting is out; nil without one
	greetOnce sync.Once
	start     time.Time
	limiter   *rate.Limiter
	idle      *time.Timer
	watch     *time.Timer // armed while an echo is being written
	slow      atomic.Bool
	in, out   atomic.Int64
	delay     time.Duration

	closeAfter  int64 // close after this many echoes (scenario), 0 = never
	closeCode   wschan.StatusCode
	closeReason string
}

// echoOptions configures one connection: how it is accepted and what each
// message does.
type echoOptions struct {
	delay       time.Duration
	closeAfter  int64
	closeCode   wschan.StatusCode
	closeReason string
	closeAtOnce bool
	room        string // join this room: messages go to its members, not back
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if wschan.IsWebSocketUpgrade(r) {
		s.handleEcho(w, r)
		return
	}
	s.servePage(w, r)
}

func (s *Server) handleEcho(w http.ResponseWriter, r *http.Request) {
	s.serveEcho(w, r, echoOptions{})
}

// serveEcho accepts a WebSocket and echoes on it. Without a delay, each
// message is echoed from the channel's read loop (OnMessage): no hand-off,
// no allocation, and a client that does not read blocks only itself.
func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request, eo echoOptions) {
	c := s.client(r)
	if s.draining.Load() {
		s.m.handshakes.WithLabelValues(outcomeDraining, r.Proto).Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	if ok, why := s.admit(c); !ok {
		s.m.handshakes.WithLabelValues(outcomeLimit, r.Proto).Inc()
		w.Header().Set("Retry-After", "10")
		http.Error(w, why+"; try again later", http.StatusServiceUnavailable)
		s.log.Info("connection refused", c.logAttrs("reason", why)...)
		return
	}

	se := &session{s: s, client: c, start: time.Now(), delay: eo.delay,
		closeAfter: eo.closeAfter, closeCode: eo.closeCode, closeReason: eo.closeReason}
	if s.cfg.MessageRate > 0 && !c.local {
		se.limiter = rate.NewLimiter(rate.Limit(s.cfg.MessageRate), s.cfg.MessageBurst)
	}
	opts := &wschan.AcceptOptions{
		SelectSubprotocol: func(_ *http.Request, offered []string) string { return offered[0] },
		OriginPatterns:    s.cfg.AllowedOrigins,
		EnableCompression: s.cfg.Compression,
		ReadLimit:         s.cfg.MaxMessageSize,
		PingInterval:      s.cfg.PingInterval,
		PingTimeout:       s.cfg.PingTimeout,
		OnStateChange: func(st wschan.State, _ error) {
			if st == wschan.StateClosed {
				se.ended()
			}
		},
	}
	if len(opts.OriginPatterns) == 0 {
		opts.OriginPatterns = []string{"*"} // holds no credentials: any page may use it
	}
	if eo.delay == 0 && eo.room == "" {
		opts.OnMessage = se.onMessage
	}
	if se.limiter != nil {
		opts.OnPing = se.onPing
	}
	if s.cfg.Greeting != "" && eo.room == "" { // a room's stream carries only its messages
		// The read loop starts inside Accept: echoes wait for the greeting.
		se.greeted = make(chan struct{})
		defer se.greet()
	}
	// Timers exist before the first message can arrive (the read loop starts
	// inside Accept).
	se.watch = time.AfterFunc(time.Hour, se.onSlow)
	se.watch.Stop()
	if s.cfg.IdleTimeout > 0 {
		se.idle = time.AfterFunc(s.cfg.IdleTimeout, func() { se.closeAsync(wschan.StatusNormalClosure, "idle timeout") })
	}
	ch, err := wschan.Accept(w, r, opts)
	if err != nil {
		se.stopTimers()
		s.release(c)
		outcome := outcomeBadRequest
		if errors.Is(err, wschan.ErrOriginNotAllowed) {
			outcome = outcomeOrigin
		}
		s.m.handshakes.WithLabelValues(outcome, r.Proto).Inc()
		s.log.Info("handshake refused", c.logAttrs("err", err)...)
		return
	}
	s.m.handshakes.WithLabelValues(outcomeAccepted, r.Proto).Inc()
	se.ch.Store(ch)
	if !s.track(ch) {
		se.stopTimers()
		s.release(c)
		_ = ch.Close(wschan.StatusGoingAway, "server shutting down")
		return
	}
	s.log.Info("connection open", c.logAttrs("path", r.URL.Path, "proto", r.Proto, "protocol", ch.Protocol())...)
	se.mu.Lock()
	se.tracked = true
	over := se.over
	se.mu.Unlock()
	if over {
		se.finish()
		return
	}
	if eo.closeAtOnce {
		_ = ch.Close(eo.closeCode, eo.closeReason)
	} else if g := s.cfg.Greeting; g != "" {
		se.send(ch, wschan.Text, []byte(g))
	}
	se.greet()
	if eo.room != "" {
		se.roomLoop(ch, eo.room)
	} else if eo.delay > 0 {
		se.delayLoop(ch)
	}
	// Otherwise the handler returns now: the connection lives on the
	// channel's read loop alone, and ended cleans up. Over HTTP/2 the
	// WebSocket is this request's stream, which ends with the handler.
	if r.ProtoMajor == 2 {
		<-ch.Done()
	}
}

// greet lets echoes go once the greeting has been sent (or will not be).
func (se *session) greet() {
	se.greetOnce.Do(func() {
		if se.greeted != nil {
			close(se.greeted)
		}
	})
}

// ended runs when the channel has closed; whichever of it and the handler
// comes second finishes the session.
func (se *session) ended() {
	se.mu.Lock()
	se.over = true
	tracked := se.tracked
	se.mu.Unlock()
	if tracked {
		se.finish()
	}
}

// finish records and logs the end of a tracked connection and frees its slot.
func (se *session) finish() {
	se.stopTimers()
	s, ch := se.s, se.ch.Load()
	s.m.closed(ch)
	s.log.Info("connection closed", se.client.logAttrs("duration", time.Since(se.start).Round(time.Millisecond),
		"in", se.in.Load(), "out", se.out.Load(), "code", int(ch.CloseCode()), "reason", ch.CloseReason(), "err", ch.Err())...)
	s.untrack(ch)
	s.release(se.client)
}

func (se *session) stopTimers() {
	se.watch.Stop()
	if se.idle != nil {
		se.idle.Stop()
	}
}

// onMessage handles one message on the read loop.
func (se *session) onMessage(ch *wschan.Channel, m wschan.Message) {
	if se.greeted != nil {
		<-se.greeted
	}
	if !se.admitMessage(ch, len(m.Data)) {
		return
	}
	se.send(ch, m.Type, m.Data)
	se.afterEcho(ch)
}

// closeAsync closes the channel without waiting (timers and callbacks must
// not block on the closing handshake).
func (se *session) closeAsync(code wschan.StatusCode, reason string) {
	if ch := se.ch.Load(); ch != nil {
		go ch.Close(code, reason)
	}
}

// admitMessage counts a received message and applies the rate limit.
func (se *session) admitMessage(ch *wschan.Channel, n int) bool {
	se.s.m.in(n)
	se.in.Add(1)
	if se.idle != nil {
		se.idle.Reset(se.s.cfg.IdleTimeout)
	}
	return se.limiter == nil || se.allow(ch, "")
}

// onPing applies the rate limit to pings: each costs a pong, as each
// message costs an echo, so a ping flood is a message flood.
func (se *session) onPing(ch *wschan.Channel, _ []byte) {
	se.allow(ch, ", pings included")
}

// allow takes a token from the rate limiter, or closes the connection with
// 1008 saying the rate (and note) when there is none.
func (se *session) allow(ch *wschan.Channel, note string) bool {
	if se.limiter.Allow() {
		return true
	}
	_ = ch.Close(wschan.StatusPolicyViolation, "message rate limit exceeded ("+strconv.FormatFloat(se.s.cfg.MessageRate, 'g', -1, 64)+"/s"+note+")")
	return false
}

// send writes one message; a client that does not take it within the write
// timeout is disconnected.
func (se *session) send(ch *wschan.Channel, typ wschan.MessageType, data []byte) {
	se.watch.Reset(se.s.cfg.WriteTimeout)
	err := ch.Send(context.Background(), typ, data)
	se.watch.Stop()
	if err == nil {
		se.s.m.out(len(data))
		se.out.Add(1)
	}
}

func (se *session) afterEcho(ch *wschan.Channel) {
	if se.closeAfter > 0 && se.out.Load() == se.closeAfter {
		// From the read loop Close returns once the close frame is written.
		_ = ch.Close(se.closeCode, se.closeReason)
	}
}

// onSlow runs when an echo has waited the whole write timeout.
func (se *session) onSlow() {
	if se.slow.Swap(true) {
		return
	}
	se.s.m.slow.Inc()
	se.s.log.Info("client is not reading: disconnecting", "remote", se.client.String(), "write_timeout", se.s.cfg.WriteTimeout)
	se.closeAsync(wschan.StatusPolicyViolation, "client is not reading")
}

// delayLoop echoes each message after the session's delay.
func (se *session) delayLoop(ch *wschan.Channel) {
	t := time.NewTimer(se.delay)
	defer t.Stop()
	for m := range ch.Messages(context.Background()) {
		if !se.admitMessage(ch, len(m.Data)) {
			continue
		}
		t.Reset(se.delay)
		select {
		case <-t.C:
		case <-ch.Done():
			return
		}
		se.send(ch, m.Type, m.Data)
		m.Release()
		se.afterEcho(ch)
	}
}
