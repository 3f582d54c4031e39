// Package frame parses RFC 6455 frames incrementally: from whatever bytes
// a socket gave, in any split, with the state of a partial frame kept
// between calls. It is the reading half of an event-driven engine, where
// no goroutine may block waiting for the rest of a frame; it has no I/O
// of its own and imports nothing of this module.
//
// It is held to the engine the library trusts by differential fuzzing
// (the same bytes, split at random points, give the same messages and the
// same close code): see FuzzParserMatchesEngine in the root package.
//
// Permessage-deflate (RFC 7692) is in deflate.go: Negotiate answers a
// client's offer, an Inflater inflates the messages the Parser marks
// Compressed, a Deflater compresses outgoing ones. It uses
// github.com/klauspost/compress/flate, the compressor of that engine
// (gws), which the build holds already: the same encoder at the same
// settings gives the same bytes, so the two engines compress alike.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Opcodes (RFC 6455, section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xa
)

// Close codes the parser fails a connection with.
const (
	CodeProtocolError  = 1002
	CodeInvalidPayload = 1007
	CodeMessageTooBig  = 1009
	codeNoStatus       = 1005
)

// Config is what a Parser enforces.
type Config struct {
	// Masked: incoming frames must be masked (the parser reads a client's
	// frames, on a server); else they must not be.
	Masked bool
	// MaxMessage is the largest message, in bytes, whole or fragmented.
	// For a compressed message it holds the compressed bytes, as they
	// come on the wire; the inflated size is the Inflater's limit.
	MaxMessage int
	// Deflate: permessage-deflate (RFC 7692) was negotiated. RSV1 on the
	// first frame of a data message then marks it compressed; anywhere
	// else, or without Deflate, a reserved bit fails the connection.
	Deflate bool
}

// Event is what the parser found: a complete data message, a control
// frame, or (Kind Close) the peer's close frame.
type Event struct {
	Kind Kind
	// Data is the message or control payload. It is valid until the next
	// call to Feed, and no longer than the bytes given to this one: it
	// may point into them.
	Data   []byte
	Code   int    // Close: the peer's status code, 1005 when it sent none
	Reason string // Close: the peer's reason
	// Compressed: Data is a permessage-deflate message as it came,
	// without its tail (see Inflater). Its UTF-8, for a text message,
	// has not been checked: the caller checks it after inflating.
	Compressed bool
}

// Kind says what an Event is.
type Kind uint8

// Event kinds.
const (
	Text Kind = iota + 1
	Binary
	Ping
	Pong
	Close
)

// Error is a violation: the connection must be failed with Code.
type Error struct {
	Code   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("frame: %s (close %d)", e.Reason, e.Code) }

// ErrClosed is returned by Feed after the peer's close frame: nothing may
// follow it.
var ErrClosed = errors.New("frame: bytes after the close frame")

// Parser reads one direction of one connection. Its zero value is not
// usable: make one with NewParser. It is not safe for concurrent use.
type Parser struct {
	cfg Config

	hdr  [14]byte
	hdrN int // header bytes collected; -1 while in a payload

	op     byte
	fin    bool
	masked bool
	mask   [4]byte
	left   uint64 // payload bytes still to come in this frame
	pos    int    // mask position

	msgOp   byte   // the open data message's opcode, 0 if none
	deflate bool   // the open data message is compressed
	msg     []byte // the open message, when it spans frames or Feeds
	utf     UTF8
	ctl     []byte // a control frame's payload split over Feeds; nil otherwise
	closed  bool
	failure *Error
}

// NewParser returns a parser for cfg.
func NewParser(cfg Config) *Parser { return &Parser{cfg: cfg} }

// Idle reports whether p is between messages: no partial frame, no
// message open, and nothing seen that ends the stream. An idle parser
// holds nothing but its Config: a connection may let it go (to a pool, say)
// and Reset another when bytes come.
func (p *Parser) Idle() bool {
	return p.hdrN == 0 && p.msgOp == 0 && p.ctl == nil && !p.closed && p.failure == nil
}

// Reset makes p as NewParser(cfg) would, keeping its message buffer.
func (p *Parser) Reset(cfg Config) { *p = Parser{cfg: cfg, msg: p.msg[:0]} }

// maxIdleMsg is the most message buffer a parser keeps between messages:
// a larger one is dropped once its message has been emitted, so that an
// idle connection holds no big buffer.
const maxIdleMsg = 512

// maxReserve bounds the room the parser makes for a frame's payload
// before it has arrived.
const maxReserve = 16 << 10

