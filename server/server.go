package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/xconnect"
	"github.com/wschan/wschan/rooms"
)

// Server is the echo server. Create it with New, start it with Run (or
// Listen and Serve); it drains with 1001 when its context ends.
type Server struct {
	cfg    Config
	tls    *tls.Config  // nil for plain HTTP
	acme   *acmeTLS     // automatic HTTPS; nil without ACMEDomains
	httpLn net.Listener // with ACME: the HTTPAddr listener opened by Listen, for Serve
	log    *slog.Logger
	m      *metrics
	mux    *http.ServeMux
	hub    *rooms.Hub // the rooms of /ws/room/{name}; closed at the end of Serve

	trusted  trustedSet
	draining atomic.Bool
	warnedLo atomic.Bool // the untrusted loopback proxy warning is out

	mu       sync.Mutex
	sessions map[*session]struct{}
	ended    traffic               // message counts of the sessions that have ended
	raw      map[net.Conn]struct{} // scenario connections outside the library
	perIP    map[string]int
	admitted int  // connections admitted: handshaking or open
	closing  bool // closeAll has begun: no new connections are tracked
	// sweepStop stops the watchdog's goroutine (sweep), which runs while
	// sessions are tracked; nil when it is not running. Under mu.
	sweepStop chan struct{}
	sweeps    sync.WaitGroup
	wg        sync.WaitGroup // sessions and scenario connections, added under mu while !closing
	bg        sync.WaitGroup // closes started from timers and callbacks
}

// New checks cfg and builds a Server. Nothing listens yet.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	var a *acmeTLS
	if len(cfg.ACMEDomains) > 0 {
		if a, err = newACME(cfg); err != nil {
			return nil, err
		}
		tlsCfg = a.tlsConfig()
	}
	s := &Server{
		acme:     a,
		tls:      tlsCfg,
		cfg:      cfg,
		log:      cfg.Logger,
		sessions: map[*session]struct{}{},
		raw:      map[net.Conn]struct{}{},
		perIP:    map[string]int{},
	}
	s.trusted = newTrustedSet(cfg.TrustedProxies)
	broker := cfg.RoomBroker
	if broker == nil {
		broker = rooms.NewMemoryBroker(&rooms.MemoryBrokerOptions{HistorySize: max(0, cfg.RoomHistory), HistoryTTL: cfg.RoomHistoryTTL})
	}
	s.hub = rooms.NewHub(&rooms.HubOptions{
		Broker:       broker,
		MaxMembers:   cfg.MaxRoomMembers,
		MaxRooms:     cfg.MaxRooms,
		QueueSize:    cfg.RoomQueue,
		WriteTimeout: cfg.WriteTimeout,

		PresenceInterval: cfg.RoomPresenceInterval,
	})
	s.m = newMetrics(s.hub, cfg.RoomBroker, s.sumTraffic)
	s.routes()
	return s, nil
}

