package server

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Message traffic is counted per connection, where only that connection's
// goroutines touch the counters, and summed when /metrics is scraped: the
// counters of open connections plus the totals of ended ones, which each
// connection adds once, when it ends. Nothing on the message path writes
// memory that other connections write too.

// sizeBounds are the upper bounds of wschan_message_size_bytes' buckets:
// 16 B, then ×4 up to 4 MiB.
var sizeBounds = prometheus.ExponentialBuckets(16, 4, 10)

// traffic is one connection's message counters (or the sum of ended ones).
type traffic struct {
	in, out           atomic.Int64
	bytesIn, bytesOut atomic.Int64
	// sizes counts messages in by the first bucket that holds their size
	// (the last: larger); made with the first message, so that an idle
	// connection does without it.
	sizes atomic.Pointer[sizeCounts]
}

type sizeCounts [sizeSlots]atomic.Int64

// counts returns t's size counters, made on first use.
func (t *traffic) counts() *sizeCounts {
	if c := t.sizes.Load(); c != nil {
		return c
	}
	t.sizes.CompareAndSwap(nil, new(sizeCounts))
	return t.sizes.Load()
}

const sizeSlots = 11 // len(sizeBounds) + 1: the last for larger messages

// received counts a message of n bytes from the client.
func (t *traffic) received(n int) {
	t.in.Add(1)
	t.bytesIn.Add(int64(n))
	t.counts()[sizeBucket(n)].Add(1)
}

// sent counts a message of n bytes to the client.
func (t *traffic) sent(n int) {
	t.out.Add(1)
	t.bytesOut.Add(int64(n))
}

// addTo adds t's counts to sum.
func (t *traffic) addTo(sum *traffic) {
	sum.in.Add(t.in.Load())
	sum.out.Add(t.out.Load())
	sum.bytesIn.Add(t.bytesIn.Load())
	sum.bytesOut.Add(t.bytesOut.Load())
	if c := t.sizes.Load(); c != nil {
		into := sum.counts()
		for i := range c {
			into[i].Add(c[i].Load())
		}
	}
}

// sizeBucket returns the index of the first bucket whose bound holds n:
// bound i is 16·4^i, so it is the number of base-4 digits n-1 has beyond
// the two that 16 takes.
func sizeBucket(n int) int {
	if n <= 16 {
		return 0
	}
	return min((bits.Len(uint(n-1))-4+1)/2, len(sizeBounds))
}

// trafficCollector serves wschan_messages_total, wschan_message_bytes_total
// and wschan_message_size_bytes from the ended totals and the open
// connections' counters.
type trafficCollector struct {
	// sum adds the totals of ended connections and the counters of open
	// ones to its argument, all under one lock: a connection that ends
	// meanwhile is counted once, so the counters never go back.
	sum func(*traffic)

	msgs, bytes, size *prometheus.Desc
}

func newTrafficCollector(sum func(*traffic)) *trafficCollector {
	return &trafficCollector{
		sum: sum,
		msgs: prometheus.NewDesc("wschan_messages_total",
			"WebSocket data messages, by direction (in: from clients).", []string{"direction"}, nil),
		bytes: prometheus.NewDesc("wschan_message_bytes_total",
			"Payload bytes of WebSocket data messages, by direction.", []string{"direction"}, nil),
		size: prometheus.NewDesc("wschan_message_size_bytes",
			"Size of messages received from clients.", nil, nil),
	}
}

func (c *trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.msgs
	ch <- c.bytes
	ch <- c.size
}

func (c *trafficCollector) Collect(ch chan<- prometheus.Metric) {
	var sum traffic
	c.sum(&sum)
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(sum.in.Load()), "in")
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(sum.out.Load()), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(sum.bytesIn.Load()), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(sum.bytesOut.Load()), "out")
	buckets := make(map[float64]uint64, len(sizeBounds))
	var cum uint64
	sizes := sum.counts()
	for i, bound := range sizeBounds {
		cum += uint64(sizes[i].Load())
		buckets[bound] = cum
	}
	count := cum + uint64(sizes[len(sizeBounds)].Load())
	ch <- prometheus.MustNewConstHistogram(c.size, count, float64(sum.bytesIn.Load()), buckets)
}

// clockBase is the origin of monotime.
var clockBase = time.Now()

// monotime is a monotonic clock reading in nanoseconds (never 0), cheap to
// keep in an atomic.
func monotime() int64 { return int64(time.Since(clockBase)) + 1 }
