package frame

import "unicode/utf8"

// UTF8 validates UTF-8 incrementally: a sequence may be split between
// calls to Feed; an invalid byte is reported at once. The zero value is
// ready for a new text.
type UTF8 struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

// Feed takes the next bytes of the text and reports whether they are
// valid so far.
func (u *UTF8) Feed(b []byte) bool {
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
func (u *UTF8) step(c byte) bool {
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

// Complete reports whether the text fed so far ends on a whole sequence.
func (u *UTF8) Complete() bool { return u.need == 0 }