// Feed parses b and calls emit for every event it completes, in order.
// It returns the first violation as an *Error (and every later call
// returns it too), ErrClosed for bytes after a close frame, or what emit
// returned.
//
// Feed may modify b: a data message that b holds whole, in one frame, and
// a control frame's payload that b holds whole, are unmasked in place and
// emitted as slices of b, without a copy. The
// events' Data is valid until the next call to Feed, and only while the
// caller does not reuse b.
func (p *Parser) Feed(b []byte, emit func(Event) error) error {
	if p.failure != nil {
		return p.failure
	}
	for len(b) > 0 {
		if p.closed {
			return ErrClosed
		}
		if p.hdrN >= 0 {
			n, err := p.header(b)
			b = b[n:]
			if err != nil {
				return p.fail(err)
			}
			if p.hdrN >= 0 { // header incomplete: b is used up
				continue
			}
			if p.left > 0 {
				continue
			}
		} else if p.op >= 0x8 && len(p.ctl) == 0 && p.left <= uint64(len(b)) {
			// A control frame's payload, all in b: unmask it in place and
			// emit it from there (an idle connection keeps no buffer for
			// control frames).
			n := int(p.left)
			data := b[:n]
			b = b[n:]
			p.left, p.hdrN = 0, 0
			p.unmask(data)
			if err := p.endControl(data, emit); err != nil {
				return p.failed(err)
			}
			continue
		} else if p.left <= uint64(len(b)) && p.fin && p.op != OpContinuation && p.op < 0x8 && len(p.msg) == 0 {
			// A whole unfragmented message, all in b: unmask it in place
			// and emit it from there.
			n := int(p.left)
			data := b[:n]
			b = b[n:]
			p.left, p.hdrN = 0, 0
			p.unmask(data)
			if err := p.emitMessage(data, true, emit); err != nil {
				return p.failed(err)
			}
			continue
		} else {
			n := int(min(p.left, uint64(len(b))))
			if err := p.payload(b[:n]); err != nil {
				return p.fail(err)
			}
			b = b[n:]
			p.left -= uint64(n)
			if p.left > 0 {
				continue
			}
		}
		// The frame is complete.
		p.hdrN = 0
		if err := p.endFrame(emit); err != nil {
			return p.failed(err)
		}
	}
	return nil
}

// failed records err if it is a violation, and returns it.
func (p *Parser) failed(err error) error {
	var fe *Error
	if errors.As(err, &fe) {
		return p.fail(fe)
	}
	return err
}

func (p *Parser) fail(err *Error) error {
	p.failure = err
	return err
}

// header collects header bytes from b and returns how many it took.
func (p *Parser) header(b []byte) (int, *Error) {
	used := 0
	for used < len(b) {
		p.hdr[p.hdrN] = b[used]
		p.hdrN++
		used++
		if p.hdrN < p.headerLen() {
			continue
		}
		if err := p.startFrame(); err != nil {
			return used, err
		}
		p.hdrN = -1
		return used, nil
	}
	return used, nil
}

func (p *Parser) headerLen() int {
	if p.hdrN < 2 {
		return 2
	}
	n := 2
	switch p.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if p.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// startFrame checks a complete header.
func (p *Parser) startFrame() *Error {
	b0, b1 := p.hdr[0], p.hdr[1]
	p.fin, p.op, p.masked = b0&0x80 != 0, b0&0x0f, b1&0x80 != 0
	i := 2
	switch b1 & 0x7f {
	case 126:
		p.left = uint64(binary.BigEndian.Uint16(p.hdr[2:4]))
		i = 4
	case 127:
		p.left = binary.BigEndian.Uint64(p.hdr[2:10])
		i = 10
		if p.left>>63 != 0 {
			return &Error{CodeProtocolError, "64-bit length with the most significant bit set"}
		}
	default:
		p.left = uint64(b1 & 0x7f)
	}
	if p.masked {
		copy(p.mask[:], p.hdr[i:i+4])
	}
	p.pos = 0
	rsv1 := b0&0x40 != 0
	switch {
	case p.left > uint64(p.cfg.MaxMessage):
		return &Error{CodeMessageTooBig, "frame larger than the message limit"}
	case b0&0x30 != 0, rsv1 && !p.cfg.Deflate:
		return &Error{CodeProtocolError, "reserved bits set"}
	case rsv1 && (p.op != OpText && p.op != OpBinary):
		// RFC 7692 section 6: RSV1 marks the first frame of a message.
		return &Error{CodeProtocolError, "RSV1 set outside the first frame of a data message"}
	case p.masked != p.cfg.Masked:
		if p.cfg.Masked {
			return &Error{CodeProtocolError, "unmasked frame from a client"}
		}
		return &Error{CodeProtocolError, "masked frame from a server"}
	}
	switch p.op {
	case OpClose, OpPing, OpPong:
		if !p.fin {
			return &Error{CodeProtocolError, "fragmented control frame"}
		}
		if p.hdr[1]&0x7f > 125 { // over 125, or not encoded in the shortest form
			return &Error{CodeProtocolError, "control frame over 125 bytes"}
		}
		p.ctl = nil
	case OpContinuation:
		if p.msgOp == 0 {
			return &Error{CodeProtocolError, "continuation with nothing to continue"}
		}
		if uint64(len(p.msg))+p.left > uint64(p.cfg.MaxMessage) {
			return &Error{CodeMessageTooBig, "message larger than the limit"}
		}
	case OpText, OpBinary:
		if p.msgOp != 0 {
			return &Error{CodeProtocolError, "new message inside a fragmented one"}
		}
		p.msgOp, p.deflate, p.msg, p.utf = p.op, rsv1, p.msg[:0], UTF8{}
	default:
		return &Error{CodeProtocolError, fmt.Sprintf("reserved opcode %#x", p.op)}
	}
	return nil
}

// payload takes the next bytes of the current frame's payload.
func (p *Parser) payload(b []byte) *Error {
	if p.op >= 0x8 {
		if p.ctl == nil {
			p.ctl = make([]byte, 0, 125)
		}
		start := len(p.ctl)
		p.ctl = append(p.ctl, b...)
		p.unmask(p.ctl[start:])
		return nil
	}
	start := len(p.msg)
	if cap(p.msg)-start < len(b) {
		// Room for the rest of the frame, up to a bound: a peer that
		// announces a long frame must send it to make the buffer grow.
		p.msg = slices.Grow(p.msg, int(min(p.left, maxReserve)))
	}
	p.msg = append(p.msg, b...)
	p.unmask(p.msg[start:])
	if p.msgOp == OpText && !p.deflate && !p.utf.Feed(p.msg[start:]) {
		return &Error{CodeInvalidPayload, "invalid UTF-8 in a text message"}
	}
	return nil
}

func (p *Parser) unmask(b []byte) {
	if !p.masked {
		return
	}
	unmaskAt(b, p.mask, p.pos)
	p.pos = (p.pos + len(b)) & 3
}

// unmaskAt XORs b with key, starting at key byte pos, eight bytes at a
// time.
func unmaskAt(b []byte, key [4]byte, pos int) {
	var k [8]byte
	for i := range k {
		k[i] = key[(pos+i)&3]
	}
	k64 := binary.LittleEndian.Uint64(k[:])
	i := 0
	for ; i+32 <= len(b); i += 32 {
		x := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(x[0:], binary.LittleEndian.Uint64(x[0:])^k64)
		binary.LittleEndian.PutUint64(x[8:], binary.LittleEndian.Uint64(x[8:])^k64)
		binary.LittleEndian.PutUint64(x[16:], binary.LittleEndian.Uint64(x[16:])^k64)
		binary.LittleEndian.PutUint64(x[24:], binary.LittleEndian.Uint64(x[24:])^k64)
	}
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= k[i&7]
	}
}

