package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/wschan/wschan/rooms"
)

var _ rooms.Presence = (*Broker)(nil)

// presenceSubject is where the hubs of a room exchange presence updates:
// Prefix + "_presence." + room, beside the room's own subject so that a
// subscriber to the room never sees them.
func (b *Broker) presenceSubject(room string) (string, error) {
	if err := rooms.ValidateName(room); err != nil {
		return "", err
	}
	return b.opts.Prefix + "_presence." + room, nil
}

// presenceWire is a rooms.PresenceUpdate on the wire, as JSON: a few
// messages a room per instance and interval do not need a binary form,
// and JSON is readable with `nats sub 'wschan.room_presence.>'`.
type presenceWire struct {
	Hub     string `json:"hub"`
	Members int    `json:"n"`
	TTLms   int64  `json:"ttl_ms"`
	Joined  string `json:"join,omitempty"`
	Left    string `json:"leave,omitempty"`
	Sync    bool   `json:"sync,omitempty"`
}

// Bounds a presence update must keep to: the counts and TTLs no hub
// sends are refused rather than trusted.
const (
	maxPresenceMembers = 1 << 30
	maxPresenceTTL     = 24 * time.Hour
)

var errPresence = errors.New("natsbroker: malformed presence update")

func encodePresence(u rooms.PresenceUpdate) ([]byte, error) {
	w := presenceWire{Hub: u.Hub, Members: u.Members, TTLms: u.TTL.Milliseconds(), Joined: u.Joined, Left: u.Left, Sync: u.Sync}
	if err := w.check(); err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

func decodePresence(b []byte) (rooms.PresenceUpdate, error) {
	var w presenceWire
	if err := json.Unmarshal(b, &w); err != nil {
		return rooms.PresenceUpdate{}, errPresence
	}
	if err := w.check(); err != nil {
		return rooms.PresenceUpdate{}, err
	}
	return rooms.PresenceUpdate{Hub: w.Hub, Members: w.Members, TTL: time.Duration(w.TTLms) * time.Millisecond,
		Joined: w.Joined, Left: w.Left, Sync: w.Sync}, nil
}

func (w *presenceWire) check() error {
	switch {
	case w.Hub == "" || len(w.Hub) > maxIDLen || len(w.Joined) > maxIDLen || len(w.Left) > maxIDLen:
		return fmt.Errorf("%w: hub or member ID empty or too long", errPresence)
	case w.Joined != "" && w.Left != "":
		return fmt.Errorf("%w: both a join and a leave", errPresence)
	case w.Members < 0 || w.Members > maxPresenceMembers:
		return fmt.Errorf("%w: member count %d", errPresence, w.Members)
	case w.TTLms <= 0 || w.TTLms > maxPresenceTTL.Milliseconds():
		return fmt.Errorf("%w: TTL %dms", errPresence, w.TTLms)
	}
	return nil
}

// PublishPresence implements rooms.Presence on core NATS (no JetStream):
// it returns once nats.go has the update, written or, while reconnecting,
// buffered. An update lost in an outage is repaired by the hub's next
// announcement.
func (b *Broker) PublishPresence(ctx context.Context, room string, u rooms.PresenceUpdate) error {
	subj, err := b.presenceSubject(room)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := encodePresence(u)
	if err != nil {
		return err
	}
	if err := b.nc.Publish(subj, data); err != nil {
		return fmt.Errorf("natsbroker: publish presence: %w", err)
	}
	return nil
}

// SubscribePresence implements rooms.Presence. deliver runs on the
// subscription's own goroutine, one update at a time; malformed updates
// are ignored.
func (b *Broker) SubscribePresence(ctx context.Context, room string, deliver func(rooms.PresenceUpdate)) (rooms.Subscription, error) {
	subj, err := b.presenceSubject(room)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sub, err := b.nc.Subscribe(subj, func(m *nats.Msg) {
		if u, err := decodePresence(m.Data); err == nil {
			deliver(u)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to %s: %w", subj, err)
	}
	return sub, nil
}
