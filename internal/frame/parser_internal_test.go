package frame

import (
	"bytes"
	"testing"
)

// frameOf encodes one frame, masked with a fixed key.
func frameOf(fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(p); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	default:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	}
	key := [4]byte{9, 8, 7, 6}
	out = append(out, key[:]...)
	for i, c := range p {
		out = append(out, c^key[i&3])
	}
	return out
}

func TestParserFastPathEmitsFromInput(t *testing.T) {
	t.Parallel()
	msg := bytes.Repeat([]byte("fast"), 100)
	b := frameOf(true, OpText, msg)
	p := NewParser(Config{Masked: true, MaxMessage: 1 << 10})
	var got []byte
	if err := p.Feed(b, func(ev Event) error { got = ev.Data; return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %q", got)
	}
	if &got[0] != &b[len(b)-len(msg)] {
		t.Error("a whole frame was copied: Data does not point into the input")
	}
	if p.msg != nil {
		t.Errorf("the parser holds a message buffer of %d bytes", cap(p.msg))
	}
}

func TestParserSlowPathKeepsNoBigBuffer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		stream []byte
		chop   int
	}{
		{"fragmented", append(frameOf(false, OpBinary, make([]byte, 2000)), frameOf(true, OpContinuation, make([]byte, 2000))...), 0},
		{"split across reads", frameOf(true, OpBinary, make([]byte, 4000)), 1000},
		{"small, split", frameOf(true, OpBinary, make([]byte, 100)), 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewParser(Config{Masked: true, MaxMessage: 1 << 20})
			n := 0
			emit := func(ev Event) error { n = len(ev.Data); return nil }
			for s := tt.stream; len(s) > 0; {
				k := len(s)
				if tt.chop > 0 {
					k = min(k, tt.chop)
				}
				if err := p.Feed(s[:k], emit); err != nil {
					t.Fatal(err)
				}
				s = s[k:]
			}
			if n == 0 {
				t.Fatal("no message")
			}
			if cap(p.msg) > maxIdleMsg {
				t.Errorf("after a %d-byte message the parser keeps %d bytes", n, cap(p.msg))
			}
		})
	}
}

// TestParserWholeFramesDoNotAllocate pins the fast path's steady state:
// no allocation per message.
func TestParserWholeFramesDoNotAllocate(t *testing.T) {
	b := frameOf(true, OpBinary, make([]byte, 4096))
	p := NewParser(Config{Masked: true, MaxMessage: 1 << 20})
	emit := func(Event) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = p.Feed(b, emit) }); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}
