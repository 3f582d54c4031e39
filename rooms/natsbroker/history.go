package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wschan/wschan/rooms"
)

// Defaults for the history options.
const (
	DefaultHistoryTTL   = rooms.DefaultHistoryTTL
	DefaultHistoryBytes = 1 << 20
)

// jsTimeout bounds one JetStream request of Subscribe (finding or making
// the room's stream) when its context has no earlier deadline.
const jsTimeout = 5 * time.Second

// jsRoom is a room's stream, found or made once per broker.
type jsRoom struct {
	name  string // stream name
	epoch string // from the stream's creation time
}

// streamName is the JetStream stream that keeps room's history: the
// prefix's dots become underscores ("wschan_room_lobby").
func (b *Broker) streamName(room string) string {
	return strings.ReplaceAll(b.opts.Prefix, ".", "_") + "_" + room
}

// stream finds the room's stream, or makes it, and remembers it.
func (b *Broker) stream(ctx context.Context, room string) (*jsRoom, error) {
	b.mu.Lock()
	jr := b.streams[room]
	b.mu.Unlock()
	if jr != nil {
		return jr, nil
	}
	subj, err := b.subject(room)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, jsTimeout)
	defer cancel()
	name := b.streamName(room)
	s, err := b.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "wschan room history",
			Subjects:    []string{subj},
			MaxMsgs:     int64(b.opts.HistorySize),
			MaxAge:      b.opts.HistoryTTL,
			MaxBytes:    b.opts.HistoryBytes,
			Discard:     jetstream.DiscardOld,
			Storage:     jetstream.FileStorage,
			Replicas:    b.opts.HistoryReplicas,
			RePublish:   &jetstream.RePublish{Source: subj, Destination: b.seqSubject(room)},
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another instance made it first
			s, err = b.js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsbroker: history stream %s: %w", name, err)
	}
	jr = &jsRoom{name: name, epoch: strconv.FormatInt(s.CachedInfo().Created.UnixNano(), 36)}
	b.mu.Lock()
	if old := b.streams[room]; old != nil {
		jr = old
	} else {
		b.streams[room] = jr
	}
	b.mu.Unlock()
	return jr, nil
}

// subscribeHistory delivers the room's publications with their
// positions: the room's stream republishes each message it stores, with
// its stream sequence in a header, on the room's sequenced subject, and
// this subscribes to that with core NATS. Live delivery so never waits on
// a JetStream consumer, which reads from the store and would miss a burst
// longer than the history. Losses are counted per publisher, as without
// history: a message the stream did not store (its leader was away) or
// did not republish to this process shows as a hole in its publisher's
// sequence.
func (b *Broker) subscribeHistory(ctx context.Context, room string, deliver func(rooms.Publication)) (rooms.Subscription, error) {
	jr, err := b.stream(ctx, room)
	if err != nil {
		return nil, err
	}
	check := b.lossCheck(room)
	sub, err := b.nc.Subscribe(b.seqSubject(room), func(m *nats.Msg) {
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return
		}
		e, err := decode(m.Data)
		if err != nil {
			return
		}
		check(e)
		deliver(rooms.Publication{Type: e.typ, Data: e.data, Sender: e.sender,
			Position: rooms.StreamPosition{Epoch: jr.epoch, Offset: seq}})
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to %s: %w", b.seqSubject(room), err)
	}
	return sub, nil
}

// seqSubject is where the room's stream republishes what it stores.
func (b *Broker) seqSubject(room string) string {
	return b.opts.Prefix + "_seq." + room
}

// History implements rooms.History from the room's JetStream stream. The
// epoch is the stream's creation time: a stream deleted and made again
// starts a new one. Without history configured it returns the zero
// position and nothing.
//
// JetStream's API can fail for a moment (a stream's leader being elected,
// a node just restarted): a failed query is tried up to six times over
// about two seconds,
// within ctx, before the error is returned (and the member gets a gap).
func (b *Broker) History(ctx context.Context, room string, since *rooms.StreamPosition) ([]rooms.Publication, rooms.StreamPosition, error) {
	var err error
	for attempt := range 6 {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * 100 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, rooms.StreamPosition{}, err
			}
		}
		var pubs []rooms.Publication
		var top rooms.StreamPosition
		if pubs, top, err = b.history(ctx, room, since); err == nil {
			return pubs, top, nil
		}
	}
	return nil, rooms.StreamPosition{}, err
}

func (b *Broker) history(ctx context.Context, room string, since *rooms.StreamPosition) ([]rooms.Publication, rooms.StreamPosition, error) {
	if b.js == nil {
		return nil, rooms.StreamPosition{}, nil
	}
	jr, err := b.stream(ctx, room)
	if err != nil {
		return nil, rooms.StreamPosition{}, err
	}
	s, err := b.js.Stream(ctx, jr.name)
	if err != nil {
		return nil, rooms.StreamPosition{}, fmt.Errorf("natsbroker: history of %s: %w", jr.name, err)
	}
	st := s.CachedInfo().State
	top := rooms.StreamPosition{Epoch: jr.epoch, Offset: st.LastSeq}
	if since == nil || since.Epoch != jr.epoch || since.Offset >= st.LastSeq || st.Msgs == 0 {
		return nil, top, nil
	}
	start := max(since.Offset+1, st.FirstSeq)
	if start > st.LastSeq {
		return nil, top, nil
	}
	cons, err := b.js.OrderedConsumer(ctx, jr.name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start, InactiveThreshold: 10 * time.Second})
	if err != nil {
		return nil, rooms.StreamPosition{}, fmt.Errorf("natsbroker: history of %s: %w", jr.name, err)
	}
	wait := jsTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = max(time.Until(d), 100*time.Millisecond)
	}
	batch, err := cons.Fetch(int(min(st.LastSeq-start+1, uint64(b.opts.HistorySize))), jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, rooms.StreamPosition{}, fmt.Errorf("natsbroker: history of %s: %w", jr.name, err)
	}
	var pubs []rooms.Publication
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil || md.Sequence.Stream > st.LastSeq {
			continue
		}
		e, err := decode(m.Data())
		if err != nil {
			continue
		}
		pubs = append(pubs, rooms.Publication{Type: e.typ, Data: e.data, Sender: e.sender,
			Position: rooms.StreamPosition{Epoch: jr.epoch, Offset: md.Sequence.Stream}})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return nil, rooms.StreamPosition{}, fmt.Errorf("natsbroker: history of %s: %w", jr.name, err)
	}
	return pubs, top, nil
}
