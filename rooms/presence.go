package rooms

import (
	"context"
	"time"
)

// DefaultPresenceInterval is the default of HubOptions.PresenceInterval.
const DefaultPresenceInterval = 5 * time.Second

// presenceTTLFactor: a hub's members count for this many of its
// announcement intervals after its last word, so that one or two lost
// announcements do not make them blink out.
const presenceTTLFactor = 3

// presenceTimeout bounds one PublishPresence call.
const presenceTimeout = 5 * time.Second

// Presence is implemented by brokers that carry presence between the hubs
// that share a room (MemoryBroker between hubs in one process, natsbroker
// between processes). With it, a hub's envelope members hear joins and
// leaves of members on every hub, and the member count is the room's
// total; without it, presence covers the hub's own members.
//
// The broker only carries PresenceUpdates; the hubs keep the counts. Each
// hub announces every change of its membership in a room and, every
// HubOptions.PresenceInterval, its member count in each room it has
// members in, with a TTL of three intervals. A hub counts another hub's
// members until that TTL runs out without a new update: so a hub that
// leaves cleanly is dropped at once (its last update says 0), and the
// members of one that died, hung or lost its broker stop counting within
// the TTL. Why announcements with a TTL rather than, say, a key per hub in
// a NATS KV bucket: they work on any broker that can carry a message
// (core NATS needs no JetStream), the same code serves every broker, and
// an update that is lost costs no more than a count that is stale until
// the next announcement, since each update carries the hub's whole count
// rather than a change to it.
//
// Implementations must be safe for concurrent use.
type Presence interface {
	// PublishPresence sends u to every subscriber of room's presence, in
	// this process and, for a networked broker, in every other one (the
	// sender's own subscription may hear it too: hubs ignore their own
	// updates). The updates of one caller must arrive in the order it
	// published them. It should not block for long; an error means u may
	// not have been carried.
	PublishPresence(ctx context.Context, room string, u PresenceUpdate) error

	// SubscribePresence calls deliver for every presence update to room
	// from now on, until the Subscription is cancelled. Calls for one
	// subscription do not overlap. deliver does not block for long.
	SubscribePresence(ctx context.Context, room string, deliver func(PresenceUpdate)) (Subscription, error)
}

// PresenceUpdate is what a hub tells the other hubs of a room about its
// members there (see Presence).
type PresenceUpdate struct {
	// Hub is the sending hub's ID, unique among the hubs on a broker.
	Hub string

	// Members is how many members the hub has in the room now, after the
	// join or leave the update is about, if any. 0 means none: forget
	// the hub in this room.
	Members int

	// TTL is how long receivers count Members without hearing from the
	// hub again.
	TTL time.Duration

	// Joined or Left, when set, is the ID of an envelope member that
	// joined or left the room on the sending hub; receivers tell their
	// envelope members. An update with neither is an announcement of the
	// count alone.
	Joined, Left string

	// Sync says the sending hub has just started following the room:
	// every other hub with members in it answers with its count at once,
	// rather than at its next announcement.
	Sync bool
}

// remoteCount is another hub's member count in a room.
type remoteCount struct {
	n     int
	until time.Time // stop counting them then, unless the hub speaks again
}

// presenceOut is an update waiting to be published.
type presenceOut struct {
	room string
	u    PresenceUpdate
}

// presenceTTL is the TTL the hub's updates carry.
func (h *Hub) presenceTTL() time.Duration {
	return presenceTTLFactor * h.opts.PresenceInterval
}

// totalLocked is the room's member count: this hub's members and the
// other hubs' that have not expired. It runs under r.mu.
func (r *room) totalLocked() int {
	n := len(r.members)
	for _, c := range r.remote {
		n += c.n
	}
	return n
}

// announceLocked queues u, with the hub's ID, count and TTL filled in, to
// be published by the hub's presence goroutine, which publishes in order.
// The first update of a room asks the other hubs for their counts. It runs
// under r.mu; the broker is not called here.
func (r *room) announceLocked(u PresenceUpdate) {
	h := r.hub
	if h.pres == nil {
		return
	}
	u.Hub, u.Members, u.TTL = h.hubID, len(r.members), h.presenceTTL()
	if !r.synced {
		u.Sync, r.synced = true, true
	}
	h.pmu.Lock()
	h.pending = append(h.pending, presenceOut{r.name, u})
	h.pmu.Unlock()
	select {
	case h.pwake <- struct{}{}:
	default:
	}
}

