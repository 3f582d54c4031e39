package wschan

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/wschan/wschan/internal/frame"
)

// frameWatch follows the frames of the incoming byte stream, as the engine
// will parse them, so that the channel knows what is coming before the
// engine acts on it:
//
//   - a frame the engine would refuse (reserved bits, opcodes, masking,
//     continuation order, control frame rules, a length over the limit) is
//     found in its header, so the bytes before it can be handed to the
//     engine first: the messages they complete reach the application, which
//     can still answer them, before the connection is failed, at once and
//     with the frame's code (1002, 1009), without waiting for a payload the
//     engine would read first (see gwsTransport.Read, wsconn.awaitDrain);
//   - invalid UTF-8 in a text message is found as soon as its bytes arrive
//     rather than when the message is complete (the engine's check). RFC
//     6455 section 8.1 asks an endpoint to fail the connection "as soon as"
//     it sees invalid UTF-8; Autobahn cases 6.4.x send a bad fragment or
//     chop and then wait to see who notices first.
//
// Framing and unmasking for delivery stay with the engine. It only validates text that spans more than one read: a
// message that arrives whole within one read is checked by the engine
// before anyone sees it, so checking it here would be the same work twice.
// Compressed messages are checked by the engine after inflating.
type frameWatch struct {
	rules frameRules

	hdr     [14]byte
	hdrN    int    // header bytes collected
	left    uint64 // payload bytes left in the current frame
	mask    [4]byte
	masked  bool
	maskPos int

	failCode   StatusCode // with frameBad: the code to fail the connection with
	failReason string

	frameAt int // where the current frame began in this read; 0 if in an earlier one
	textAt  int // where the open text message began in this read; 0 if in an earlier one

	fragOpen bool   // a fragmented data message is open (the engine expects continuations)
	fragLen  uint64 // its wire length so far

	frameText bool // the current frame's payload belongs to an uncompressed text message
	inText    bool // a text message is open (between its first frame and FIN)
	textFin   bool // the current frame is the text message's last
	checking  bool // the open text message spans reads: validate as bytes arrive
	utf       frame.UTF8

	segs []seg // this read's payload pieces of the open text message, not yet validated

	done    bool      // a close frame came: nothing after it is followed
	closing bool      // the current frame is a close frame: its payload is kept
	ctl     [125]byte // the close frame's payload, unmasked
	ctlN    int
}

// frameRules are what the engine enforces on incoming frame headers for
// one connection.
type frameRules struct {
	masked  bool   // frames must be masked (this side is the server)
	deflate bool   // permessage-deflate was negotiated: reserved bits are the extension's
	limit   uint64 // the engine's limit on a frame and on a fragmented message's wire length
}

// verdict is what frameWatch.feed found in a read.
type verdict uint8

const (
	frameOK  verdict = iota // nothing wrong so far
	frameBad                // a frame the engine will refuse starts at the cut
	textBad                 // invalid UTF-8 in a text message that starts (or goes on) at the cut
)

type seg struct {
	off, n  int
	maskPos int
	mask    [4]byte
	masked  bool
}

