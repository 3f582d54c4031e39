// Package natsbroker is a rooms.Broker on NATS: hubs in every process
// connected to the same NATS cluster share their rooms, so members spread
// over many `wschan serve` instances hear each other.
//
// Each room is the subject Prefix + "." + name ("wschan.room.lobby" by
// default); room names are checked with rooms.ValidateName first, so a
// name can never be a wildcard or add a token. A message on the subject
// is a small binary envelope (see encode): message type, the sender's
// member ID, the publishing broker's ID and a sequence number per room
// and publisher, then the payload byte for byte. The sequence lets a
// receiver count publications it missed (a NATS outage, a slow
// subscription whose messages NATS dropped): Lost and Options.OnLost
// report them, so nothing lost is silent.
//
// Presence (rooms.Presence): the hubs of a room exchange their joins,
// leaves and member counts on Prefix + "_presence." + name, as small JSON
// updates on core NATS (no JetStream needed). The hubs keep the counts
// and expire a hub that stops announcing (see rooms.Presence), so the
// members of an instance that dies or loses NATS stop counting elsewhere.
//
// Connect starts the connection in the background and keeps retrying
// (RetryOnFailedConnect): a server with --nats starts even when NATS is
// unreachable, and Check says why rooms are not carried. Publishes made
// while disconnected wait in nats.go's reconnect buffer and go out on
// reconnect; publications other processes made meanwhile are lost for
// this one, and counted.
//
// Dependency: github.com/nats-io/nats.go, the NATS project's Go client.
// Only this package imports it: neither wschan nor rooms does. Its tests
// build and run github.com/nats-io/nats-server/v2 (a tool in go.mod) as
// real processes in a three-node cluster on loopback.
//
// Start with Connect.
package natsbroker
