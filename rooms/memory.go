package rooms

import (
	"context"
	"slices"
	"sync"
)

// MemoryBroker is a Broker inside one process: publications go to the
// subscribers of this broker only, so hubs that share one MemoryBroker
// share their rooms, as hubs on one NATS cluster do. It is the default
// broker of a Hub. It keeps no history (Publish returns the zero
// StreamPosition).
//
// Publish delivers on the publisher's goroutine, one publication at a time
// per room, so every subscriber of a room sees the room's publications in
// the same order. The zero value is ready to use.
type MemoryBroker struct {
	mu     sync.Mutex
	topics map[string]*memTopic
}

var _ Broker = (*MemoryBroker)(nil)

type memTopic struct {
	pub  sync.Mutex // held while delivering: one order for all subscribers
	subs []*memSub  // copy on write, under MemoryBroker.mu
}

type memSub struct {
	b       *MemoryBroker
	room    string
	deliver func(Publication)
}

// NewMemoryBroker returns an empty MemoryBroker.
func NewMemoryBroker() *MemoryBroker { return &MemoryBroker{} }

// Publish copies pub.Data once and delivers pub to every subscriber of
// room before it returns. It never fails, unless ctx has already ended.
func (b *MemoryBroker) Publish(ctx context.Context, room string, pub Publication) (StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return StreamPosition{}, err
	}
	b.mu.Lock()
	t := b.topics[room]
	b.mu.Unlock()
	if t == nil {
		return StreamPosition{}, nil
	}
	pub.Data = slices.Clone(pub.Data)
	if pub.Data == nil {
		pub.Data = []byte{}
	}
	t.pub.Lock()
	defer t.pub.Unlock()
	b.mu.Lock()
	subs := t.subs
	b.mu.Unlock()
	for _, s := range subs {
		s.deliver(pub)
	}
	return StreamPosition{}, nil
}

// Subscribe registers deliver for room's publications. It never fails,
// unless ctx has already ended.
func (b *MemoryBroker) Subscribe(ctx context.Context, room string, deliver func(Publication)) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &memSub{b: b, room: room, deliver: deliver}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.topics == nil {
		b.topics = map[string]*memTopic{}
	}
	t := b.topics[room]
	if t == nil {
		t = &memTopic{}
		b.topics[room] = t
	}
	t.subs = append(slices.Clip(t.subs), s)
	return s, nil
}

// Unsubscribe removes the subscription; a room without subscribers is
// forgotten. It is safe to call more than once.
func (s *memSub) Unsubscribe() error {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[s.room]
	if t == nil {
		return nil
	}
	i := slices.Index(t.subs, s)
	if i < 0 {
		return nil
	}
	t.subs = slices.Delete(slices.Clone(t.subs), i, i+1)
	if len(t.subs) == 0 {
		delete(b.topics, s.room)
	}
	return nil
}