// feed observes p, the bytes of one read. When something in p will fail
// the connection it returns the verdict and cut, the length of the prefix
// of p that the engine can safely have: every frame in it is complete or
// harmless, and the trouble starts at or after p[cut]. After a verdict
// other than frameOK, the watcher must not be fed again.
func (w *frameWatch) feed(p []byte) (cut int, v verdict) {
	if w.done {
		return len(p), frameOK
	}
	w.segs = w.segs[:0]
	w.frameAt, w.textAt = 0, 0
	for i := 0; i < len(p); {
		if !w.inPayload() { // collecting a header
			if w.hdrN == 0 {
				w.frameAt = i
			}
			w.hdr[w.hdrN] = p[i]
			w.hdrN++
			i++
			if w.hdrN == w.headerLen() {
				if !w.startFrame() {
					if !w.checkDeferred(p) {
						// Invalid text came first: that is what fails.
						return w.textAt, textBad
					}
					return w.frameAt, frameBad
				}
				if w.left == 0 && !w.endFrame() {
					return w.frameAt, textBad
				}
				if w.left == 0 && w.closing { // an empty close frame: the end
					if !w.checkDeferred(p) {
						return w.textAt, textBad
					}
					w.done = true
					return len(p), frameOK
				}
			}
			continue
		}
		n := int(min(w.left, uint64(len(p)-i)))
		if w.frameText {
			s := seg{off: i, n: n, maskPos: w.maskPos, mask: w.mask, masked: w.masked}
			if w.checking {
				if !w.check(p, s) {
					return w.frameAt, textBad
				}
			} else {
				w.segs = append(w.segs, s)
			}
		}
		if w.closing {
			w.keep(p[i : i+n])
		}
		w.maskPos = (w.maskPos + n) & 3
		w.left -= uint64(n)
		i += n
		if w.left == 0 && !w.endFrame() {
			if w.closing && w.checkDeferred(p) {
				return w.frameAt, textBad
			}
			return w.textAt, textBad // invalid text came first
		}
		if w.left == 0 && w.closing {
			// The peer's close frame ends what the engine reads: nothing
			// after it is followed.
			if !w.checkDeferred(p) {
				return w.textAt, textBad
			}
			w.done = true
			return len(p), frameOK
		}
	}
	if w.inText && !w.checking {
		// The message goes on in the next read: check what came so far,
		// and from now on every byte as it arrives.
		if !w.checkDeferred(p) {
			return w.textAt, textBad
		}
		w.checking = true
	}
	return len(p), frameOK
}

// checkDeferred validates the pieces of the open text message that this
// read brought and that were not checked yet.
func (w *frameWatch) checkDeferred(p []byte) bool {
	if !w.inText || w.checking {
		return true
	}
	for _, s := range w.segs {
		if !w.check(p, s) {
			return false
		}
	}
	w.segs = w.segs[:0]
	return true
}

// inPayload reports whether a header has been read and its payload is
// being consumed (hdrN is -1 then, and back to 0 at the end of the frame).
func (w *frameWatch) inPayload() bool { return w.hdrN == -1 }

