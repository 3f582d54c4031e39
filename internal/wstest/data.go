package wstest

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/wschan/wschan"
)

// RandomBytes returns n reproducible random bytes for seed.
func RandomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// RandomText returns exactly n bytes of reproducible random UTF-8 text that
// mixes 1- to 4-byte characters.
func RandomText(n int, seed byte) []byte {
	alphabet := []rune("abcdefghij KLMNOP 0123456789 .,;!? éßø ΩЖ 世界 🙂\n")
	r := rand.New(rand.NewChaCha8([32]byte{seed}))
	b := make([]byte, 0, n)
	for {
		c := alphabet[r.IntN(len(alphabet))]
		if len(b)+utf8.RuneLen(c) > n {
			break
		}
		b = utf8.AppendRune(b, c)
	}
	for len(b) < n {
		b = append(b, 'x')
	}
	return b
}

// Tile repeats block to exactly n bytes.
func Tile(block []byte, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += copy(b[i:], block) {
	}
	return b
}

// CompareMessage reports, without printing megabytes, a message that
// differs from the one expected.
func CompareMessage(t testing.TB, what string, wantType wschan.MessageType, want []byte, gotType wschan.MessageType, got []byte) {
	t.Helper()
	if gotType == wantType && bytes.Equal(got, want) {
		return
	}
	diff := 0
	for diff < min(len(got), len(want)) && got[diff] == want[diff] {
		diff++
	}
	t.Errorf("%s: got %v message of %d bytes, want %v message of %d bytes (first difference at byte %d)",
		what, gotType, len(got), wantType, len(want), diff)
}
