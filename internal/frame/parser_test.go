package frame_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wschan/wschan/internal/frame"
)

// enc encodes one frame, masked with a fixed key when masked is set.
func enc(fin bool, rsv, op byte, masked bool, p []byte) []byte {
	b0 := op&0x0f | (rsv&7)<<4
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(p); {
	case n <= 125:
		out = append(out, m|byte(n))
	case n <= 0xffff:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, p...)
	}
	key := [4]byte{1, 2, 3, 4}
	out = append(out, key[:]...)
	for i, c := range p {
		out = append(out, c^key[i&3])
	}
	return out
}

// run feeds stream in pieces of the given sizes (cycled; 0 means whole)
// and returns the events and the error, as text.
func run(cfg frame.Config, stream []byte, sizes ...int) string {
	stream = bytes.Clone(stream) // Feed unmasks in place
	p := frame.NewParser(cfg)
	var out []string
	emit := func(ev frame.Event) error {
		switch ev.Kind {
		case frame.Close:
			out = append(out, fmt.Sprintf("close %d %q", ev.Code, ev.Reason))
		case frame.Text, frame.Binary:
			z := ""
			if ev.Compressed {
				z = "z "
			}
			out = append(out, fmt.Sprintf("%d %s%q", ev.Kind, z, ev.Data))
		default:
			out = append(out, fmt.Sprintf("%d %q", ev.Kind, ev.Data))
		}
		return nil
	}
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 {
			n = min(n, sizes[i%len(sizes)])
		}
		if err := p.Feed(stream[:n], emit); err != nil {
			var fe *frame.Error
			if errors.As(err, &fe) {
				out = append(out, fmt.Sprintf("fail %d", fe.Code))
			} else {
				out = append(out, "err "+err.Error())
			}
			break
		}
		stream = stream[n:]
	}
	return strings.Join(out, "; ")
}

func TestParser(t *testing.T) {
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	M := func(fin bool, op byte, p []byte) []byte { return enc(fin, 0, op, true, p) }
	server := frame.Config{Masked: true, MaxMessage: 100}
	deflate := frame.Config{Masked: true, MaxMessage: 100, Deflate: true}
	Z := func(fin bool, rsv, op byte, p []byte) []byte { return enc(fin, rsv, op, true, p) }
	tests := []struct {
		name   string
		cfg    frame.Config
		stream []byte
		want   string
	}{
		{"text and binary", server, cat(M(true, 1, []byte("hi")), M(true, 2, []byte{0, 1})), `1 "hi"; 2 "\x00\x01"`},
		{"fragments with a ping between", server, cat(M(false, 1, []byte("fr")), M(true, 9, []byte("p")), M(true, 0, []byte("ag"))), `3 "p"; 1 "frag"`},
		{"empty message", server, M(true, 2, nil), `2 ""`},
		{"UTF-8 split across fragments", server, cat(M(false, 1, []byte{0xe2, 0x82}), M(true, 0, []byte{0xac})), `1 "€"`},
		{"close with code and reason", server, M(true, 8, []byte{0x03, 0xe8, 'b', 'y', 'e'}), `close 1000 "bye"`},
		{"close without status", server, M(true, 8, nil), `close 1005 ""`},
		{"client reads unmasked", frame.Config{MaxMessage: 100}, enc(true, 0, 1, false, []byte("ok")), `1 "ok"`},
		{"unmasked from a client", server, enc(true, 0, 1, false, []byte("x")), "fail 1002"},
		{"masked from a server", frame.Config{MaxMessage: 100}, M(true, 1, []byte("x")), "fail 1002"},
		{"reserved bits", server, enc(true, 4, 1, true, []byte("x")), "fail 1002"},
		{"reserved opcode", server, M(true, 3, nil), "fail 1002"},
		{"reserved control opcode", server, M(true, 0xb, nil), "fail 1002"},
		{"fragmented control", server, M(false, 9, nil), "fail 1002"},
		{"control over 125", frame.Config{Masked: true, MaxMessage: 1000}, M(true, 9, make([]byte, 126)), "fail 1002"},
		{"continuation without start", server, M(true, 0, []byte("x")), "fail 1002"},
		{"new message inside one", server, cat(M(false, 1, []byte("a")), M(true, 1, []byte("b"))), "fail 1002"},
		{"frame over the limit", server, M(true, 2, make([]byte, 101)), "fail 1009"},
		{"message over the limit", server, cat(M(false, 2, make([]byte, 60)), M(true, 0, make([]byte, 60))), "fail 1009"},
		{"top bit of the length", server, []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, "fail 1002"},
		{"invalid UTF-8 fails before the frame ends", server, M(false, 1, []byte{'a', 0xff}), "fail 1007"},
		{"text ends inside a sequence", server, M(true, 1, []byte{0xe2}), "fail 1007"},
		{"close reason not UTF-8", server, M(true, 8, []byte{0x03, 0xe8, 0xff}), "fail 1007"},
		{"close with 1 byte", server, M(true, 8, []byte{3}), "fail 1002"},
		{"close code 1005", server, M(true, 8, []byte{0x03, 0xed}), "fail 1002"},
		{"close code 999", server, M(true, 8, []byte{0x03, 0xe7}), "fail 1002"},
		{"close code 5000", server, M(true, 8, []byte{0x13, 0x88}), "fail 1002"},
		{"compressed text, not checked for UTF-8", deflate, Z(true, 4, 1, []byte{0xff, 0}), `1 z "\xff\x00"`},
		{"compressed binary", deflate, Z(true, 4, 2, []byte{1}), `2 z "\x01"`},
		{"compressed in fragments", deflate, cat(Z(false, 4, 1, []byte{0xc3}), Z(true, 0, 9, nil), Z(true, 0, 0, []byte{0xff})), `3 ""; 1 z "\xc3\xff"`},
		{"uncompressed after compressed", deflate, cat(Z(true, 4, 2, []byte{1}), Z(true, 0, 1, []byte("é"))), `2 z "\x01"; 1 "é"`},
		{"uncompressed text still checked", deflate, Z(true, 0, 1, []byte{0xff}), "fail 1007"},
		{"compressed over the limit on the wire", deflate, Z(true, 4, 2, make([]byte, 101)), "fail 1009"},
		{"compressed fragments over the limit", deflate, cat(Z(false, 4, 2, make([]byte, 60)), Z(true, 0, 0, make([]byte, 60))), "fail 1009"},
		{"RSV1 without deflate", server, Z(true, 4, 2, []byte{1}), "fail 1002"},
		{"RSV1 on a continuation", deflate, cat(Z(false, 4, 1, []byte{1}), Z(true, 4, 0, []byte{2})), "fail 1002"},
		{"RSV1 on a ping", deflate, Z(true, 4, 9, nil), "fail 1002"},
		{"RSV1 on a close", deflate, Z(true, 4, 8, nil), "fail 1002"},
		{"RSV2 with deflate", deflate, Z(true, 2, 2, []byte{1}), "fail 1002"},
		{"RSV3 with deflate", deflate, Z(true, 1, 1, []byte{1}), "fail 1002"},
		{"bytes after close", server, cat(M(true, 8, nil), M(true, 1, []byte("x"))), `close 1005 ""; err frame: bytes after the close frame`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sizes := range [][]int{{0}, {1}, {3, 1, 7}} {
				if got := run(tt.cfg, tt.stream, sizes...); got != tt.want {
					t.Errorf("fed in %v: got %s, want %s", sizes, got, tt.want)
				}
			}
		})
	}
}

