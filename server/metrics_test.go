package server_test

// Tests of /metrics: exact values after a known workload, scraped over HTTP
// and parsed with the Prometheus text parser.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// metricsTimeout bounds one metrics test.
const metricsTimeout = 30 * time.Second

// metricsScrape is one parsed scrape of /metrics.
type metricsScrape map[string]*dto.MetricFamily

// metricsClient opens a connection per scrape, so that no idle keep-alive
// connection outlives the test.
var metricsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// metricsGet scrapes baseURL/metrics and parses it.
func metricsGet(ctx context.Context, t testing.TB, baseURL string) metricsScrape {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the series of family name whose labels are exactly
// labels (name, value pairs), or nil.
func (s metricsScrape) metric(name string, labels ...string) *dto.Metric {
	fam := s[name]
	if fam == nil {
		return nil
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
			}
		}
		if match {
			return m
		}
	}
	return nil
}

// value returns the value of a counter or gauge series, and whether the
// series exists.
func (s metricsScrape) value(name string, labels ...string) (float64, bool) {
	m := s.metric(name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// series lists the label sets and values of a family, for messages and for
// checking that no unexpected series exist.
func (s metricsScrape) series(name string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range s[name].GetMetric() {
		var ls []string
		for _, lp := range m.GetLabel() {
			ls = append(ls, lp.GetName()+"="+lp.GetValue())
		}
		slices.Sort(ls)
		v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// metricsWait scrapes until cond holds, or fails the test when ctx ends.
// Polling is the only way to see a counter change; it waits for a
// condition, not for a time.
func metricsWait(ctx context.Context, t testing.TB, baseURL, what string, cond func(metricsScrape) bool) metricsScrape {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s := metricsGet(ctx, t, baseURL)
		if cond(s) {
			return s
		}
		select {
		case <-ctx.Done():
			open, _ := s.value("wschan_connections_open")
			t.Fatalf("waiting for %s: %v; last scrape: wschan_connections_open %v, wschan_close_codes_total %v",
				what, context.Cause(ctx), open, s.series("wschan_close_codes_total"))
		case <-tick.C:
		}
	}
}

// metricsHandshakeError dials with opts and returns the HTTP refusal, or
// fails the test when the dial succeeds or fails otherwise.
func metricsHandshakeError(ctx context.Context, t testing.TB, url string, opts *wschan.DialOptions) *wschan.HandshakeError {
	t.Helper()
	ch, err := wschan.Dial(ctx, url, opts)
	if err == nil {
		_ = ch.Close(wschan.StatusNormalClosure, "")
		t.Fatalf("Dial(%s) succeeded, want a refused handshake", url)
	}
	he, ok := errors.AsType[*wschan.HandshakeError](err)
	if !ok {
		t.Fatalf("Dial(%s): %v (%T), want a *wschan.HandshakeError", url, err, err)
	}
	return he
}

// TestMetricsWorkload runs a known workload and checks every wschan_*
// metric it moves, exactly.
func TestMetricsWorkload(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, metricsTimeout)
	srv := start(t, server.Config{AllowedOrigins: []string{"allowed.example"}, MaxConnsPerIP: 2, LimitLoopback: true})

	// Refused handshakes first, while the per-IP limit has room: a plain
	// GET on /ws, then a browser from an origin not allowed.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET /ws: status %d, want 426", resp.StatusCode)
	}
	he := metricsHandshakeError(ctx, t, srv.WS+"/ws", &wschan.DialOptions{Header: http.Header{"Origin": {"https://evil.example"}}})
	if he.StatusCode != http.StatusForbidden {
		t.Errorf("origin not allowed: status %d, want 403", he.StatusCode)
	}

	// Two connections (one from the allowed origin) fill the per-IP limit;
	// a third is refused before the upgrade with 503 and Retry-After.
	a := wstest.Dial(t, srv.WS+"/ws", &wschan.DialOptions{Header: http.Header{"Origin": {"https://allowed.example"}}})
	b := wstest.Dial(t, srv.WS+"/ws", nil)
	he = metricsHandshakeError(ctx, t, srv.WS+"/ws", nil)
	if he.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third connection from one IP: status %d, want 503", he.StatusCode)
	}
	if ra := he.Header.Get("Retry-After"); ra == "" {
		t.Errorf("503 without Retry-After")
	} else if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
		t.Errorf("Retry-After %q, want a positive number of seconds", ra)
	}
	// The gauge moves when Accept returns on the server, which can be just
	// after the client's Dial has (the 101 is on the wire first).
	var open float64
	for range 200 {
		if open, _ = metricsGet(ctx, t, srv.URL).value("wschan_connections_open"); open == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if open != 2 {
		t.Errorf("wschan_connections_open = %v with two clients, want 2", open)
	}

	// On each connection: 5 text messages of 10 bytes, 3 binary of 1000,
	// each echo read before the next send.
	const (
		texts, textSize     = 5, 10
		binaries, binSize   = 3, 1000
		conns               = 2
		msgs                = conns * (texts + binaries)
		msgBytes            = conns * (texts*textSize + binaries*binSize)
		smallMsgs, largeMsg = conns * texts, conns * binaries
	)
	for _, ch := range []*wschan.Channel{a, b} {
		for i := range texts + binaries {
			typ, data := wschan.Text, bytes.Repeat([]byte{'a' + byte(i)}, textSize)
			if i >= texts {
				typ, data = wschan.Binary, bytes.Repeat([]byte{byte(i)}, binSize)
			}
			if err := ch.Send(ctx, typ, data); err != nil {
				t.Fatal(err)
			}
			m, err := ch.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != typ || !bytes.Equal(m.Data, data) {
				t.Fatalf("echo %d: %v %q, want %v %q", i, m.Type, m.Data, typ, data)
			}
		}
	}
	if err := a.Close(4001, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(wschan.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}

	// The server records a close once its handler sees the channel end:
	// wait for both, and for the gauge to come back to 0.
	s := metricsWait(ctx, t, srv.URL, "both closes recorded and no connection open", func(s metricsScrape) bool {
		open, ok := s.value("wschan_connections_open")
		var closes float64
		for _, v := range s.series("wschan_close_codes_total") {
			closes += v
		}
		return ok && open == 0 && closes >= 2
	})

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"messages in", "wschan_messages_total", []string{"direction", "in"}, msgs},
		{"messages out", "wschan_messages_total", []string{"direction", "out"}, msgs},
		{"bytes in", "wschan_message_bytes_total", []string{"direction", "in"}, msgBytes},
		{"bytes out", "wschan_message_bytes_total", []string{"direction", "out"}, msgBytes},
		{"handshakes accepted", "wschan_handshakes_total", []string{"outcome", "accepted", "proto", "HTTP/1.1"}, 2},
		{"handshakes origin refused", "wschan_handshakes_total", []string{"outcome", "origin_refused", "proto", "HTTP/1.1"}, 1},
		{"handshakes over limit", "wschan_handshakes_total", []string{"outcome", "over_limit", "proto", "HTTP/1.1"}, 1},
		{"handshakes bad request", "wschan_handshakes_total", []string{"outcome", "bad_request", "proto", "HTTP/1.1"}, 1},
		{"handshakes draining", "wschan_handshakes_total", []string{"outcome", "draining", "proto", "HTTP/1.1"}, 0},
		{"close 4001 received", "wschan_close_codes_total", []string{"code", "4001", "direction", "received"}, 1},
		{"close 1000 received", "wschan_close_codes_total", []string{"code", "1000", "direction", "received"}, 1},
		{"connections open", "wschan_connections_open", nil, 0},
		{"slow reader disconnects", "wschan_slow_reader_disconnects_total", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := s.value(tt.metric, tt.labels...)
			if !ok {
				t.Fatalf("%s%v: no such series; the family has %v", tt.metric, tt.labels, s.series(tt.metric))
			}
			if got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
	t.Run("close codes: no other series", func(t *testing.T) {
		t.Parallel()
		want := map[string]float64{"code=4001,direction=received": 1, "code=1000,direction=received": 1}
		if got := s.series("wschan_close_codes_total"); !maps.Equal(got, want) {
			t.Errorf("wschan_close_codes_total = %v, want %v", got, want)
		}
	})
	t.Run("message size histogram", func(t *testing.T) {
		t.Parallel()
		m := s.metric("wschan_message_size_bytes")
		if m == nil || m.Histogram == nil {
			t.Fatalf("wschan_message_size_bytes: no histogram")
		}
		h := m.GetHistogram()
		if got := h.GetSampleCount(); got != msgs {
			t.Errorf("count %d, want %d", got, msgs)
		}
		if got := h.GetSampleSum(); got != msgBytes {
			t.Errorf("sum %v, want %v", got, float64(msgBytes))
		}
		// Cumulative buckets: the 10-byte messages fall in le=16, the
		// 1000-byte ones in le=1024.
		wantBuckets := map[float64]uint64{16: smallMsgs, 64: smallMsgs, 256: smallMsgs, 1024: smallMsgs + largeMsg, 4096: smallMsgs + largeMsg}
		for _, bk := range h.GetBucket() {
			if want, ok := wantBuckets[bk.GetUpperBound()]; ok {
				if bk.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
				}
				delete(wantBuckets, bk.GetUpperBound())
			}
		}
		if len(wantBuckets) > 0 {
			t.Errorf("buckets missing: %v", wantBuckets)
		}
	})
}

