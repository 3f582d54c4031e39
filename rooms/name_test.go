package rooms_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wschan/wschan/rooms"
)

func TestValidateNameAccepts(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "lobby", "Room_1", "chat-fr", "0", strings.Repeat("x", rooms.MaxNameLength)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := rooms.ValidateName(name); err != nil {
				t.Errorf("ValidateName(%q) = %v", name, err)
			}
		})
	}
}

func TestValidateNameRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, says string
	}{
		{"empty", "", "empty"},
		{"too long", strings.Repeat("x", rooms.MaxNameLength+1), "65 bytes long, at most 64"},
		{"NATS token separator", "a.b", `'.' at byte 1`},
		{"NATS wildcard", "*", `'*' at byte 0`},
		{"NATS full wildcard", ">", `'>' at byte 0`},
		{"NATS wildcard after a token", "chat.>", `'.' at byte 4`},
		{"space", "a b", `' ' at byte 1`},
		{"slash", "a/b", `'/' at byte 1`},
		{"percent", "a%2Eb", `'%' at byte 1`},
		{"control byte", "a\x00", "byte 0x00 at byte 1"},
		{"non-ASCII", "café", "byte 0xc3 at byte 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := rooms.ValidateName(tt.in)
			if !errors.Is(err, rooms.ErrInvalidName) || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("ValidateName(%q) = %v, want ErrInvalidName saying %q", tt.in, err, tt.says)
			}
		})
	}
}

// FuzzValidateName checks that an accepted name never holds a byte a broker
// or URL could read as syntax.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"lobby", "a.b", "*", ">", "", "a b", "café"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if rooms.ValidateName(s) != nil {
			return
		}
		if s == "" || len(s) > rooms.MaxNameLength || strings.ContainsAny(s, ".*> \t\r\n/\\%?#") {
			t.Fatalf("accepted %q", s)
		}
	})
}
