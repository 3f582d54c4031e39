package wschan

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// keepalive sends a ping every interval and ends a connection whose peer
// stops answering: a ping that gets no answer for timeout, while nothing
// else arrives and the connection is not busy (see keepaliveConn.busy),
// aborts it. A shared timer drives it (ticks, a tickHeap: no goroutine and
// no timer of its own while it waits), re-armed from timestamps: nothing on
// the message path touches it.
type keepalive struct {
	interval time.Duration
	timeout  time.Duration // 0: pings only measure the round trip
	c        keepaliveConn
	now      func() int64 // monotonic nanoseconds

	sched *tickHeap // runs tick (ticks, or a test's)
	due   int64     // when tick is due (under sched.mu)
	idx   int32     // index in sched's heap plus one, 0 when not in it (under sched.mu)

	mu      sync.Mutex
	stopped bool
	pings   sync.WaitGroup // ping writes under way

	pingAt   atomic.Int64 // when the last ping was queued (its payload), 0 if none
	ponged   atomic.Bool  // the last ping was answered
	pingSent atomic.Int64 // when the last ping's write finished
	pinging  atomic.Bool  // a ping write is under way
	timedOut atomic.Bool  // the peer was declared dead
}

// keepaliveConn is what the keepalive watches and acts on.
type keepaliveConn interface {
	lastRead() int64    // when bytes last arrived
	lastSendEnd() int64 // when the last Send's turn ended
	// busy reports whether the connection waits on something with its own
	// bound, so that a silent peer is not a dead one.
	busy() bool
	writePing(p []byte) error // may block behind other writes
	abort()                   // the peer is dead: close the socket
}

// start arms the first tick; an interval of 0 means no keepalive.
func (k *keepalive) start() {
	if k.interval <= 0 {
		return
	}
	k.mu.Lock()
	if !k.stopped {
		k.sched.schedule(k, k.interval)
	}
	k.mu.Unlock()
}

// stop disarms the timer; wait then waits for a ping write under way.
func (k *keepalive) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.sched != nil {
		k.sched.remove(k)
	}
	k.mu.Unlock()
}

func (k *keepalive) wait() { k.pings.Wait() }

func (k *keepalive) tick() {
	iv, to := k.interval, k.timeout
	now := k.now()
	queued := k.pinging.Load() // before pingSent: writePing stores that first
	at, sent := k.pingAt.Load(), k.pingSent.Load()
	var next time.Duration
	var ping bool
	switch {
	case queued && to > 0 && !k.c.busy():
		// The ping still waits behind another write: nothing can answer
		// it. The timeout counts from the latest of its queueing, the last
		// Send and the last read, so a peer that floods pings and reads
		// nothing (the read loop stuck on a pong) is ended, and a slow
		// reader of a large Send is not, as soon as that Send is over.
		base := max(at, k.c.lastSendEnd(), k.c.lastRead())
		if now-base >= int64(to) {
			k.expire()
			return
		}
		next = time.Duration(base + int64(to) - now)
	case queued:
		next = iv
		if to > 0 && to < iv {
			next = to
		}
	case at != 0 && to > 0 && !k.alive(at) && now-sent >= int64(to):
		k.expire()
		return
	case at != 0 && to > 0 && !k.alive(at):
		next = time.Duration(sent + int64(to) - now)
	case at == 0 || now-at >= int64(iv):
		ping = true
		next = iv
		if to > 0 && to < iv {
			next = to
		}
	default:
		next = time.Duration(at + int64(iv) - now)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	if ping {
		// The ping is written on its own goroutine: a write stuck behind a
		// peer that stopped reading must not stop the timer that ends such
		// a connection.
		k.pinging.Store(true)
		k.pingAt.Store(now) // before ponged: a late pong to the last ping must not count
		k.ponged.Store(false)
		k.pings.Add(1)
		go k.writePing(now)
	}
	k.sched.schedule(k, next)
}

// expire declares the peer dead, unless the keepalive was stopped
// meanwhile (its tick may have been taken from the heap just before); the
// socket is closed on a goroutine of its own, since closing may wait (a
// TLS connection's close_notify) and ticks run one after another.
func (k *keepalive) expire() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.timedOut.Store(true)
	k.mu.Unlock()
	go k.c.abort()
}

// writePing writes the ping queued at id (its payload) and notes when it
// went out: the timeout counts from then.
func (k *keepalive) writePing(id int64) {
	defer k.pings.Done()
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(id))
	_ = k.c.writePing(p[:])
	k.pingSent.Store(k.now())
	k.pinging.Store(false)
}

// alive reports whether the peer showed signs of life since the ping at
// at, or the connection is busy.
func (k *keepalive) alive(at int64) bool {
	return k.ponged.Load() || k.c.busy() || k.c.lastRead() > at
}

// pong takes a pong and returns the round trip it completes; ok is false
// if it answers no ping of ours (or an old one).
func (k *keepalive) pong(p []byte) (rtt time.Duration, ok bool) {
	if len(p) != 8 {
		return 0, false
	}
	at := int64(binary.BigEndian.Uint64(p))
	if at != k.pingAt.Load() || k.ponged.Load() {
		return 0, false
	}
	k.ponged.Store(true)
	// From when the ping went out if that is known yet (it may have waited
	// behind a large write), else from when it was queued.
	return time.Duration(k.now() - max(at, k.pingSent.Load())), true
}
