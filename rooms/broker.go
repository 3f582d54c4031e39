package rooms

import (
	"context"

	"github.com/wschan/wschan"
)

// Broker carries publications between hubs: those in one process
// (MemoryBroker) or in every process on a message bus (the natsbroker
// subpackage). A Hub subscribes to a room while it has members in it and
// publishes through the broker, so a hub receives its own publications
// back, in the order the broker carries them.
//
// The interface is modelled on centrifugal/centrifuge's Broker.
// Publications carry a StreamPosition: a broker that keeps history returns
// the position each publication got, which is what lets a client that
// reconnects ask for what it missed; history itself is the separate,
// optional History interface, so a broker without it stays this small.
//
// Implementations must be safe for concurrent use.
type Broker interface {
	// Publish sends pub to every subscriber of room, in this process and,
	// for a networked broker, in every other one. pub.Data is only valid
	// during the call: a broker that keeps it copies it. Publish returns
	// the position the publication got in the room's stream, or the zero
	// StreamPosition when the broker keeps no history. An error means the
	// publication may not have been carried.
	Publish(ctx context.Context, room string, pub Publication) (StreamPosition, error)

	// Subscribe calls deliver for every publication to room from now on,
	// until the Subscription is cancelled. Calls for one subscription do
	// not overlap, and each publisher's publications arrive in the order
	// it published them. deliver must not block for long (a Hub only
	// queues) and may keep pub.Data, which it must not modify.
	Subscribe(ctx context.Context, room string, deliver func(pub Publication)) (Subscription, error)
}

// Subscription is a Broker subscription to one room.
type Subscription interface {
	// Unsubscribe stops delivery. A delivery already under way may still
	// complete.
	Unsubscribe() error
}

// Publication is one message published to a room.
type Publication struct {
	Type wschan.MessageType // Text or Binary
	Data []byte             // the payload, byte for byte

	// Sender is the ID of the Member that published it, or "" for
	// Hub.Publish.
	Sender string

	// Position is where the publication sits in the room's stream, set by
	// a broker that keeps history; zero otherwise.
	Position StreamPosition
}

// StreamPosition is a place in a room's stream, as in centrifuge: Offset
// counts the room's publications, and Epoch names the history they belong
// to. A broker that loses a room's history (a restart without persistence,
// an expired stream) starts a new epoch, so a position from before cannot
// be mistaken for one after it. The zero value means "no position".
type StreamPosition struct {
	Epoch  string
	Offset uint64
}

// Health is implemented by brokers that can fail while the process runs,
// such as one on a network (natsbroker). A server reports it in its
// readiness check and metrics.
type Health interface {
	// Check returns nil while the broker carries publications, or why it
	// cannot now.
	Check() error
	// Lost counts publications the broker knows it failed to deliver to
	// this process (for example, published elsewhere during an outage).
	Lost() uint64
}

// History is implemented by brokers that keep each room's recent
// publications (MemoryBroker with HistorySize set, natsbroker on
// JetStream). With it, a member that joins with JoinOptions.Since receives
// what it missed while away, or a gap notice when the history no longer
// reaches back that far.
//
// Positions: Publish returns, and Subscribe's deliver sees in
// Publication.Position, each publication's place in the room's stream;
// offsets count up from 1 within an epoch.
type History interface {
	// History returns the position of the room's latest publication (the
	// zero Offset, in the room's current epoch, when it has none yet) and,
	// when since is not nil, the publications after *since that the
	// broker still holds, oldest first. It does not judge since: a since
	// from another epoch or from the future is the caller's to spot by
	// comparing it with the returned position. Publications returned may
	// be kept by the caller, which must not modify their Data.
	History(ctx context.Context, room string, since *StreamPosition) ([]Publication, StreamPosition, error)
}
