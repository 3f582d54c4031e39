package rooms

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"time"
)

// Defaults for MemoryBrokerOptions (and the server's --room-history flags).
const (
	DefaultHistorySize  = 100
	DefaultHistoryTTL   = 5 * time.Minute
	DefaultHistoryBytes = 1 << 20
)

// MemoryBrokerOptions configure NewMemoryBroker. The zero value (or nil)
// keeps no history.
type MemoryBrokerOptions struct {
	// HistorySize is how many recent publications the broker keeps per
	// room, for members that come back (JoinOptions.Since). Default 0: no
	// history, and Publish returns the zero StreamPosition.
	HistorySize int

	// HistoryTTL is how long a publication stays in the history. Default
	// DefaultHistoryTTL (5m) when HistorySize is set.
	HistoryTTL time.Duration

	// HistoryBytes bounds the payload bytes kept per room: the oldest
	// publications go first. Default DefaultHistoryBytes (1 MiB) when
	// HistorySize is set.
	HistoryBytes int

	// Now is the clock; default time.Now. For tests.
	Now func() time.Time
}

// MemoryBroker is a Broker inside one process: publications go to the
// subscribers of this broker only, so hubs that share one MemoryBroker
// share their rooms, as hubs on one NATS cluster do. It is the default
// broker of a Hub. It implements Presence the same way, so hubs that
// share it count each other's members.
//
// With MemoryBrokerOptions.HistorySize set it keeps each room's latest
// publications in a ring (bounded by count, age and bytes) and implements
// History: publications get positions, offsets from 1 in an epoch named
// when the room's ring is made. A room's ring lives on after its last
// member leaves, until its newest publication is older than HistoryTTL;
// then it is dropped, and the room's next publication starts a new epoch.
//
// Publish delivers on the publisher's goroutine, one publication at a time
// per room, so every subscriber of a room sees the room's publications in
// the same order. The zero value is ready to use, without history.
type MemoryBroker struct {
	opts MemoryBrokerOptions

	mu       sync.Mutex
	topics   map[string]*memTopic[Publication]
	rings    map[string]*memRing // under mu; each ring's content under its topic's pub lock or mu (see memRing)
	presence map[string]*memTopic[PresenceUpdate]
}

var (
	_ Broker   = (*MemoryBroker)(nil)
	_ History  = (*MemoryBroker)(nil)
	_ Presence = (*MemoryBroker)(nil)
)

// memTopic is one room's subscribers of one kind: publications or
// presence updates.
type memTopic[T any] struct {
	pub  sync.Mutex   // held while delivering: one order for all subscribers
	subs []*memSub[T] // copy on write, under MemoryBroker.mu
}

type memSub[T any] struct {
	b       *MemoryBroker
	topics  *map[string]*memTopic[T] // the broker's map it is in
	room    string
	deliver func(T)
}

// subscribe adds deliver to room's topic in topics, one of b's maps.
func subscribe[T any](b *MemoryBroker, topics *map[string]*memTopic[T], room string, deliver func(T)) *memSub[T] {
	s := &memSub[T]{b: b, topics: topics, room: room, deliver: deliver}
	b.mu.Lock()
	defer b.mu.Unlock()
	if *topics == nil {
		*topics = map[string]*memTopic[T]{}
	}
	t := (*topics)[room]
	if t == nil {
		t = &memTopic[T]{}
		(*topics)[room] = t
	}
	t.subs = append(slices.Clip(t.subs), s)
	return s
}

// Unsubscribe removes the subscription; a room without subscribers of
// its kind is forgotten (its history stays until it expires). It is safe
// to call more than once.
func (s *memSub[T]) Unsubscribe() error {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	t := (*s.topics)[s.room]
	if t == nil {
		return nil
	}
	i := slices.Index(t.subs, s)
	if i < 0 {
		return nil
	}
	t.subs = slices.Delete(slices.Clone(t.subs), i, i+1)
	if len(t.subs) == 0 {
		delete(*s.topics, s.room)
	}
	return nil
}

// memRing is one room's history. All its fields are under MemoryBroker.mu.
type memRing struct {
	epoch string
	last  uint64        // offset of the latest publication
	pubs  []Publication // oldest first, Position set
	at    []time.Time   // when each was published
	bytes int
}