// FuzzParserSplits checks that how the bytes are split makes no
// difference: the same events and the same verdict, whole or in pieces.
func FuzzParserSplits(f *testing.F) {
	f.Add(bytes.Join([][]byte{enc(false, 0, 1, true, []byte("héllo")), enc(true, 0, 9, true, nil), enc(true, 0, 0, true, []byte("!"))}, nil), uint8(3), uint8(5), true)
	f.Add(enc(true, 0, 8, false, []byte{0x03, 0xe8, 'x'}), uint8(1), uint8(2), false)
	f.Add(bytes.Join([][]byte{enc(false, 4, 1, true, []byte{0xff}), enc(true, 0, 0, true, []byte("x")), enc(true, 4, 2, true, []byte("y"))}, nil), uint8(2), uint8(9), true)
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint8, masked bool) {
		cfg := frame.Config{Masked: masked, MaxMessage: 1 << 10, Deflate: a&1 == 1}
		whole := run(cfg, stream, 0)
		if got := run(cfg, stream, int(a), int(b)); got != whole {
			t.Fatalf("in pieces of %d and %d: %s; whole: %s", a, b, got, whole)
		}
	})
}

// Idle is true between messages only; a Reset parser parses as a new one
// with its new Config.
func TestParserIdleAndReset(t *testing.T) {
	p := frame.NewParser(frame.Config{Masked: true, MaxMessage: 1 << 10})
	noop := func(frame.Event) error { return nil }
	feed := func(b []byte) {
		t.Helper()
		if err := p.Feed(b, noop); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Idle() {
		t.Fatal("new parser not idle")
	}
	whole := enc(true, 0, 0x2, true, []byte("hello"))
	feed(whole[:3])
	if p.Idle() {
		t.Fatal("idle inside a frame header")
	}
	feed(whole[3:7])
	if p.Idle() {
		t.Fatal("idle inside a payload")
	}
	feed(whole[7:])
	if !p.Idle() {
		t.Fatal("not idle after a whole message")
	}
	feed(enc(false, 0, 0x1, true, []byte("first ")))
	if p.Idle() {
		t.Fatal("idle with a fragmented message open")
	}
	feed(enc(true, 0, 0xA, true, []byte("pong between")))
	if p.Idle() {
		t.Fatal("idle with a fragmented message open, after a control frame")
	}
	feed(enc(true, 0, 0x0, true, []byte("half")))
	if !p.Idle() {
		t.Fatal("not idle after the last fragment")
	}
	feed(enc(true, 0, 0x8, true, []byte{0x03, 0xe8}))
	if p.Idle() {
		t.Fatal("idle after the close frame")
	}

	p.Reset(frame.Config{Masked: true, MaxMessage: 4})
	if !p.Idle() {
		t.Fatal("not idle after Reset")
	}
	var got []frame.Event
	if err := p.Feed(enc(true, 0, 0x2, true, []byte("ok")), func(e frame.Event) error {
		got = append(got, e)
		return nil
	}); err != nil || len(got) != 1 || string(got[0].Data) != "ok" {
		t.Fatalf("after Reset: %v, %+v", err, got)
	}
	err := p.Feed(enc(true, 0, 0x2, true, []byte("too long")), noop)
	var fe *frame.Error
	if !errors.As(err, &fe) || fe.Code != frame.CodeMessageTooBig {
		t.Fatalf("message over the new limit: %v; want 1009", err)
	}
	if p.Idle() {
		t.Fatal("idle after a violation")
	}
}
