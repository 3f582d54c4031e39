package natsbroker

import (
	"encoding/binary"
	"errors"

	"github.com/wschan/wschan"
)

// envelopeVersion is the first byte of every envelope.
const envelopeVersion = 1

// envelope is one publication on the wire.
type envelope struct {
	typ    wschan.MessageType
	seq    uint64 // per (origin, room), from 1
	origin string // the publishing Broker's ID
	sender string // rooms.Publication.Sender
	data   []byte
}

// maxIDLen bounds the origin and sender IDs.
const maxIDLen = 255

var errEnvelope = errors.New("natsbroker: malformed envelope")

// encode appends e to b: version, type, uvarint seq, origin and sender
// each as a length byte and the bytes, then the payload.
func (e *envelope) encode(b []byte) []byte {
	b = append(b, envelopeVersion, byte(e.typ))
	b = binary.AppendUvarint(b, e.seq)
	b = append(b, byte(len(e.origin)))
	b = append(b, e.origin...)
	b = append(b, byte(len(e.sender)))
	b = append(b, e.sender...)
	return append(b, e.data...)
}

// decode reads an envelope; e.data aliases b.
func decode(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 2 || b[0] != envelopeVersion || (b[1] != byte(wschan.Text) && b[1] != byte(wschan.Binary)) {
		return e, errEnvelope
	}
	e.typ = wschan.MessageType(b[1])
	b = b[2:]
	seq, n := binary.Uvarint(b)
	if n <= 0 || seq == 0 {
		return e, errEnvelope
	}
	e.seq, b = seq, b[n:]
	for _, p := range []*string{&e.origin, &e.sender} {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return e, errEnvelope
		}
		*p, b = string(b[1:1+int(b[0])]), b[1+int(b[0]):]
	}
	if e.origin == "" {
		return e, errEnvelope
	}
	e.data = b
	return e, nil
}
