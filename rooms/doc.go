// Package rooms delivers every message published to a room to every member
// of that room: the chat that WebSocket tutorials build after echo.
//
// A Hub holds rooms. Join puts a connection (a *wschan.Channel, or anything
// that implements Conn) in a room; Member.Publish and Hub.Publish send a
// message to every member, the publisher included, byte for byte and with
// its type. Each member has a bounded queue and a goroutine of its own that
// writes to its connection, so a member that does not keep up never slows
// the room: when its queue is full it is closed with 1008 and a reason that
// says so ("too slow: 256 messages queued"), and the room goes on. A
// member whose connection can send without waiting (TrySender: a server's
// *wschan.Channel on Linux) and has nothing queued gets each
// message from the goroutine that delivers it, so a message to thousands
// of members wakes only the goroutines of those that are behind.
//
// Rooms span processes through a Broker. The default, MemoryBroker, keeps
// rooms inside one process (or shares them between hubs in one process, as
// tests and examples do); the natsbroker subpackage spans every process on
// a NATS cluster. The Broker interface follows centrifugal/centrifuge's:
// publications carry a StreamPosition (epoch and offset) so that a broker
// that keeps history can let a reconnecting client catch up without a gap.
//
// History and resume: with JoinOptions.Envelopes a member hears the
// envelope protocol (see Subprotocol): JSON events with each message's
// position and sender, and presence. With JoinOptions.Since it first gets
// what it missed from a broker that implements History (MemoryBroker with
// HistorySize, natsbroker on JetStream), or a gap event; a position from
// the future is refused with ErrFuturePosition.
//
// Presence: envelope members hear joins, leaves and the member count. With
// a broker that implements Presence (MemoryBroker, natsbroker) the count
// is the room's total over every hub sharing the broker: each hub tells
// the others of its joins and leaves, and announces its count every
// HubOptions.PresenceInterval with a TTL, so a hub that dies stops
// counting once its TTL runs out. Hub.Members reads the count.
//
// Limits: members per room and rooms per hub (HubOptions), checked by Join
// and, ahead of a WebSocket upgrade, by CanJoin. Room names are checked by
// ValidateName: 1 to 64 ASCII letters, digits, '-' or '_', so a name can
// never reach a broker as a wildcard or a path ("a.b", "*", ">").
//
// Where it sits: rooms is a library package, like wschan itself and one
// level above it. It imports only the standard library and wschan; it
// does not know HTTP routes, flags or metrics. The server package imports
// it to serve /ws/room/{name}, as it imports wschan to serve /ws, and
// cmd/wschan picks the Broker. Brokers that need other dependencies live
// in subpackages (natsbroker), so neither wschan nor rooms ever imports
// them.
//
// Start with NewHub and Hub.Join.
package rooms