// endControl emits a complete control frame with payload data.
func (p *Parser) endControl(data []byte, emit func(Event) error) error {
	switch p.op {
	case OpPing:
		return emit(Event{Kind: Ping, Data: data})
	case OpPong:
		return emit(Event{Kind: Pong, Data: data})
	}
	code, reason, err := closePayload(data)
	if err != nil {
		return err
	}
	p.closed = true
	return emit(Event{Kind: Close, Code: code, Reason: reason})
}

// endFrame emits what a complete frame completes.
func (p *Parser) endFrame(emit func(Event) error) error {
	if p.op >= 0x8 {
		data := p.ctl
		p.ctl = nil
		return p.endControl(data, emit)
	}
	if !p.fin {
		return nil
	}
	if p.msgOp == OpText && !p.deflate && !p.utf.Complete() {
		return &Error{CodeInvalidPayload, "text message ends inside a UTF-8 sequence"}
	}
	return p.emitMessage(p.msg, false, emit)
}

// emitMessage emits the complete data message data and closes it; whole
// is set when data came in one piece, its UTF-8 not checked yet.
func (p *Parser) emitMessage(data []byte, whole bool, emit func(Event) error) error {
	ev := Event{Kind: Binary, Data: data, Compressed: p.deflate}
	if p.msgOp == OpText {
		ev.Kind = Text
		if whole && !p.deflate && !utf8.Valid(data) {
			return &Error{CodeInvalidPayload, "invalid UTF-8 in a text message"}
		}
	}
	p.msgOp, p.deflate = 0, false
	if cap(p.msg) > maxIdleMsg {
		p.msg = nil // ev.Data keeps it alive as long as the caller needs it
	}
	return emit(ev)
}

// closePayload checks a close frame's payload (RFC 6455, section 5.5.1
// and 7.4).
func closePayload(b []byte) (int, string, *Error) {
	switch {
	case len(b) == 0:
		return codeNoStatus, "", nil
	case len(b) == 1:
		return 0, "", &Error{CodeProtocolError, "close frame with a 1-byte payload"}
	}
	code := int(binary.BigEndian.Uint16(b))
	if !utf8.Valid(b[2:]) { // first, as the engine the library trusts does
		return 0, "", &Error{CodeInvalidPayload, "close reason is not UTF-8"}
	}
	if !sendable(code) {
		return 0, "", &Error{CodeProtocolError, fmt.Sprintf("close code %d may not be sent", code)}
	}
	return code, string(b[2:]), nil
}

// sendable reports whether code may appear in a close frame.
func sendable(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code != 1004 && code != 1005 && code != 1006
}
