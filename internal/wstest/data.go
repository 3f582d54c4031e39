package wstest

import (
	"bytes"
	"context"
	"fmt"
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

// ReadFanOut reads senders×perSender messages from ch, each starting with
// "sender:seq:", and checks that every sender's messages come once each, in
// the order sent, and equal want(sender, seq). who names the reader in
// failures. It reports with t.Errorf and returns at the first failure, so
// it may run on a goroutine of its own.
func ReadFanOut(t testing.TB, ctx context.Context, ch *wschan.Channel, who string, senders, perSender int,
	want func(sender, seq int) (wschan.MessageType, []byte)) {
	next := make([]int, senders) // the sequence expected next from each sender
	for range senders * perSender {
		m, err := ch.Read(ctx)
		if err != nil {
			t.Errorf("%s: %v (next expected %v)", who, err, next)
			return
		}
		var s, k int
		if _, err := fmt.Sscanf(string(m.Data), "%d:%d:", &s, &k); err != nil || s < 0 || s >= senders {
			t.Errorf("%s: unexpected message %.20q", who, m.Data)
			return
		}
		if k != next[s] {
			t.Errorf("%s: from sender %d got message %d, want %d (per-sender order)", who, s, k, next[s])
			return
		}
		typ, data := want(s, k)
		CompareMessage(t, fmt.Sprintf("%s, sender %d, message %d", who, s, k), typ, data, m.Type, m.Data)
		next[s]++
	}
}
