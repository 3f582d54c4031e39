package rooms

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/wschan/wschan"
)

// Subprotocol names the envelope protocol: a client that asks for it
// (Sec-WebSocket-Protocol) speaks in commands and hears events, each a
// JSON text message, instead of the room's raw messages. The server's
// /ws/room/{name} uses it; library users pass JoinOptions.Envelopes.
//
// Events, server to client (fields left out when empty):
//
//	{"type":"welcome","member":ID,"epoch":E,"seq":N,"members":M}
//	    first, after a join: the member's ID, the room's position (epoch
//	    and the sequence of its latest message) and how many members it
//	    has. Every message after the welcome has a higher seq.
//	{"type":"message","seq":N,"from":ID,"text":"..."}
//	{"type":"message","seq":N,"from":ID,"binary":"base64..."}
//	    a room message: its sequence (left out when the broker keeps no
//	    history), the sender's member ID (left out for the server), the
//	    payload: "text", or else "binary" (left out when empty).
//	{"type":"gap","from_seq":A,"to_seq":B,"reason":R}
//	    after the welcome of a resuming join: messages A to B of the
//	    room's stream were missed and are gone. R is "expired" (the
//	    history does not reach back so far), "epoch" (the room's history
//	    was reset since: everything up to B in the new epoch, given in
//	    the welcome, is unknown to the client), or "no_history" (this
//	    server keeps none: how much was missed is unknown).
//	{"type":"join","member":ID,"members":M}, {"type":"leave",...}
//	    presence: a member that speaks this protocol joined or left; M
//	    is the room's member count after. Members are counted across
//	    every server sharing the room (wschan serve --nats), and so are
//	    joins and leaves.
//	{"type":"members","members":M}
//	    the member count changed without such a join or leave: a member
//	    without this protocol joined or left, the members of a server
//	    first counted (typically just after a welcome), or those of a
//	    server that went quiet (it stopped, or lost NATS) and are counted
//	    no longer. Members that do not speak this protocol are counted
//	    but not named: their joins and leaves are members events.
//	{"type":"error","error":TEXT}
//	    a command was refused; nothing else changed.
//
// Commands, client to server, as text messages:
//
//	{"type":"join"}                               join from now on
//	{"type":"join","epoch":E,"seq":N}             resume: join, first getting what came after N
//	{"type":"message","text":"..."}               publish text
//	{"type":"message","binary":"base64..."}       publish binary
//
// A binary message from the client is published as it is. Join comes
// first and once; a bad join (malformed, a seq ahead of the room) is
// answered with an error event and the client may try again.
const Subprotocol = "wschan.room.v1"

// Event types of the envelope protocol (see Subprotocol).
const (
	EventWelcome = "welcome"
	EventMessage = "message"
	EventGap     = "gap"
	EventJoin    = "join"
	EventLeave   = "leave"
	EventMembers = "members"
	EventError   = "error"
)

// Gap reasons.
const (
	GapExpired   = "expired"
	GapEpoch     = "epoch"
	GapNoHistory = "no_history"
)

// Event is one envelope-protocol event (see Subprotocol), for clients to
// decode with encoding/json. Text is a pointer so an empty text message
// is told apart from a binary one.
type Event struct {
	Type    string  `json:"type"`
	Member  string  `json:"member,omitempty"`
	Epoch   string  `json:"epoch,omitempty"`
	Seq     uint64  `json:"seq,omitempty"`
	Members int     `json:"members,omitempty"`
	From    string  `json:"from,omitempty"`
	Text    *string `json:"text,omitempty"`
	Binary  []byte  `json:"binary,omitempty"`
	GapFrom uint64  `json:"from_seq,omitempty"`
	GapTo   uint64  `json:"to_seq,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// Command is one client command (see Subprotocol), as ParseCommand reads
// it.
type Command struct {
	Type string // "join" or "message"

	// Since is where a join resumes from; nil for a plain join.
	Since *StreamPosition

	// MessageType and Data are a message command's payload.
	MessageType wschan.MessageType
	Data        []byte
}

// ErrBadCommand is matched by ParseCommand's errors.
var ErrBadCommand = errors.New("rooms: malformed command")

// maxEpochLen bounds an epoch in a command.
const maxEpochLen = 64

// ParseCommand reads one client text message of the envelope protocol.
// Its errors match ErrBadCommand and say what is wrong in words fit for
// an error event.
func ParseCommand(data []byte) (Command, error) {
	var raw struct {
		Type   *string          `json:"type"`
		Epoch  *string          `json:"epoch"`
		Seq    *json.RawMessage `json:"seq"`
		Text   *string          `json:"text"`
		Binary *[]byte          `json:"binary"`
	}
	bad := func(format string, args ...any) (Command, error) {
		return Command{}, fmt.Errorf("%w: "+format, append([]any{ErrBadCommand}, args...)...)
	}
	if !utf8.Valid(data) {
		return bad("not UTF-8")
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return bad("want a JSON object such as {\"type\":\"join\"}: %v", err)
	}
	if raw.Type == nil {
		return bad("no \"type\"")
	}
	switch *raw.Type {
	case "join":
		if raw.Text != nil || raw.Binary != nil {
			return bad("a join carries no text or binary")
		}
		if raw.Epoch == nil && raw.Seq == nil {
			return Command{Type: "join"}, nil
		}
		if raw.Epoch == nil || raw.Seq == nil {
			return bad("a resuming join needs both \"epoch\" and \"seq\" (from the welcome or the last message seen)")
		}
		seq, err := strconv.ParseUint(string(*raw.Seq), 10, 64)
		if err != nil {
			return bad("\"seq\" must be a whole number from 0 up, not %.40s", *raw.Seq)
		}
		if len(*raw.Epoch) > maxEpochLen {
			return bad("\"epoch\" is longer than %d bytes", maxEpochLen)
		}
		return Command{Type: "join", Since: &StreamPosition{Epoch: *raw.Epoch, Offset: seq}}, nil
	case "message":
		if raw.Epoch != nil || raw.Seq != nil {
			return bad("a message carries no epoch or seq")
		}
		switch {
		case raw.Text != nil && raw.Binary == nil:
			return Command{Type: "message", MessageType: wschan.Text, Data: []byte(*raw.Text)}, nil
		case raw.Binary != nil && raw.Text == nil:
			return Command{Type: "message", MessageType: wschan.Binary, Data: *raw.Binary}, nil
		}
		return bad("a message needs exactly one of \"text\" and \"binary\" (base64)")
	}
	return bad("unknown type %.40q: want \"join\" or \"message\"", *raw.Type)
}

// encodeEvent returns ev as JSON.
func encodeEvent(ev *Event) []byte {
	b, err := json.Marshal(ev)
	if err != nil { // cannot happen: every field encodes
		panic(err)
	}
	return b
}

// encodeMessage returns pub as a message event.
func encodeMessage(pub *Publication) []byte {
	ev := Event{Type: EventMessage, Seq: pub.Position.Offset, From: pub.Sender}
	if pub.Type == wschan.Text {
		s := string(pub.Data)
		ev.Text = &s
	} else {
		ev.Binary = pub.Data
		if ev.Binary == nil {
			ev.Binary = []byte{}
		}
	}
	return encodeEvent(&ev)
}
