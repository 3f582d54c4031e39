package wschan

import (
	"encoding/binary"
	"unicode/utf8"
)

// textWatch follows the frames of the incoming byte stream, as the engine
// will parse them, to find invalid UTF-8 in a text message as soon as its
// bytes arrive rather than when the message is complete (the engine's
// check). RFC 6455 section 8.1 asks an endpoint to fail the connection "as
// soon as" it sees invalid UTF-8; Autobahn cases 6.4.x send a bad fragment
// or chop and then wait to see who notices first.
//
// It only reads: framing, unmasking for delivery, and every protocol error
// stay with the engine. It only validates text that spans more than one
// read: a message that arrives whole within one read is checked by the
// engine before anyone sees it, so checking it here would be the same work
// twice. Compressed messages are checked by the engine after inflating.
type textWatch struct {
	hdr     [14]byte
	hdrN    int    // header bytes collected
	left    uint64 // payload bytes left in the current frame
	mask    [4]byte
	masked  bool
	maskPos int

	frameText bool // the current frame's payload belongs to an uncompressed text message
	inText    bool // a text message is open (between its first frame and FIN)
	textFin   bool // the current frame is the text message's last
	checking  bool // the open text message spans reads: validate as bytes arrive
	utf       utf8Run

	segs []seg // this read's payload pieces of the open text message, not yet validated
}

type seg struct {
	off, n  int
	maskPos int
	mask    [4]byte
	masked  bool
}

// feed observes p, the bytes of one read, and reports false when an open
// text message is already invalid UTF-8.
func (w *textWatch) feed(p []byte) bool {
	w.segs = w.segs[:0]
	for i := 0; i < len(p); {
		if !w.inPayload() { // collecting a header
			w.hdr[w.hdrN] = p[i]
			w.hdrN++
			i++
			if w.hdrN == w.headerLen() {
				w.startFrame()
				if w.left == 0 && !w.endFrame() {
					return false
				}
			}
			continue
		}
		n := int(min(w.left, uint64(len(p)-i)))
		if w.frameText {
			s := seg{off: i, n: n, maskPos: w.maskPos, mask: w.mask, masked: w.masked}
			if w.checking {
				if !w.check(p, s) {
					return false
				}
			} else {
				w.segs = append(w.segs, s)
			}
		}
		w.maskPos = (w.maskPos + n) & 3
		w.left -= uint64(n)
		i += n
		if w.left == 0 && !w.endFrame() {
			return false
		}
	}
	if w.inText && !w.checking {
		// The message goes on in the next read: check what came so far,
		// and from now on every byte as it arrives.
		w.checking = true
		for _, s := range w.segs {
			if !w.check(p, s) {
				return false
			}
		}
	}
	return true
}

// inPayload reports whether a header has been read and its payload is
// being consumed (hdrN is -1 then, and back to 0 at the end of the frame).
func (w *textWatch) inPayload() bool { return w.hdrN == -1 }

// headerLen is the full length of the header being collected, as far as
// its first bytes tell.
func (w *textWatch) headerLen() int {
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

func (w *textWatch) startFrame() {
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
	w.maskPos = 0
	w.hdrN = -1
	w.frameText = false
	switch {
	case op == 0x1: // a new text message
		w.inText, w.checking, w.utf = !rsv1, false, utf8Run{}
		w.segs = w.segs[:0]
		w.frameText, w.textFin = w.inText, fin
	case op == 0x2: // a binary message ends any text tracking
		w.inText = false
	case op == 0x0 && w.inText:
		w.frameText, w.textFin = true, fin
	}
}

// endFrame finishes the current frame's bookkeeping.
func (w *textWatch) endFrame() bool {
	w.hdrN = 0
	if w.frameText && w.textFin {
		ok := !w.checking || w.utf.need == 0
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
func (w *textWatch) check(p []byte, s seg) bool {
	b := p[s.off : s.off+s.n]
	if !s.masked {
		return w.utf.feed(b)
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
		if w.utf.need == 0 {
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
		if !w.utf.feed(buf[:n]) {
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

// utf8Run validates UTF-8 incrementally: a sequence may be split between
// calls; an invalid byte is reported at once.
type utf8Run struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

func (u *utf8Run) feed(b []byte) bool {
	for u.need > 0 && len(b) > 0 { // finish a sequence split at the last call
		if !u.step(b[0]) {
			return false
		}
		b = b[1:]
	}
	if len(b) == 0 {
		return true
	}
	cut := completeLen(b)
	if !utf8.Valid(b[:cut]) {
		return false
	}
	for _, c := range b[cut:] {
		if !u.step(c) {
			return false
		}
	}
	return true
}

// step takes one byte of a sequence.
func (u *utf8Run) step(c byte) bool {
	if u.need > 0 {
		if c < u.lo || c > u.hi {
			return false
		}
		u.need--
		u.lo, u.hi = 0x80, 0xbf
		return true
	}
	switch {
	case c < 0x80:
	case c >= 0xc2 && c <= 0xdf:
		u.need, u.lo, u.hi = 1, 0x80, 0xbf
	case c == 0xe0:
		u.need, u.lo, u.hi = 2, 0xa0, 0xbf
	case c >= 0xe1 && c <= 0xec, c == 0xee, c == 0xef:
		u.need, u.lo, u.hi = 2, 0x80, 0xbf
	case c == 0xed:
		u.need, u.lo, u.hi = 2, 0x80, 0x9f
	case c == 0xf0:
		u.need, u.lo, u.hi = 3, 0x90, 0xbf
	case c >= 0xf1 && c <= 0xf3:
		u.need, u.lo, u.hi = 3, 0x80, 0xbf
	case c == 0xf4:
		u.need, u.lo, u.hi = 3, 0x80, 0x8f
	default:
		return false
	}
	return true
}

// completeLen returns how much of b, from the start, ends on a complete
// sequence: all of it, or up to a last sequence that b cuts short.
func completeLen(b []byte) int {
	for k := len(b) - 1; k >= 0 && k >= len(b)-utf8.UTFMax; k-- {
		c := b[k]
		if c < 0x80 {
			return len(b)
		}
		if !utf8.RuneStart(c) {
			continue
		}
		var l int
		switch {
		case c&0xe0 == 0xc0:
			l = 2
		case c&0xf0 == 0xe0:
			l = 3
		case c&0xf8 == 0xf0:
			l = 4
		default:
			return len(b) // not a lead byte: invalid either way
		}
		if k+l <= len(b) {
			return len(b)
		}
		return k
	}
	return len(b)
}
