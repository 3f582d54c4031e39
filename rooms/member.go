package rooms

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wschan/wschan"
)

// Conn is a member's connection: a *wschan.Channel, or anything that sends
// and closes like one.
//
// A member that falls behind is closed with 1008 and a reason once the
// message being written to it is out; the close frame then waits behind
// whatever the connection's socket still holds. Keep that small (on Linux,
// a TCP_NOTSENT_LOWAT of some tens of KiB on the socket, as wschan serve
// sets): behind a send buffer of megabytes, a member that reads slowly
// cannot take the message in progress within the write timeout, so the hub
// abandons it and the member sees its connection drop (1006) with no
// reason.
type Conn interface {
	// Send writes one message; ctx bounds the wait for a peer that does not
	// read.
	Send(ctx context.Context, typ wschan.MessageType, data []byte) error
	// Close ends the connection with a close code and reason.
	Close(code wschan.StatusCode, reason string) error
}

var _ Conn = (*wschan.Channel)(nil)

// TrySender is a Conn that can also send a message without waiting, as a
// server's *wschan.Channel can (see wschan.Channel.TrySend): TrySend
// returns false, having sent nothing, when the message would have to
// wait.
//
// For a member whose Conn is a TrySender and who has nothing queued, the
// hub writes each message from the goroutine that delivers it to the room,
// and wakes the member's own goroutine only when TrySend says the message
// would wait. A message to a room of thousands then costs one goroutine
// that writes, instead of thousands woken at once, which keep the
// process's other work (echo, health checks) waiting behind them.
type TrySender interface {
	TrySend(typ wschan.MessageType, data []byte) (bool, error)
}

var _ TrySender = (*wschan.Channel)(nil)

// Member is one connection in one room, returned by Hub.Join. Its methods
// are safe for concurrent use.
type Member struct {
	id   string
	hub  *Hub
	room *room
	conn Conn
	try  TrySender // conn, when it is one; else nil

	// inflight counts the deliveries in q or being written by the
	// member's goroutine (plus one until an envelope member's first
	// events are out). The room writes to the member itself (try) only
	// when it is 0, so nothing overtakes what waits.
	inflight atomic.Int32
	off      atomic.Bool // halted: the room writes nothing more to it

	// ctx bounds the member's writes: cancelled by the hub's Close, or by
	// watch when one write takes longer than the write timeout (then
	// timedOut is set). One timer per member, reset per write: no
	// allocation per message.
	ctx      context.Context
	cancel   context.CancelFunc
	watch    *time.Timer
	timedOut atomic.Bool

	// Envelope members: the events written first (welcome, gap, missed
	// messages), and the position they reach: queued publications at or
	// before it in its epoch are not written again.
	envelopes bool
	announced bool // others were told it joined; under room.mu
	pre       [][]byte
	epoch     string
	last      uint64

	q    chan *delivery // bounded queue, filled by room.deliver
	stop chan struct{}  // closed by halt
	done chan struct{}  // closed when the writer has ended

	mu     sync.Mutex
	why    stopReason // set by the first halt
	halted bool
	err    error // why delivery ended, once done is closed
}

type stopReason int

const (
	stopLeft stopReason = iota + 1
	stopSlowQueue
	stopHubClosed
)

// ID returns the member's ID, unique within its hub and unlikely to repeat
// across hubs; publications carry it as Sender.
func (m *Member) ID() string { return m.id }

// Room returns the name of the member's room.
func (m *Member) Room() string { return m.room.name }

// Publish sends a message to every member of the room, this one included,
// on every hub that shares the broker. Each member receives the messages of
// one publisher in the order it published them.
//
// typ must be wschan.Text (with UTF-8 data) or wschan.Binary. data is
// copied: the caller may reuse it once Publish returns. Publish works after
// the member has left too (it then sends as a non-member would).
func (m *Member) Publish(ctx context.Context, typ wschan.MessageType, data []byte) error {
	return m.hub.publish(ctx, m.room.name, typ, data, m.id)
}

// Leave takes the member out of its room and waits for its goroutine to
// end: messages still queued are not written, and a write in progress
// finishes first (within the hub's write timeout). The connection stays
// open. Calling Leave again does nothing. Do not call it from the
// connection's Send, which runs on that goroutine.
func (m *Member) Leave() {
	m.halt(stopLeft)
	<-m.done
}

// Done returns a channel that is closed when the member has stopped
// receiving: it left, was closed as too slow, its connection failed, or
// the hub closed.
func (m *Member) Done() <-chan struct{} { return m.done }