// headerLen is the full length of the header being collected, as far as
// its first bytes tell.
func (w *frameWatch) headerLen() int {
	if w.hdrN < 2 {
		return 2
	}
	n := 2
	switch w.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if w.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// startFrame takes a complete header and reports whether the engine will
// accept it.
func (w *frameWatch) startFrame() bool {
	b0, b1 := w.hdr[0], w.hdr[1]
	fin, rsv1, op := b0&0x80 != 0, b0&0x40 != 0, b0&0x0f
	i := 2
	switch b1 & 0x7f {
	case 126:
		w.left = uint64(binary.BigEndian.Uint16(w.hdr[2:4]))
		i = 4
	case 127:
		w.left = binary.BigEndian.Uint64(w.hdr[2:10])
		i = 10
	default:
		w.left = uint64(b1 & 0x7f)
	}
	w.masked = b1&0x80 != 0
	if w.masked {
		copy(w.mask[:], w.hdr[i:i+4])
	}
	if !w.accepts(fin, b0&0x70 != 0, op) {
		return false
	}
	w.maskPos = 0
	w.hdrN = -1
	w.frameText = false
	w.closing, w.ctlN = op == 0x8, 0
	switch {
	case op == 0x1: // a new text message
		w.inText, w.checking, w.utf = !rsv1, false, frame.UTF8{}
		w.segs = w.segs[:0]
		w.textAt = w.frameAt
		w.frameText, w.textFin = w.inText, fin
	case op == 0x2: // a binary message ends any text tracking
		w.inText = false
	case op == 0x0 && w.inText:
		w.frameText, w.textFin = true, fin
	}
	return true
}

// accepts applies the engine's checks on a frame header, in its order, and
// keeps the fragmentation state the engine keeps. When it refuses, it sets
// failCode and failReason.
func (w *frameWatch) accepts(fin, rsv bool, op byte) bool {
	r := w.rules
	bad := func(code StatusCode, reason string) bool {
		w.failCode, w.failReason = code, reason
		return false
	}
	switch {
	case w.left>>63 != 0:
		return bad(StatusProtocolError, "frame length with the most significant bit set")
	case w.left > r.limit:
		return bad(StatusMessageTooBig, "message too big")
	case rsv && !r.deflate:
		return bad(StatusProtocolError, "reserved bits set")
	case w.masked != r.masked && r.masked:
		return bad(StatusProtocolError, "unmasked frame from a client")
	case w.masked != r.masked:
		return bad(StatusProtocolError, "masked frame from a server")
	case op >= 0x8 && op > 0xa, op > 0x2 && op < 0x8:
		return bad(StatusProtocolError, "reserved opcode")
	case op >= 0x8 && !fin:
		return bad(StatusProtocolError, "fragmented control frame")
	case op >= 0x8 && w.hdr[1]&0x7f > 125: // over 125, or not in the shortest form
		return bad(StatusProtocolError, "control frame over 125 bytes")
	case op >= 0x8:
		return true
	case op == 0x0: // continuation
		if !w.fragOpen {
			return bad(StatusProtocolError, "continuation with nothing to continue")
		}
		w.fragLen += w.left
		if w.fragLen > r.limit {
			return bad(StatusMessageTooBig, "message too big")
		}
		w.fragOpen = !fin
	default: // a new text or binary message
		if w.fragOpen {
			return bad(StatusProtocolError, "new message inside a fragmented one")
		}
		w.fragOpen, w.fragLen = !fin, w.left
	}
	return true
}

// keep copies a piece of a close frame's payload, unmasked.
func (w *frameWatch) keep(b []byte) {
	for j, c := range b {
		if w.masked {
			c ^= w.mask[(w.maskPos+j)&3]
		}
		w.ctl[w.ctlN] = c
		w.ctlN++
	}
}

// endFrame finishes the current frame's bookkeeping. It reports false when
// the frame ends a text message or is a close frame whose text is invalid
// UTF-8 (closing tells which).
func (w *frameWatch) endFrame() bool {
	w.hdrN = 0
	if w.closing {
		// The reason in a close frame must be UTF-8 too. The frame ends
		// the connection: checking it here costs nothing that matters.
		return w.ctlN <= 2 || utf8.Valid(w.ctl[2:w.ctlN])
	}
	if w.frameText && w.textFin {
		ok := !w.checking || w.utf.Complete()
		w.inText, w.checking = false, false
		w.segs = w.segs[:0] // complete within this read: the engine checks it
		w.frameText = false
		return ok
	}
	w.frameText = false
	return true
}

// check validates one payload piece, unmasking as it goes. Runs of ASCII
// are checked in place, a word at a time; the rest is unmasked into a small
// buffer on the stack and validated there.
func (w *frameWatch) check(p []byte, s seg) bool {
	b := p[s.off : s.off+s.n]
	if !s.masked {
		return w.utf.Feed(b)
	}
	var keys [4]uint64 // the mask as a word, for each starting phase
	for ph := range keys {
		var k [8]byte
		for i := range k {
			k[i] = s.mask[(ph+i)&3]
		}
		keys[ph] = binary.LittleEndian.Uint64(k[:])
	}
	var buf [512]byte
	pos := s.maskPos
	for len(b) > 0 {
		if w.utf.Complete() {
			i := 0
			for i+8 <= len(b) && (binary.LittleEndian.Uint64(b[i:])^keys[(pos+i)&3])&0x8080808080808080 == 0 {
				i += 8
			}
			pos = (pos + i) & 3
			b = b[i:]
			if len(b) == 0 {
				break
			}
		}
		n := copy(buf[:], b)
		unmask(buf[:n], s.mask, pos)
		if !w.utf.Feed(buf[:n]) {
			return false
		}
		pos = (pos + n) & 3
		b = b[n:]
	}
	return true
}

// unmask XORs b with key, starting at key byte pos, eight bytes at a time.
func unmask(b []byte, key [4]byte, pos int) {
	var k [8]byte
	for i := range k {
		k[i] = key[(pos+i)&3]
	}
	k64 := binary.LittleEndian.Uint64(k[:])
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[(pos+i)&3]
	}
}
