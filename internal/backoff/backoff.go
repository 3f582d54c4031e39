// Package backoff computes capped exponential backoff delays with jitter,
// for redialling a dropped connection without a thundering herd.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy describes the delays: attempt 1 waits about Min, each further
// attempt doubles it, never beyond Max. Every delay is drawn uniformly from
// [d/2, d] ("equal jitter"), so clients that dropped together spread out
// but none retries at once.
type Policy struct {
	Min time.Duration
	Max time.Duration
}

// Delay returns the wait before attempt n (n ≥ 1). jitter returns a number
// in [0, 1); nil means math/rand/v2.
func (p Policy) Delay(n int, jitter func() float64) time.Duration {
	if n < 1 {
		n = 1
	}
	if p.Min <= 0 {
		p.Min = time.Millisecond
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	if jitter == nil {
		jitter = rand.Float64
	}
	half := d / 2
	return half + time.Duration(jitter()*float64(d-half))
}
