package rooms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	nextID     atomic.Uint64
	members    atomic.Int64
	published  atomic.Uint64
	received   atomic.Uint64
	delivered  atomic.Uint64
	slowClosed atomic.Uint64
}

// room is one room of a hub. Lock order: Hub.mu, then room.mu; nothing
// that takes Hub.mu or calls the broker runs under room.mu.
type room struct {
	hub  *Hub
	name string
	sub  Subscription

	mu      sync.Mutex
	members map[*Member]struct{}
}

// NewHub returns a Hub with opts (nil for every default).
func NewHub(opts *HubOptions) *Hub {
	var o HubOptions
	if opts != nil {
		o = *opts
	}
	if o.Broker == nil {
		o.Broker = NewMemoryBroker()
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{
		opts:   o,
		idBase: rand.Text()[:8] + "-",
		ctx:    ctx,
		cancel: cancel,
		rooms:  map[string]*room{},
	}
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

// Join adds conn to the room named roomName, creating the room (and its
// broker subscription) if this hub has no member in it yet, and starts
// delivering the room's publications to conn from now on. The member's own
// publications come back to it too.
//
// Errors match ErrInvalidName, ErrRoomFull, ErrTooManyRooms or ErrClosed,
// or come from the broker's Subscribe. ctx bounds the subscription only.
//
// The hub owns writing to conn while the member is in the room: do not
// Send on conn meanwhile, or messages may interleave out of order. The hub
// closes conn only when the member is too slow (1008); otherwise conn stays
// the caller's to close.
func (h *Hub) Join(ctx context.Context, roomName string, conn Conn) (*Member, error) {
	if err := ValidateName(roomName); err != nil {
		return nil, err
	}
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
		h.rooms[roomName] = r
	}
	m := &Member{
		id:   h.idBase + strconv.FormatUint(h.nextID.Add(1), 10),
		hub:  h,
		room: r,
		conn: conn,
		q:    make(chan *Publication, h.opts.QueueSize),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	r.mu.Lock()
	if err := h.memberLimit(r); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.members[m] = struct{}{}
	r.mu.Unlock()
	h.members.Add(1)
	h.wg.Add(1)
	go m.write()
	return m, nil
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
	h := r.hub
	h.received.Add(1)
	p := &pub
	r.mu.Lock()
	defer r.mu.Unlock()
	for m := range r.members {
		select {
		case m.q <- p:
		default:
			delete(r.members, m)
			h.members.Add(-1)
			m.halt(stopSlowQueue)
		}
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
		delete(r.members, m)
		h.members.Add(-1)
	}
	empty := len(r.members) == 0
	r.mu.Unlock()
	if empty && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
		_ = r.sub.Unsubscribe() // nothing to do about an error: the room has no one left
	}
}

// Close takes every member out of its room (their connections stay open
// and theirs to close), abandons writes in progress, waits for the
// members' goroutines to end, and unsubscribes from the broker. Later calls
// to Join and Publish return ErrClosed. Close returns nil; calling it again
// does nothing.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
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
	return nil
}

// Stats are a hub's counters, for metrics.
type Stats struct {
	Rooms   int // rooms with at least one member on this hub
	Members int // members in those rooms

	Published  uint64 // messages this hub published (from its members and Hub.Publish)
	Received   uint64 // publications the broker delivered to this hub's rooms
	Delivered  uint64 // messages written to members' connections
	SlowClosed uint64 // members closed because they did not keep up
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
		SlowClosed: h.slowClosed.Load(),
	}
}
