package rooms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
)

// Defaults for HubOptions.
const (
	DefaultMaxMembers   = 1000
	DefaultMaxRooms     = 1000
	DefaultQueueSize    = 256
	DefaultWriteTimeout = 10 * time.Second
)

// Errors callers branch on with errors.Is. The errors returned wrap them
// with the details (the name, the limit).
var (
	// ErrInvalidName is matched by an error for a room name ValidateName
	// refuses.
	ErrInvalidName = errors.New("rooms: invalid room name")

	// ErrRoomFull is matched by Join (and CanJoin) when the room already has
	// HubOptions.MaxMembers members on this hub.
	ErrRoomFull = errors.New("rooms: room is full")

	// ErrTooManyRooms is matched by Join (and CanJoin) for a new room when
	// the hub already has HubOptions.MaxRooms rooms.
	ErrTooManyRooms = errors.New("rooms: too many rooms")

	// ErrClosed is returned by a Hub's methods after Close, and by
	// Member.Err for a member whose hub closed.
	ErrClosed = errors.New("rooms: hub closed")

	// ErrFuturePosition is matched by JoinWith when JoinOptions.Since is
	// ahead of the room's latest publication in the same epoch: the client
	// claims to have seen messages that do not exist.
	ErrFuturePosition = errors.New("rooms: position ahead of the room")

	// ErrTooSlow is matched by Member.Err for a member closed because its
	// queue was full or a message took longer than the write timeout.
	ErrTooSlow = errors.New("rooms: member too slow")
)

// HubOptions configure NewHub. The zero value (or nil) means every default;
// NewHub copies the struct.
type HubOptions struct {
	// Broker carries publications between hubs. Default: a MemoryBroker of
	// the hub's own (rooms live in this hub only). The hub does not close
	// it.
	Broker Broker

	// MaxMembers is how many members one room may have on this hub.
	// Default DefaultMaxMembers (1000); -1 for no limit. Hubs that share a
	// broker each apply it to their own members.
	MaxMembers int

	// MaxRooms is how many rooms with members this hub may hold. Default
	// DefaultMaxRooms (1000); -1 for no limit.
	MaxRooms int

	// QueueSize is how many messages may wait for one member. A member
	// whose queue is full when a message arrives is closed with 1008 "too
	// slow: N messages queued". Default DefaultQueueSize (256).
	QueueSize int

	// WriteTimeout bounds one write to a member's connection; a member that
	// takes no message for this long is closed as too slow. Default
	// DefaultWriteTimeout (10s).
	WriteTimeout time.Duration

	// PresenceInterval is how often the hub tells the other hubs on its
	// broker how many members it has in each room, when the broker
	// implements Presence (see there): other hubs count those members for
	// three intervals after the hub's last word and check every interval,
	// so the members of a hub that died or lost the broker stop counting
	// within four intervals. Joins and leaves are told at once. Default
	// DefaultPresenceInterval (5s); -1 keeps presence on this hub (the
	// member count is then this hub's members only). A hub whose Broker
	// is left nil has no other hub to tell.
	PresenceInterval time.Duration
}

// Hub holds rooms and their members. Create it with NewHub; its methods
// are safe for concurrent use. Each member has a goroutine that writes to
// its connection; Close stops them all and waits for them.
type Hub struct {
	opts   HubOptions
	idBase string

	// ctx bounds every write to a member: it lives as long as the hub and
	// is cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // member writers

	mu       sync.Mutex
	rooms    map[string]*room
	closed   bool
	pstarted bool // the presence goroutine runs

	// Presence across hubs (see Presence); pres is nil without it.
	pres    Presence
	hubID   string
	pmu     sync.Mutex
	pending []presenceOut // to publish, oldest first; under pmu
	pwake   chan struct{} // a send says pending has grown
	pstop   chan struct{} // closed by Close
	pdone   chan struct{} // closed when the presence goroutine has ended

	nextID     atomic.Uint64
	members    atomic.Int64
	published  atomic.Uint64
	received   atomic.Uint64
	delivered  atomic.Uint64
	direct     atomic.Uint64
	slowClosed atomic.Uint64
	resumed    atomic.Uint64
	gaps       atomic.Uint64
	replayed   atomic.Uint64
}