// Err returns nil while the member receives, and afterwards why it
// stopped: nil after Leave, an error matching ErrTooSlow when it was closed
// for not keeping up, ErrClosed when the hub closed, or the error from its
// connection's Send.
func (m *Member) Err() error {
	select {
	case <-m.done:
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// halt stops delivery to m for reason; the first reason wins.
//
// A member stopped for a full queue loses what is queued at once: none of
// it will be written (its close frame says how many messages were
// waiting), so the memory goes back now, not after the write in progress
// and the closing handshake, which may take the write timeout and the
// close timeout.
func (m *Member) halt(why stopReason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.halted {
		return
	}
	m.halted, m.why = true, why
	m.off.Store(true)
	close(m.stop)
	if why == stopSlowQueue {
		m.dropQueued()
	}
}

// dropQueued empties m's queue. The writer may take from it meanwhile:
// it then sees m halted and writes nothing.
func (m *Member) dropQueued() {
	for {
		select {
		case <-m.q:
		default:
			return
		}
	}
}

func (m *Member) stopped() (stopReason, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.why, m.halted
}

// write is the member's goroutine: it writes queued messages to the
// connection, one at a time, until the member stops.
func (m *Member) write() {
	h := m.hub
	defer h.wg.Done()
	m.ctx, m.cancel = context.WithCancel(h.ctx)
	m.watch = time.AfterFunc(h.opts.WriteTimeout, func() { m.timedOut.Store(true); m.cancel() })
	m.watch.Stop()
	err := m.writeLoop()
	m.watch.Stop()
	m.cancel()
	if se, ok := errors.AsType[*slowError](err); ok {
		h.slowClosed.Add(1)
		// The close frame follows the message last written, if any.
		_ = m.conn.Close(wschan.StatusPolicyViolation, se.reason)
	}
	h.leave(m)
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	close(m.done)
}

// slowError ends a member that did not keep up; reason is its close
// reason, short enough for a close frame.
type slowError struct{ reason string }

func (e *slowError) Error() string        { return ErrTooSlow.Error() + ": " + e.reason }
func (e *slowError) Is(target error) bool { return target == ErrTooSlow }

func (m *Member) writeLoop() error {
	for _, b := range m.pre {
		if err := m.send(wschan.Text, b); err != nil {
			return err
		}
	}
	m.pre = nil
	if m.envelopes {
		m.inflight.Add(-1) // the first events are out
	}
	for {
		select {
		case <-m.stop:
			return m.stopErr()
		case d := <-m.q:
			if _, halted := m.stopped(); halted {
				return m.stopErr()
			}
			var err error
			if typ, data, ok := m.message(d); ok {
				err = m.send(typ, data)
			}
			m.inflight.Add(-1)
			if err != nil {
				return err
			}
		}
	}
}

// message is what d is written to m as; ok is false for a publication an
// envelope member has already had (from the history, or before its
// welcome's position).
func (m *Member) message(d *delivery) (typ wschan.MessageType, data []byte, ok bool) {
	p := d.pub
	switch {
	case !m.envelopes:
		return p.Type, p.Data, true
	case p != nil && p.Position.Offset != 0 && p.Position.Epoch == m.epoch && p.Position.Offset <= m.last:
		return 0, nil, false
	}
	return wschan.Text, d.env, true
}

// tryNow writes d to m from the caller's goroutine if m has nothing
// waiting and its connection takes the message without waiting. done
// means d needs nothing more (written, or one m has had), written that it
// was written; otherwise d is to be queued. It runs under the room's
// lock, which keeps deliveries to m in one order.
func (m *Member) tryNow(d *delivery) (done, written bool) {
	if m.try == nil || m.inflight.Load() != 0 || m.off.Load() {
		return false, false
	}
	typ, data, ok := m.message(d)
	if !ok {
		return true, false
	}
	sent, err := m.try.TrySend(typ, data)
	// An error is left to the member's goroutine: its Send fails the same
	// way and ends the member as any failed write does.
	sent = sent && err == nil
	return sent, sent
}

// send writes one message within the write timeout.
func (m *Member) send(typ wschan.MessageType, data []byte) error {
	h := m.hub
	m.watch.Reset(h.opts.WriteTimeout)
	err := m.conn.Send(m.ctx, typ, data)
	m.watch.Stop()
	switch {
	case err == nil:
		h.delivered.Add(1)
		return nil
	case m.timedOut.Load() && h.ctx.Err() == nil:
		h.leave(m) // out of the room before the close handshake
		return &slowError{"too slow: no message taken for " + h.opts.WriteTimeout.String()}
	case h.ctx.Err() != nil:
		return ErrClosed
	}
	return fmt.Errorf("rooms: send to member: %w", err)
}

func (m *Member) stopErr() error {
	why, _ := m.stopped()
	switch why {
	case stopSlowQueue:
		return &slowError{"too slow: " + strconv.Itoa(m.hub.opts.QueueSize) + " messages queued"}
	case stopHubClosed:
		return ErrClosed
	}
	return nil
}