// Handler returns the server's routes: /ws (and / for upgrades),
// /ws/room/{name}, the scenarios, /healthz, /readyz, /metrics, and the demo page at / with its
// assets under /static/.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	mux := http.NewServeMux()
	// WebSockets over HTTP/2 (RFC 8441) arrive as CONNECT; HTTP/1.1 ones
	// as GET. The raw scenarios (silent, drop) hijack the socket, which an
	// HTTP/2 stream cannot do: GET only.
	for _, m := range []string{"GET ", "CONNECT "} {
		mux.HandleFunc(m+"/ws", s.handleEcho)
		mux.HandleFunc(m+"/ws/room/{name...}", s.handleRoom)
		mux.HandleFunc(m+"/{$}", s.handleRoot)
	}
	mux.Handle("GET /static/", s.staticHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if h, ok := s.cfg.RoomBroker.(rooms.Health); ok {
			if err := h.Check(); err != nil {
				// Echo still works; rooms would be cut off from the other
				// instances, so send new clients elsewhere.
				http.Error(w, "not ready: rooms: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	if !s.cfg.NoScenarios {
		for _, m := range []string{"GET ", "CONNECT "} {
			mux.HandleFunc(m+"/ws/close/{code}", s.handleCloseScenario)
			mux.HandleFunc(m+"/ws/delay/{duration}", s.handleDelayScenario)
		}
		mux.HandleFunc("GET /ws/silent", s.handleSilentScenario)
		mux.HandleFunc("GET /ws/drop", s.handleDropScenario)
	}
	s.mux = mux
}

// Listen opens the configured address. With ACME it also opens HTTPAddr,
// which Serve then serves; Listen and Serve are not for concurrent use.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := listen(s.cfg.Addr, "--addr")
	if err != nil {
		return nil, err
	}
	if s.acme != nil {
		hln, err := listen(s.cfg.HTTPAddr, "--http-addr")
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.httpLn = hln
	}
	return ln, nil
}

func listen(addr, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var se *net.OpError
		if errors.As(err, &se) && errors.Is(err, errAddrInUse()) {
			return nil, fmt.Errorf("listen on %s: the address is already in use: stop the other server or pick another port with %s: %w", addr, flag, err)
		}
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Run listens and serves until ctx ends, then drains; see Serve.
func (s *Server) Run(ctx context.Context) error {
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends. Then it stops accepting, reports not
// ready, sends every open WebSocket 1001 "going away", waits up to
// DrainTimeout for them to close, and returns nil (or the error that
// stopped serving early).
//
// With ACME it also serves HTTPAddr (opening it unless Listen did),
// obtains the missing certificates in the background, and logs what the
// CA says; a Server whose Serve has returned does not talk to the CA
// again, so serving again needs a new Server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.acme == nil {
		return s.serve(ctx, ln)
	}
	hln := s.httpLn
	s.httpLn = nil
	if hln == nil {
		var err error
		if hln, err = listen(s.cfg.HTTPAddr, "--http-addr"); err != nil {
			ln.Close()
			return err
		}
	}
	if s.cfg.ProxyProtocol {
		hln = s.proxyListener(hln)
	}
	hs := &http.Server{
		Handler:           s.acme.httpHandler(s.mux),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("listening for ACME HTTP-01 challenges and health checks; redirecting the rest to https", "addr", hln.Addr().String(), "domains", s.cfg.ACMEDomains, "ca", s.cfg.ACMECA)
	var wg sync.WaitGroup
	actx, stop := context.WithCancel(ctx)
	httpErr := make(chan error, 1)
	wg.Go(func() { httpErr <- hs.Serve(hln) })
	wg.Go(func() { s.acme.run(actx) })
	err := s.serve(actx, ln)
	stop()
	s.acme.close()
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	_ = hs.Shutdown(dctx)
	wg.Wait()
	if herr := <-httpErr; err == nil && herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		err = fmt.Errorf("serve %s: %w", s.cfg.HTTPAddr, herr)
	}
	return err
}

// serve is Serve on the main listener.
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	tlsCfg := s.tls
	scheme := "http"
	if s.cfg.ProxyProtocol {
		ln = s.proxyListener(ln) // under TLS: the PROXY header comes first
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}
	var early *earlyListener
	if s.earlyHandshakes() {
		early = s.newEarlyListener(context.WithoutCancel(ctx), ln)
		defer early.Close()
		ln = early
	}
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig:         tlsCfg,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext:       withConn,
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String()+"/", "websocket", wsScheme(scheme)+"://"+ln.Addr().String()+"/ws",
		"websocket_http2", tlsCfg != nil && xconnect.Enabled())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("draining", "connections", s.openConns(), "timeout", s.cfg.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	// Shutdown stops accepting and waits for requests in flight, which
	// include WebSockets over HTTP/2 (streams, not hijacked): they get 1001
	// meanwhile. Hijacked HTTP/1.1 WebSockets are ours to close anyway.
	closed := make(chan struct{})
	go func() { s.closeAll(dctx); close(closed) }()
	_ = hs.Shutdown(dctx)
	<-closed
	_ = s.hub.Close() // members have left with their connections; ends any write still stuck
	if early != nil {
		_ = early.Close() // Shutdown has closed it, unless Serve had not begun
		early.wait()      // the handshakes in handlers ended with their connections
	}
	s.sweeps.Wait() // the watchdog stopped with the last session
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

func wsScheme(httpScheme string) string {
	if httpScheme == "https" {
		return "wss"
	}
	return "ws"
}

// closeAll sends 1001 to every connection and waits for them to end. When
// ctx ends first, the connections still open are dropped (their clients
// see 1006) and waited for: Serve never returns with a connection open.
func (s *Server) closeAll(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		sessions = append(sessions, se)
	}
	for c := range s.raw {
		c.Close()
	}
	s.mu.Unlock()
	for _, se := range sessions {
		if ch := se.ch.Load(); ch != nil {
			s.bg.Go(func() { _ = ch.Close(wschan.StatusGoingAway, "server shutting down") })
		}
		// Else the handshake is under way: the handler sees the drain after it.
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		left := len(s.sessions)
		for se := range s.sessions {
			if ch := se.ch.Load(); ch != nil {
				ch.CloseNow() // the socket may have left se.conn (the poll engine)
			}
			if se.conn != nil {
				_ = se.conn.Close()
			}
		}
		s.mu.Unlock()
		s.log.Warn("drain timeout: dropping the connections still open", "connections", left)
		<-done
	}
	s.bg.Wait()
}