// JoinOptions configure Hub.JoinWith. The zero value (or nil) joins as
// Join does.
type JoinOptions struct {
	// Envelopes writes the envelope protocol to the member (see
	// Subprotocol): a welcome event first, then each room message as a
	// JSON message event with its sequence and sender, and presence
	// events (joins and leaves of envelope members, with the member
	// count; on every hub sharing the broker when it implements
	// Presence).
	Envelopes bool

	// Since, with Envelopes, resumes from a position the member saw
	// before (the welcome's, or its last message's): the messages after
	// it that the broker's History still holds are written after the
	// welcome, before anything live, each once; a gap event says what is
	// missing when the history does not reach back so far, was reset (a
	// new epoch), or does not exist. A Since ahead of the room is refused
	// with ErrFuturePosition.
	Since *StreamPosition
}

// delivery is one item of a member's queue: a publication, or a presence
// event for envelope members.
type delivery struct {
	pub *Publication // nil for a presence event
	env []byte       // the event as JSON; set when the room has envelope members
}

// room is one room of a hub. Lock order: Hub.mu, then room.mu; nothing
// that takes Hub.mu or calls the broker runs under room.mu.
type room struct {
	hub  *Hub
	name string
	sub  Subscription

	psub Subscription // to the room's presence; nil without Presence

	mu        sync.Mutex
	members   map[*Member]struct{}
	envelopes int                    // members that take envelopes
	remote    map[string]remoteCount // other hubs' members, by hub ID
	synced    bool                   // the first presence update (Sync) is queued
}

