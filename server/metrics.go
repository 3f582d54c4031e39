package server

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// metrics are the server's Prometheus metrics, on a registry of its own
// (served at /metrics); the process and Go runtime collectors come along.
type metrics struct {
	reg *prometheus.Registry

	open        prometheus.Gauge
	handshakes  *prometheus.CounterVec
	closes      *prometheus.CounterVec
	slow        prometheus.Counter
	addrs       prometheus.Gauge
	forwardErrs *prometheus.CounterVec
	roomIn      prometheus.Counter // messages members sent to their rooms
	roomOut     prometheus.Counter // messages written to members

	mu        sync.Mutex
	closeKids map[closeKey]prometheus.Counter
}

type closeKey struct {
	code int
	dir  string
}

func newMetrics(hub *rooms.Hub, broker rooms.Broker, traffic func(*traffic)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wschan_connections_open", Help: "WebSocket connections open now.",
		}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschan_handshakes_total", Help: "WebSocket handshakes by outcome and HTTP version (HTTP/1.1, or HTTP/2.0 for RFC 8441).",
		}, []string{"outcome", "proto"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschan_close_codes_total", Help: "Connections ended, by close code and whether the code was sent or received (1006: no close frame).",
		}, []string{"code", "direction"}),
		closeKids: map[closeKey]prometheus.Counter{},
	}
	msgs := newTrafficCollector(traffic)
	m.slow = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "wschan_slow_reader_disconnects_total", Help: "Connections dropped because the client did not read its echoes within the write timeout.",
	})
	m.addrs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wschan_client_addresses", Help: "Distinct client IP addresses with a connection open or opening (behind trusted proxies, the real clients').",
	})
	m.forwardErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wschan_forwarding_errors_total", Help: "Client addresses a proxy failed to pass on: forwarding headers from trusted proxies that could not be parsed (header), connections closed for their PROXY header (proxy_protocol).",
	}, []string{"source"})
	for _, src := range []string{forwardErrHeader, forwardErrProxy} {
		m.forwardErrs.WithLabelValues(src)
	}
	roomMsgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wschan_room_messages_total", Help: "Room messages: in, sent by members of this server's rooms; out, written to members (each message once per member it reached). Also counted in wschan_messages_total.",
	}, []string{"direction"})
	m.roomIn, m.roomOut = roomMsgs.WithLabelValues("in"), roomMsgs.WithLabelValues("out")
	roomGauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschan_rooms", Help: "Rooms with at least one member on this server.",
		}, func() float64 { return float64(hub.Stats().Rooms) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschan_room_members", Help: "Members of rooms on this server.",
		}, func() float64 { return float64(hub.Stats().Members) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wschan_room_resumes_total", Help: "Resuming joins (wschan.room.v1) by result: hit, everything missed came from the history; gap, the client was told what it missed is gone (expired, history reset, or none kept).",
			ConstLabels: prometheus.Labels{"result": "hit"},
		}, func() float64 { return float64(hub.Stats().Resumed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wschan_room_resumes_total", Help: "Resuming joins (wschan.room.v1) by result: hit, everything missed came from the history; gap, the client was told what it missed is gone (expired, history reset, or none kept).",
			ConstLabels: prometheus.Labels{"result": "gap"},
		}, func() float64 { return float64(hub.Stats().Gaps) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wschan_room_history_messages_total", Help: "Room messages written to resuming members from the history.",
		}, func() float64 { return float64(hub.Stats().Replayed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wschan_room_slow_member_disconnects_total", Help: "Room members closed (1008) because their queue was full or a message waited the whole write timeout.",
		}, func() float64 { return float64(hub.Stats().SlowClosed) }),
	}
	if h, ok := broker.(rooms.Health); ok {
		roomGauges = append(roomGauges,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "wschan_room_broker_up", Help: "1 while the room broker (NATS) carries messages between instances, 0 while it cannot.",
			}, func() float64 {
				if h.Check() != nil {
					return 0
				}
				return 1
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "wschan_room_messages_lost_total", Help: "Room messages other instances published that this one is known to have missed (broker outages, dropped by the broker).",
			}, func() float64 { return float64(h.Lost()) }),
		)
	}
	for _, o := range []string{outcomeAccepted, outcomeBadRequest, outcomeOrigin, outcomeLimit, outcomeDraining} {
		for _, p := range []string{"HTTP/1.1", "HTTP/2.0"} {
			m.handshakes.WithLabelValues(o, p) // export zeros, so rates work from the start
		}
	}
	m.reg.MustRegister(roomGauges...)
	m.reg.MustRegister(m.open, m.handshakes, msgs, m.closes, m.slow, m.addrs, m.forwardErrs, roomMsgs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handshake outcomes.
const (
	outcomeAccepted   = "accepted"
	outcomeBadRequest = "bad_request"
	outcomeOrigin     = "origin_refused"
	outcomeLimit      = "over_limit"
	outcomeDraining   = "draining"
)

// Sources of wschan_forwarding_errors_total.
const (
	forwardErrHeader = "header"
	forwardErrProxy  = "proxy_protocol"
)

// closed records how a connection ended: the code received from the client
// or sent to it.
func (m *metrics) closed(ch *wschan.Channel) {
	dir := "sent"
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); ok && ce.Remote {
		dir = "received"
	}
	code := int(ch.CloseCode())
	if code == int(wschan.StatusAbnormalClosure) {
		dir = "none"
	}
	k := closeKey{code, dir}
	m.mu.Lock()
	c, ok := m.closeKids[k]
	if !ok {
		c = m.closes.WithLabelValues(strconv.Itoa(code), dir)
		m.closeKids[k] = c
	}
	m.mu.Unlock()
	c.Inc()
}