// NewMemoryBroker returns an empty MemoryBroker with opts (nil: no
// history).
func NewMemoryBroker(opts *MemoryBrokerOptions) *MemoryBroker {
	var o MemoryBrokerOptions
	if opts != nil {
		o = *opts
	}
	if o.HistorySize > 0 {
		if o.HistoryTTL <= 0 {
			o.HistoryTTL = DefaultHistoryTTL
		}
		if o.HistoryBytes <= 0 {
			o.HistoryBytes = DefaultHistoryBytes
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MemoryBroker{opts: o}
}

func (b *MemoryBroker) now() time.Time {
	if b.opts.Now == nil {
		return time.Now()
	}
	return b.opts.Now()
}

// Publish copies pub.Data once and delivers pub to every subscriber of
// room before it returns; with history, it first records pub in the room's
// ring and returns its position. It never fails, unless ctx has already
// ended.
func (b *MemoryBroker) Publish(ctx context.Context, room string, pub Publication) (StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return StreamPosition{}, err
	}
	b.mu.Lock()
	t := b.topics[room]
	b.mu.Unlock()
	if t == nil && b.opts.HistorySize <= 0 {
		return StreamPosition{}, nil
	}
	pub.Data = slices.Clone(pub.Data)
	if pub.Data == nil {
		pub.Data = []byte{}
	}
	if t == nil {
		b.mu.Lock()
		pub.Position = b.record(room, pub)
		b.mu.Unlock()
		return pub.Position, nil
	}
	t.pub.Lock()
	defer t.pub.Unlock()
	b.mu.Lock()
	subs := t.subs
	if b.opts.HistorySize > 0 {
		pub.Position = b.record(room, pub)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(pub)
	}
	return pub.Position, nil
}

// record adds pub to room's ring and returns its position. It runs under
// b.mu, with history on.
func (b *MemoryBroker) record(room string, pub Publication) StreamPosition {
	now := b.now()
	r := b.ring(room, now)
	r.last++
	pub.Position = StreamPosition{Epoch: r.epoch, Offset: r.last}
	r.pubs = append(r.pubs, pub)
	r.at = append(r.at, now)
	r.bytes += len(pub.Data)
	r.trim(b.opts, now)
	return pub.Position
}

// ring returns room's ring, making one (in a new epoch) when there is none
// or the old one has expired; it drops the other expired rings of rooms
// without subscribers, so rings do not pile up. It runs under b.mu.
func (b *MemoryBroker) ring(room string, now time.Time) *memRing {
	r := b.rings[room]
	if r != nil && !r.expired(b.opts.HistoryTTL, now) {
		return r
	}
	if b.rings == nil {
		b.rings = map[string]*memRing{}
	}
	for name, old := range b.rings {
		if b.topics[name] == nil && old.expired(b.opts.HistoryTTL, now) {
			delete(b.rings, name)
		}
	}
	r = &memRing{epoch: rand.Text()[:10]}
	b.rings[room] = r
	return r
}

// expired reports whether the ring's newest publication is older than ttl
// (a ring with none never expires: it was just made).
func (r *memRing) expired(ttl time.Duration, now time.Time) bool {
	return len(r.at) > 0 && now.Sub(r.at[len(r.at)-1]) > ttl
}

// trim drops publications beyond the ring's bounds, oldest first.
func (r *memRing) trim(o MemoryBrokerOptions, now time.Time) {
	drop := 0
	for drop < len(r.pubs) && (len(r.pubs)-drop > o.HistorySize || r.bytes > o.HistoryBytes || now.Sub(r.at[drop]) > o.HistoryTTL) {
		r.bytes -= len(r.pubs[drop].Data)
		drop++
	}
	if drop > 0 {
		clear(r.pubs[:drop])
		r.pubs = slices.Delete(r.pubs, 0, drop) // keeps the backing array: no allocation per publication once full
		r.at = slices.Delete(r.at, 0, drop)
	}
}

// History implements History. Without history it returns the zero
// position and nothing. A room that has no ring yet gets one, so that its
// epoch is known from the first member's join.
func (b *MemoryBroker) History(ctx context.Context, room string, since *StreamPosition) ([]Publication, StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return nil, StreamPosition{}, err
	}
	if b.opts.HistorySize <= 0 {
		return nil, StreamPosition{}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	r := b.ring(room, now)
	r.trim(b.opts, now)
	top := StreamPosition{Epoch: r.epoch, Offset: r.last}
	if since == nil || since.Epoch != r.epoch {
		return nil, top, nil
	}
	i, _ := slices.BinarySearchFunc(r.pubs, since.Offset+1, func(p Publication, off uint64) int {
		switch {
		case p.Position.Offset < off:
			return -1
		case p.Position.Offset > off:
			return 1
		}
		return 0
	})
	return slices.Clone(r.pubs[i:]), top, nil
}

// Subscribe registers deliver for room's publications. It never fails,
// unless ctx has already ended.
func (b *MemoryBroker) Subscribe(ctx context.Context, room string, deliver func(Publication)) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return subscribe(b, &b.topics, room, deliver), nil
}

// PublishPresence implements Presence: it delivers u to every presence
// subscriber of room before it returns. It never fails, unless ctx has
// already ended.
func (b *MemoryBroker) PublishPresence(ctx context.Context, room string, u PresenceUpdate) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	p := b.presence[room]
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	p.pub.Lock()
	defer p.pub.Unlock()
	b.mu.Lock()
	subs := p.subs
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(u)
	}
	return nil
}

// SubscribePresence implements Presence. It never fails, unless ctx has
// already ended.
func (b *MemoryBroker) SubscribePresence(ctx context.Context, room string, deliver func(PresenceUpdate)) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return subscribe(b, &b.presence, room, deliver), nil
}