func (s *Server) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// sumTraffic adds the message counts of every connection, ended or open,
// to sum (for /metrics).
func (s *Server) sumTraffic(sum *traffic) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended.addTo(sum)
	for se := range s.sessions {
		se.traffic.addTo(sum)
	}
}

// admit reserves a connection slot for c, or says why not. A local
// client is exempt from the per-IP limit (see Config.LimitLoopback).
func (s *Server) admit(c client) (ok bool, why string) {
	ip := c.key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxConns > 0 && s.admitted >= s.cfg.MaxConns {
		return false, "server is at its connection limit (" + strconv.Itoa(s.cfg.MaxConns) + ")"
	}
	if s.cfg.MaxConnsPerIP > 0 && !c.local && s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return false, "too many connections from " + ip + " (limit " + strconv.Itoa(s.cfg.MaxConnsPerIP) + ")"
	}
	s.perIP[ip]++
	s.admitted++
	s.m.addrs.Set(float64(len(s.perIP)))
	return true, ""
}

func (s *Server) release(c client) {
	ip := c.key()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admitted--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.m.addrs.Set(float64(len(s.perIP)))
}

// client works out who r comes from (see clientOf), and logs and counts
// what a proxy got wrong.
func (s *Server) client(r *http.Request) client {
	c := s.clientOf(r)
	if c.errMsg != "" {
		s.m.forwardErrs.WithLabelValues(forwardErrHeader).Inc()
		s.log.Warn("ignoring a forwarding header from a trusted proxy", "proxy", r.RemoteAddr, "err", c.errMsg)
	}
	if !s.cfg.LimitLoopback && !s.trusted.loopback && c.via == viaPeer && c.ip.IsLoopback() &&
		hasForwardingHeader(r.Header) && !s.warnedLo.Swap(true) {
		s.log.Warn("a proxy on this machine forwards clients, but loopback is not in --trusted-proxies: "+
			"its forwarding headers are ignored and every client it forwards shares its address and limits; "+
			"add its address to --trusted-proxies", "proxy", r.RemoteAddr)
	}
	return c
}

// proxyRefused logs and counts a connection closed for its PROXY header:
// one from a peer that is not trusted, a trusted peer's missing or
// malformed header.
func (s *Server) proxyRefused(peer net.Addr, err error) {
	s.m.forwardErrs.WithLabelValues(forwardErrProxy).Inc()
	s.log.Info("connection refused: PROXY protocol", "remote", peer.String(), "err", err)
}

// track adds a session, unless the server is draining.
func (s *Server) track(se *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.sessions[se] = struct{}{}
	s.wg.Add(1)
	if s.sweepStop == nil {
		stop := make(chan struct{})
		s.sweepStop = stop
		s.sweeps.Go(func() { s.sweep(stop) })
	}
	return true
}

// untrack removes a session; its traffic joins the totals.
func (s *Server) untrack(se *session) {
	s.mu.Lock()
	delete(s.sessions, se)
	se.traffic.addTo(&s.ended)
	if len(s.sessions) == 0 && s.sweepStop != nil {
		close(s.sweepStop) // the watchdog runs while there are sessions
		s.sweepStop = nil
	}
	s.mu.Unlock()
	s.wg.Done()
}

// sweep is the sessions' watchdog: every sweepPeriod it looks at each open
// session's timestamps (session.check), until stop is closed. One
// goroutine for the server instead of a timer per connection; a slow or
// idle client is ended up to one period after its timeout.
func (s *Server) sweep(stop <-chan struct{}) {
	t := time.NewTicker(s.sweepPeriod())
	defer t.Stop()
	var look []*session
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for se := range s.sessions {
			look = append(look, se)
		}
		s.mu.Unlock()
		now := monotime()
		for _, se := range look {
			se.check(now)
		}
		clear(look)
		look = look[:0]
	}
}

// sweepPeriod is how often the watchdog looks: an eighth of the shorter
// of the write and idle timeouts, from 10 ms to 1 s.
func (s *Server) sweepPeriod() time.Duration {
	p := s.cfg.WriteTimeout
	if it := s.cfg.IdleTimeout; it > 0 {
		p = min(p, it)
	}
	return min(max(p/8, 10*time.Millisecond), time.Second)
}

// trackRaw is track for scenario connections outside the library.
func (s *Server) trackRaw(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.raw[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrackRaw(c net.Conn) {
	s.mu.Lock()
	delete(s.raw, c)
	s.mu.Unlock()
	s.wg.Done()
}
