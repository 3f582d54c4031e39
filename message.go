package wschan

import "strconv"

// MessageType is the kind of a WebSocket data message.
type MessageType int

// The two WebSocket data message types (RFC 6455 opcodes 1 and 2).
const (
	Text   MessageType = 1 // UTF-8 text
	Binary MessageType = 2 // arbitrary bytes
)

func (t MessageType) String() string {
	switch t {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// Message is one complete WebSocket data message. A message read from a
// Channel's stream owns its Data; a message passed to an OnMessage callback
// does not (see DialOptions.OnMessage).
type Message struct {
	Type MessageType
	Data []byte

	buf msgBuf // the engine's pooled buffer behind Data, if any
}

// msgBuf is memory behind a Message that can be given back.
type msgBuf interface{ Close() error }

// Release gives the memory behind m.Data back for reuse by later messages.
// It is optional: a message that is never released is garbage collected as
// usual. Calling it saves an allocation per message on busy channels, at a
// price: after Release, m.Data (and any copy of m or slice of its Data)
// must not be used. Call it at most once per message, from one goroutine.
func (m *Message) Release() {
	if m.buf != nil {
		_ = m.buf.Close()
		m.buf = nil
	}
	m.Data = nil
}

// State is where a Channel is in its life; see DialOptions.OnStateChange.
type State int

// Channel states. A plain channel goes Open → Closed. A reconnecting channel
// starts Connecting and goes Open → Reconnecting → Open ... → Closed.
const (
	StateConnecting State = iota
	StateOpen
	StateReconnecting
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateOpen:
		return "open"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}