// eventLocked queues a presence event for the room's envelope members. It
// runs under r.mu.
func (r *room) eventLocked(typ, member string) {
	if r.envelopes == 0 {
		return
	}
	r.queueLocked(&delivery{env: encodeEvent(&Event{Type: typ, Member: member, Members: r.totalLocked()})}, nil)
}

// presence takes another hub's update to the room: it updates that hub's
// count, tells the envelope members, and answers a hub that is new to
// the room (or asks) with this hub's count.
func (r *room) presence(u PresenceUpdate) {
	h := r.hub
	if u.Hub == h.hubID || u.Hub == "" {
		return
	}
	ttl := u.TTL
	if ttl <= 0 {
		ttl = h.presenceTTL()
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.remote == nil {
		r.remote = map[string]remoteCount{}
	}
	before := r.totalLocked()
	_, known := r.remote[u.Hub]
	if u.Members > 0 {
		r.remote[u.Hub] = remoteCount{n: u.Members, until: now.Add(ttl)}
	} else {
		delete(r.remote, u.Hub)
	}
	switch {
	case u.Joined != "":
		r.eventLocked(EventJoin, u.Joined)
	case u.Left != "":
		r.eventLocked(EventLeave, u.Left)
	case r.totalLocked() != before:
		r.eventLocked(EventMembers, "")
	}
	if (u.Sync || !known && u.Members > 0) && len(r.members) > 0 {
		r.announceLocked(PresenceUpdate{})
	}
}

// expireLocked stops counting the hubs whose TTL ran out, and tells the
// envelope members the new count. It runs under r.mu.
func (r *room) expireLocked(now time.Time) {
	gone := false
	for id, c := range r.remote {
		if now.After(c.until) {
			delete(r.remote, id)
			gone = true
		}
	}
	if gone {
		r.eventLocked(EventMembers, "")
	}
}

// presenceLoop is the hub's presence goroutine, started with its first
// room: it publishes the queued updates in order, and every
// PresenceInterval announces the hub's count in each of its rooms and
// drops the other hubs that have gone quiet. It ends when Close closes
// h.pstop, after publishing what is queued.
func (h *Hub) presenceLoop() {
	defer close(h.pdone)
	tick := time.NewTicker(h.opts.PresenceInterval)
	defer tick.Stop()
	for {
		select {
		case <-h.pwake:
		case now := <-tick.C:
			h.heartbeat(now)
		case <-h.pstop:
			h.flushPresence()
			return
		}
		h.flushPresence()
	}
}

// heartbeat queues the hub's count in each of its rooms and expires the
// other hubs that have gone quiet.
func (h *Hub) heartbeat(now time.Time) {
	h.mu.Lock()
	rs := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rs = append(rs, r)
	}
	h.mu.Unlock()
	for _, r := range rs {
		r.mu.Lock()
		if len(r.members) > 0 {
			r.announceLocked(PresenceUpdate{})
		}
		r.expireLocked(now)
		r.mu.Unlock()
	}
}

// flushPresence publishes the queued updates, oldest first. A failed
// publication is not retried: the next announcement carries the count.
func (h *Hub) flushPresence() {
	for {
		h.pmu.Lock()
		batch := h.pending
		h.pending = nil
		h.pmu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, p := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
			_ = h.pres.PublishPresence(ctx, p.room, p.u)
			cancel()
		}
	}
}

// Members returns the room's member count as the hub's envelope members
// hear it: the hub's own members plus, when its broker implements
// Presence, the members other hubs announced and that have not expired.
// It is 0 for a room in which this hub has no member, since the hub
// follows only those.
func (h *Hub) Members(roomName string) int {
	h.mu.Lock()
	r := h.rooms[roomName]
	h.mu.Unlock()
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.totalLocked()
}
