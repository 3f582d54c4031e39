package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
	"golang.org/x/time/rate"
)

// session is one connection of the server: its limits, its counters and
// the one timer that watches it. It is tracked from before the handshake
// until its channel ends; the end (ended, on the channel's read loop) is
// the one place that finishes it.
type session struct {
	s       *Server
	ch      atomic.Pointer[wschan.Channel] // set once Accept returns; callbacks get it as an argument
	ready   sync.WaitGroup                 // done once ch is set (or Accept failed)
	client  client
	conn    net.Conn     // the accepted connection, to drop it if a drain runs out of time
	eo      *echoOptions // plainEcho for /ws and /
	start   time.Time
	limiter *rate.Limiter

	greeted   chan struct{} // closed once the greeting is out; nil without one
	greetOnce sync.Once

	traffic traffic

	// The watchdog (Server.sweep) looks at these timestamps for the idle
	// timeout and the slow reader, so the message path only stores a clock
	// reading and a session holds no timer.
	lastIn  atomic.Int64 // monotime of the last message in (for rooms: or out)
	sending atomic.Int64 // monotime a send to the client began, 0 when none is under way
	over    atomic.Bool  // the session has finished: the watchdog leaves it
	idled   atomic.Bool  // closed for the idle timeout
	slow    atomic.Bool
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

// plainEcho is the options of a plain echo connection, shared by all of
// them (an idle server holds many).
var plainEcho echoOptions

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

	se := &session{s: s, client: c, eo: &plainEcho, start: time.Now()}
	if eo != plainEcho {
		se.eo = &eo // a scenario or a room: its own copy
	}
	se.ready.Add(1)
	se.conn, _ = r.Context().Value(proxyConnKey).(net.Conn)
	if s.cfg.MessageRate > 0 && !c.local {
		se.limiter = rate.NewLimiter(rate.Limit(s.cfg.MessageRate), s.cfg.MessageBurst)
	}
	if !s.track(se) {
		s.release(c)
		s.m.handshakes.WithLabelValues(outcomeDraining, r.Proto).Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	opts := &wschan.AcceptOptions{
		SelectSubprotocol: func(_ *http.Request, offered []string) string {
			if eo.room != "" && slices.Contains(offered, rooms.Subprotocol) {
				return rooms.Subprotocol // the envelope protocol, wherever the client offers it
			}
			return offered[0]
		},
		OriginPatterns:    s.cfg.AllowedOrigins,
		EnableCompression: s.cfg.Compression,
		Engine:            s.cfg.Engine,
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
	// The watchdog counts from here, before the first message can arrive
	// (the read loop starts inside Accept).
	se.lastIn.Store(monotime())
	ch, err := wschan.Accept(w, r, opts)
	if err != nil {
		se.stopWatchdog()
		se.ready.Done()
		s.untrack(se)
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
	s.m.open.Inc()
	se.ch.Store(ch)
	s.mu.Lock()
	se.conn = nil // from now on the channel drops it (CloseNow); the poll engine has left it already
	s.mu.Unlock()
	se.ready.Done()
	if s.log.Enabled(r.Context(), slog.LevelInfo) { // the attributes cost more than a disabled log line
		s.log.Info("connection open", c.logAttrs("path", r.URL.Path, "proto", r.Proto, "protocol", ch.Protocol())...)
	}
	switch {
	case s.draining.Load():
		// The drain began during the handshake and did not see ch.
		_ = ch.Close(wschan.StatusGoingAway, "server shutting down")
	case eo.closeAtOnce:
		_ = ch.Close(eo.closeCode, eo.closeReason)
	case s.cfg.Greeting != "" && eo.room == "":
		se.send(ch, wschan.Text, []byte(s.cfg.Greeting))
	}
	se.greet()
	if eo.room != "" {
		se.roomLoop(ch, eo.room)
	} else if eo.delay > 0 {
		se.delayLoop(ch)
	}
	// Otherwise the handler returns now: the connection lives on the
	// channel's read loop alone, and ended finishes it. Over HTTP/2 the
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

// ended runs once, on the channel's read loop, when the channel has
// ended: it records and logs the end and frees the connection's slot.
func (se *session) ended() {
	se.ready.Wait() // Accept has returned: ch is set
	se.stopWatchdog()
	s, ch := se.s, se.ch.Load()
	s.m.closed(ch)
	s.m.open.Dec()
	if s.log.Enabled(context.Background(), slog.LevelInfo) {
		s.log.Info("connection closed", se.client.logAttrs("duration", time.Since(se.start).Round(time.Millisecond),
			"in", se.traffic.in.Load(), "out", se.traffic.out.Load(), "code", int(ch.CloseCode()), "reason", ch.CloseReason(), "err", ch.Err())...)
	}
	s.untrack(se)
	s.release(se.client)
}

// check is the watchdog's look at the session (Server.sweep): it ends a
// connection whose client has not taken a message for the write timeout,
// or has sent nothing for the idle timeout.
func (se *session) check(now int64) {
	if se.over.Load() {
		return
	}
	cfg := se.s.cfg
	if t := se.sending.Load(); t != 0 && now-t >= int64(cfg.WriteTimeout) {
		se.onSlow()
		return
	}
	if cfg.IdleTimeout > 0 && now-se.lastIn.Load() >= int64(cfg.IdleTimeout) && se.ch.Load() != nil && !se.idled.Swap(true) {
		se.closeAsync(wschan.StatusNormalClosure, "idle timeout")
	}
}

// stopWatchdog takes the session out of the watchdog's looks.
func (se *session) stopWatchdog() { se.over.Store(true) }

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
// not block on the closing handshake); the server waits for the close.
func (se *session) closeAsync(code wschan.StatusCode, reason string) {
	if ch := se.ch.Load(); ch != nil {
		se.s.bg.Go(func() { _ = ch.Close(code, reason) })
	}
}

// admitMessage counts a received message and applies the rate limit.
func (se *session) admitMessage(ch *wschan.Channel, n int) bool {
	se.traffic.received(n)
	se.lastIn.Store(monotime())
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
	se.sending.Store(monotime())
	err := ch.Send(context.Background(), typ, data)
	se.sending.Store(0)
	if err == nil {
		se.traffic.sent(len(data))
	}
}

func (se *session) afterEcho(ch *wschan.Channel) {
	if n := se.eo.closeAfter; n > 0 && se.traffic.out.Load() == n {
		// From the read loop Close returns once the close frame is written.
		_ = ch.Close(se.eo.closeCode, se.eo.closeReason)
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
	t := time.NewTimer(se.eo.delay)
	defer t.Stop()
	for m := range ch.Messages(context.Background()) {
		if !se.admitMessage(ch, len(m.Data)) {
			continue
		}
		t.Reset(se.eo.delay)
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
