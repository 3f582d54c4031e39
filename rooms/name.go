package rooms

import (
	"fmt"
	"strconv"
)

// MaxNameLength is the longest room name, in bytes.
const MaxNameLength = 64

// ValidateName reports whether name can name a room: 1 to MaxNameLength
// ASCII letters, digits, hyphens or underscores. Anything else (dots,
// wildcards, spaces, slashes, non-ASCII) could mean something to a broker
// or a URL, so it is refused. The error matches ErrInvalidName and says
// what is wrong in words fit for an HTTP 400 body.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrInvalidName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: the name is %d bytes long, at most %d are allowed", ErrInvalidName, len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("%w: %s at byte %d is not allowed (use letters, digits, '-' and '_')", ErrInvalidName, quoteByte(name[i]), i)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