// TestMetricsRateLimit sends faster than the per-connection token bucket
// allows: the server closes with 1008 once the burst is spent, and the
// metrics agree with what the client saw.
func TestMetricsRateLimit(t *testing.T) {
	t.Parallel()
	ctx := wstest.Context(t, metricsTimeout)
	srv := start(t, server.Config{MessageRate: 5, MessageBurst: 5, LimitLoopback: true})
	ch := wstest.Dial(t, srv.WS+"/ws", nil)

	const sent = 20
	for i := range sent {
		// The server may close before the last ones are sent.
		if err := ch.SendText(ctx, fmt.Sprintf("m%d", i)); err != nil {
			break
		}
	}
	echoed := 0
	for {
		m, err := ch.Read(ctx)
		if err != nil {
			break
		}
		if want := fmt.Sprintf("m%d", echoed); string(m.Data) != want {
			t.Errorf("echo %d: %q, want %q", echoed, m.Data, want)
		}
		echoed++
	}
	ce, ok := errors.AsType[*wschan.CloseError](ch.Err())
	if !ok || !ce.Remote || ce.Code != wschan.StatusPolicyViolation {
		t.Fatalf("channel ended with %v (%T), want a close frame from the server with 1008", ch.Err(), ch.Err())
	}
	// The bucket starts full: the burst is echoed, and at 5/s not all 20.
	if echoed < 5 || echoed >= sent {
		t.Errorf("%d echoes before the close, want at least the burst (5) and fewer than %d", echoed, sent)
	}

	s := metricsWait(ctx, t, srv.URL, "the 1008 close recorded", func(s metricsScrape) bool {
		open, ok := s.value("wschan_connections_open")
		v, _ := s.value("wschan_close_codes_total", "code", "1008", "direction", "sent")
		return ok && open == 0 && v >= 1
	})
	if got := s.series("wschan_close_codes_total"); !maps.Equal(got, map[string]float64{"code=1008,direction=sent": 1}) {
		t.Errorf("wschan_close_codes_total = %v, want only 1008 sent, once", got)
	}
	if out, _ := s.value("wschan_messages_total", "direction", "out"); out != float64(echoed) {
		t.Errorf("wschan_messages_total{direction=out} = %v, want %d (the echoes the client got)", out, echoed)
	}
	// Messages over the limit are counted in but not echoed.
	if in, _ := s.value("wschan_messages_total", "direction", "in"); in < float64(echoed+1) || in > sent {
		t.Errorf("wschan_messages_total{direction=in} = %v, want from %d to %d", in, echoed+1, sent)
	}
}