// NewHub returns a Hub with opts (nil for every default).
func NewHub(opts *HubOptions) *Hub {
	var o HubOptions
	if opts != nil {
		o = *opts
	}
	if o.Broker == nil {
		o.Broker = NewMemoryBroker(nil)
	}
	if o.MaxMembers == 0 {
		o.MaxMembers = DefaultMaxMembers
	}
	if o.MaxRooms == 0 {
		o.MaxRooms = DefaultMaxRooms
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	h := &Hub{
		idBase: rand.Text()[:8] + "-",
		hubID:  rand.Text()[:12],
		rooms:  map[string]*room{},
	}
	if p, ok := o.Broker.(Presence); ok && opts != nil && opts.Broker != nil && o.PresenceInterval >= 0 {
		h.pres = p
		if o.PresenceInterval == 0 {
			o.PresenceInterval = DefaultPresenceInterval
		}
		h.pwake, h.pstop, h.pdone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	}
	h.opts = o
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// CanJoin reports the error Join would return for room now, without
// joining: use it to refuse a connection before accepting it. Another Join
// may still take the last place in between, so Join can fail all the same.
func (h *Hub) CanJoin(roomName string) error {
	if err := ValidateName(roomName); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	r := h.rooms[roomName]
	if r == nil {
		return h.roomLimit()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return h.memberLimit(r)
}

func (h *Hub) roomLimit() error {
	if h.opts.MaxRooms > 0 && len(h.rooms) >= h.opts.MaxRooms {
		return fmt.Errorf("%w: the server has %d rooms, its limit", ErrTooManyRooms, h.opts.MaxRooms)
	}
	return nil
}

// memberLimit runs under r.mu.
func (h *Hub) memberLimit(r *room) error {
	if h.opts.MaxMembers > 0 && len(r.members) >= h.opts.MaxMembers {
		return fmt.Errorf("%w: room %q has %d members, its limit", ErrRoomFull, r.name, h.opts.MaxMembers)
	}
	return nil
}

// Join adds conn to the room named roomName, as JoinWith with no options
// does: the member receives the room's messages as they are.
func (h *Hub) Join(ctx context.Context, roomName string, conn Conn) (*Member, error) {
	return h.JoinWith(ctx, roomName, conn, nil)
}

// JoinWith adds conn to the room named roomName, creating the room (and its
// broker subscription) if this hub has no member in it yet, and starts
// delivering the room's publications to conn from now on. The member's own
// publications come back to it too.
//
// With opts.Envelopes the member hears the envelope protocol instead, and
// may resume (opts.Since); see JoinOptions.
//
// Errors match ErrInvalidName, ErrRoomFull, ErrTooManyRooms, ErrClosed or
// ErrFuturePosition, or come from the broker's Subscribe. ctx bounds the
// subscription and the history query.
//
// The hub owns writing to conn while the member is in the room: do not
// Send on conn meanwhile, or messages may interleave out of order. The hub
// closes conn only when the member is too slow (1008); otherwise conn stays
// the caller's to close.
func (h *Hub) JoinWith(ctx context.Context, roomName string, conn Conn, opts *JoinOptions) (*Member, error) {
	var o JoinOptions
	if opts != nil {
		o = *opts
	}
	if err := ValidateName(roomName); err != nil {
		return nil, err
	}
	m, err := h.add(ctx, roomName, conn, o.Envelopes)
	if err != nil {
		return nil, err
	}
	if o.Envelopes {
		if err := m.prepare(ctx, o.Since); err != nil {
			h.leave(m)
			h.wg.Done()
			return nil, err
		}
		r := m.room
		r.mu.Lock()
		if _, in := r.members[m]; in {
			m.announced = true
			r.presenceLocked(EventJoin, m)
			r.announceLocked(PresenceUpdate{Joined: m.id})
		}
		r.mu.Unlock()
	}
	go m.write()
	return m, nil
}

// add puts a new member in the room; its writer is the caller's to start
// (h.wg counts it already).
func (h *Hub) add(ctx context.Context, roomName string, conn Conn, envelopes bool) (*Member, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	r := h.rooms[roomName]
	if r == nil {
		if err := h.roomLimit(); err != nil {
			return nil, err
		}
		r = &room{hub: h, name: roomName, members: map[*Member]struct{}{}}
		sub, err := h.opts.Broker.Subscribe(ctx, roomName, r.deliver)
		if err != nil {
			return nil, fmt.Errorf("rooms: subscribe to room %q: %w", roomName, err)
		}
		r.sub = sub
		if h.pres != nil {
			psub, err := h.pres.SubscribePresence(ctx, roomName, r.presence)
			if err != nil {
				_ = sub.Unsubscribe()
				return nil, fmt.Errorf("rooms: subscribe to the presence of room %q: %w", roomName, err)
			}
			r.psub = psub
			if !h.pstarted {
				h.pstarted = true
				go h.presenceLoop()
			}
		}
		h.rooms[roomName] = r
	}
	m := &Member{
		id:        h.idBase + strconv.FormatUint(h.nextID.Add(1), 10),
		hub:       h,
		room:      r,
		conn:      conn,
		envelopes: envelopes,
		q:         make(chan *delivery, h.opts.QueueSize),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	m.try, _ = conn.(TrySender)
	if envelopes {
		m.inflight.Store(1) // until its first events are out
	}
	r.mu.Lock()
	if err := h.memberLimit(r); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.members[m] = struct{}{}
	if envelopes {
		r.envelopes++
	} else { // an envelope member is announced once it is welcomed
		r.eventLocked(EventMembers, "")
		r.announceLocked(PresenceUpdate{})
	}
	r.mu.Unlock()
	h.members.Add(1)
	h.wg.Add(1)
	return m, nil
}

// prepare finds where an envelope member starts: it asks the broker's
// history for the room's position (and, to resume, what came after since)
// and lines up the welcome, a gap notice and the missed messages to be
// written before anything live.
func (m *Member) prepare(ctx context.Context, since *StreamPosition) error {
	h, r := m.hub, m.room
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(h.ctx, cancel)()
	var (
		pubs []Publication
		top  StreamPosition
		herr error
	)
	hist, ok := h.opts.Broker.(History)
	if ok {
		pubs, top, herr = hist.History(ctx, r.name, since)
		if herr != nil && h.ctx.Err() != nil {
			return ErrClosed
		}
	}
	if since != nil && ok && herr == nil && since.Epoch == top.Epoch && since.Offset > top.Offset {
		return fmt.Errorf("%w: seq %d is ahead of the room's latest message, %d", ErrFuturePosition, since.Offset, top.Offset)
	}
	m.epoch, m.last = top.Epoch, top.Offset
	r.mu.Lock()
	n := r.totalLocked()
	r.mu.Unlock()
	m.pre = append(m.pre, encodeEvent(&Event{Type: EventWelcome, Member: m.id, Epoch: top.Epoch, Seq: top.Offset, Members: n}))
	if since == nil {
		return nil
	}
	gap := func(from, to uint64, reason string) {
		h.gaps.Add(1)
		m.pre = append(m.pre, encodeEvent(&Event{Type: EventGap, GapFrom: from, GapTo: to, Reason: reason}))
	}
	switch {
	case !ok || herr != nil || top.Epoch == "":
		gap(since.Offset+1, 0, GapNoHistory)
	case since.Epoch != top.Epoch:
		gap(1, top.Offset, GapEpoch)
	default:
		first := since.Offset + 1
		switch {
		case len(pubs) > 0 && pubs[0].Position.Offset > first:
			gap(first, pubs[0].Position.Offset-1, GapExpired)
		case len(pubs) == 0 && top.Offset >= first:
			gap(first, top.Offset, GapExpired)
		default:
			h.resumed.Add(1)
		}
		for i := range pubs {
			if off := pubs[i].Position.Offset; off > since.Offset && off <= top.Offset {
				m.pre = append(m.pre, encodeMessage(&pubs[i]))
				h.replayed.Add(1)
			}
		}
	}
	return nil
}

// Publish sends a message to every member of the room named roomName, on
// this hub and on every hub sharing its broker, as Member.Publish does but
// with no sender. A room without members takes the message and delivers it
// to no one.
//
// typ must be wschan.Text (with UTF-8 data) or wschan.Binary. data is
// copied: the caller may reuse it once Publish returns.
func (h *Hub) Publish(ctx context.Context, roomName string, typ wschan.MessageType, data []byte) error {
	if err := ValidateName(roomName); err != nil {
		return err
	}
	return h.publish(ctx, roomName, typ, data, "")
}

func (h *Hub) publish(ctx context.Context, roomName string, typ wschan.MessageType, data []byte, sender string) error {
	switch typ {
	case wschan.Text:
		if !utf8.Valid(data) {
			return wschan.ErrInvalidUTF8
		}
	case wschan.Binary:
	default:
		return fmt.Errorf("rooms: publish: message type %v is neither text nor binary", typ)
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if _, err := h.opts.Broker.Publish(ctx, roomName, Publication{Type: typ, Data: data, Sender: sender}); err != nil {
		return fmt.Errorf("rooms: publish to room %q: %w", roomName, err)
	}
	h.published.Add(1)
	return nil
}

// deliver queues pub for every member of the room. Members whose queue is
// full are stopped and taken out of the room at once; their writers close
// them.
func (r *room) deliver(pub Publication) {
	r.hub.received.Add(1)
	d := &delivery{pub: &pub}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.envelopes > 0 {
		d.env = encodeMessage(&pub)
	}
	r.queueLocked(d, nil)
}

// yieldEvery is how many members queueLocked writes to between yields of
// the processor: a few hundred microseconds of writes.
const yieldEvery = 32

// queueLocked gives d to every member (only envelope members for a
// presence event) but skip: a publication is written at once to those
// whose connection takes it without waiting (see TrySender), and queued
// for the others; an event is queued for all.
// Members whose queue is full are stopped and taken out of the room at
// once; their writers close them. It runs under r.mu.
func (r *room) queueLocked(d *delivery, skip *Member) {
	var gone []*Member
	var now uint64 // written here, not queued
	for m := range r.members {
		if m == skip || d.pub == nil && !m.envelopes {
			continue
		}
		// Events (presence, member counts) are always queued: they are
		// given out under the hub's lock too, which must not wait for
		// thousands of writes.
		if d.pub != nil {
			if done, written := m.tryNow(d); done {
				if written {
					now++
					if now%yieldEvery == 0 {
						// Writing to thousands of members takes
						// milliseconds: let what waits for a processor
						// (other connections' reads, echo) go first now
						// and then.
						runtime.Gosched()
					}
				}
				continue
			}
		}
		m.inflight.Add(1)
		select {
		case m.q <- d:
		default:
			m.inflight.Add(-1)
			r.removeLocked(m)
			m.halt(stopSlowQueue)
			gone = append(gone, m)
		}
	}
	if now > 0 {
		r.hub.delivered.Add(now)
		r.hub.direct.Add(now)
	}
	for _, m := range gone {
		r.leftLocked(m)
	}
}

// removeLocked takes m out of r's members. It runs under r.mu.
func (r *room) removeLocked(m *Member) {
	delete(r.members, m)
	if m.envelopes {
		r.envelopes--
	}
	r.hub.members.Add(-1)
	var left string
	if m.announced {
		left = m.id
	}
	r.announceLocked(PresenceUpdate{Left: left})
}

// presenceLocked tells the room's other envelope members that m joined or
// left. It runs under r.mu.
func (r *room) presenceLocked(typ string, m *Member) {
	if r.envelopes == 0 || r.envelopes == 1 && m.envelopes && typ == EventJoin {
		return
	}
	r.queueLocked(&delivery{env: encodeEvent(&Event{Type: typ, Member: m.id, Members: r.totalLocked()})}, m)
}

// leftLocked tells the room's envelope members that m, just removed, left:
// a leave event for an envelope member that was announced, a members
// event for a member without envelopes. It runs under r.mu.
func (r *room) leftLocked(m *Member) {
	switch {
	case m.announced:
		r.presenceLocked(EventLeave, m)
	case !m.envelopes:
		r.eventLocked(EventMembers, "")
	}
}

// leave takes m out of its room, if it is still there, and drops the room
// when it was the last member.
func (h *Hub) leave(m *Member) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := m.room
	r.mu.Lock()
	if _, ok := r.members[m]; ok {
		r.removeLocked(m)
		r.leftLocked(m)
	}
	empty := len(r.members) == 0
	r.mu.Unlock()
	if empty && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
		_ = r.sub.Unsubscribe() // nothing to do about an error: the room has no one left
		if r.psub != nil {
			_ = r.psub.Unsubscribe()
		}
	}
}

// Close takes every member out of its room (their connections stay open
// and theirs to close), abandons writes in progress, waits for the
// members' goroutines to end, and unsubscribes from the broker. With a
// Presence broker it first publishes the members' leaves (each within a
// few seconds), so other hubs stop counting them at once. Later calls
// to Join and Publish return ErrClosed. Close returns nil; calling it again
// does nothing.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		presence := h.pstarted
		h.mu.Unlock()
		h.wg.Wait()
		if presence {
			<-h.pdone
		}
		return nil
	}
	h.closed = true
	presence := h.pstarted
	var all []*Member
	for _, r := range h.rooms {
		r.mu.Lock()
		for m := range r.members {
			all = append(all, m)
		}
		r.mu.Unlock()
	}
	h.mu.Unlock()
	for _, m := range all {
		m.halt(stopHubClosed)
	}
	h.cancel()
	h.wg.Wait()
	if presence { // the members' leaves are queued: publish them, then stop
		close(h.pstop)
		<-h.pdone
	}
	return nil
}

// Stats are a hub's counters, for metrics.
type Stats struct {
	Rooms   int // rooms with at least one member on this hub
	Members int // members in those rooms

	Published  uint64 // messages this hub published (from its members and Hub.Publish)
	Received   uint64 // publications the broker delivered to this hub's rooms
	Delivered  uint64 // messages written to members' connections
	Direct     uint64 // of Delivered, written by the goroutine that delivered the publication (TrySender)
	SlowClosed uint64 // members closed because they did not keep up

	Resumed  uint64 // resuming joins that got everything they missed from the history
	Gaps     uint64 // resuming joins told of a gap instead (expired, reset or no history)
	Replayed uint64 // messages written from the history to resuming members
}

// Stats returns the hub's counters now.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.rooms)
	h.mu.Unlock()
	return Stats{
		Rooms:      n,
		Members:    int(h.members.Load()),
		Published:  h.published.Load(),
		Received:   h.received.Load(),
		Delivered:  h.delivered.Load(),
		Direct:     h.direct.Load(),
		SlowClosed: h.slowClosed.Load(),
		Resumed:    h.resumed.Load(),
		Gaps:       h.gaps.Load(),
		Replayed:   h.replayed.Load(),
	}
}
