// Package frame parses RFC 6455 frames incrementally: from whatever bytes
// a socket gave, in any split, with the state of a partial frame kept
// between calls. It is the reading half of an event-driven engine, where
// no goroutine may block waiting for the rest of a frame; it has no I/O
// of its own and imports nothing of this module.
//
// It is held to the engine the library trusts by differential fuzzing
// (the same bytes, split at random points, give the same messages and the
// same close code): see FuzzParserMatchesEngine in the root package.
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	MaxMessage int
}

// Event is what the parser found: a complete data message, a control
// frame, or (Kind Close) the peer's close frame.
type Event struct {
	Kind   Kind
	Data   []byte // the message or control payload; valid until the next call to Feed
	Code   int    // Close: the peer's status code, 1005 when it sent none
	Reason string // Close: the peer's reason
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

	msgOp   byte // the open data message's opcode, 0 if none
	msg     []byte
	utf     UTF8
	ctl     [125]byte
	ctlN    int
	closed  bool
	failure *Error
}

// NewParser returns a parser for cfg.
func NewParser(cfg Config) *Parser { return &Parser{cfg: cfg} }

// Feed parses b and calls emit for every event it completes, in order.
// It returns the first violation as an *Error (and every later call
// returns it too), ErrClosed for bytes after a close frame, or what emit
// returned. The events' Data is valid until the next call to Feed.
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
			var fe *Error
			if errors.As(err, &fe) {
				return p.fail(fe)
			}
			return err
		}
	}
	return nil
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
	switch {
	case p.left > uint64(p.cfg.MaxMessage):
		return &Error{CodeMessageTooBig, "frame larger than the message limit"}
	case b0&0x70 != 0:
		return &Error{CodeProtocolError, "reserved bits set"}
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
		p.ctlN = 0
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
		p.msgOp, p.msg, p.utf = p.op, p.msg[:0], UTF8{}
	default:
		return &Error{CodeProtocolError, fmt.Sprintf("reserved opcode %#x", p.op)}
	}
	return nil
}

// payload takes the next bytes of the current frame's payload.
func (p *Parser) payload(b []byte) *Error {
	if p.op >= 0x8 {
		n := copy(p.ctl[p.ctlN:], b)
		p.unmask(p.ctl[p.ctlN : p.ctlN+n])
		p.ctlN += n
		return nil
	}
	start := len(p.msg)
	p.msg = append(p.msg, b...)
	p.unmask(p.msg[start:])
	if p.msgOp == OpText && !p.utf.Feed(p.msg[start:]) {
		return &Error{CodeInvalidPayload, "invalid UTF-8 in a text message"}
	}
	return nil
}

func (p *Parser) unmask(b []byte) {
	if !p.masked {
		return
	}
	for i := range b {
		b[i] ^= p.mask[(p.pos+i)&3]
	}
	p.pos = (p.pos + len(b)) & 3
}

// endFrame emits what a complete frame completes.
func (p *Parser) endFrame(emit func(Event) error) error {
	switch p.op {
	case OpPing:
		return emit(Event{Kind: Ping, Data: p.ctl[:p.ctlN]})
	case OpPong:
		return emit(Event{Kind: Pong, Data: p.ctl[:p.ctlN]})
	case OpClose:
		code, reason, err := closePayload(p.ctl[:p.ctlN])
		if err != nil {
			return err
		}
		p.closed = true
		return emit(Event{Kind: Close, Code: code, Reason: reason})
	}
	if !p.fin {
		return nil
	}
	kind := Binary
	if p.msgOp == OpText {
		if !p.utf.Complete() {
			return &Error{CodeInvalidPayload, "text message ends inside a UTF-8 sequence"}
		}
		kind = Text
	}
	p.msgOp = 0
	return emit(Event{Kind: kind, Data: p.msg})
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
