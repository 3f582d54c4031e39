package frame_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/wschan/wschan/internal/frame"
)

// BenchmarkParser measures a server's parser on client frames (masked).
// read=whole: each frame arrives whole in one read, the common case on a
// socket; read=halves: in two reads, so the message is collected in the
// parser's own buffer. The frame is fed from the same buffer on every
// iteration; a parser that unmasks in place flips it between masked and
// unmasked, which is why the text payload is ASCII under either (the
// key's bytes are below 0x80).
func BenchmarkParser(b *testing.B) {
	for _, read := range []string{"whole", "halves"} {
		for _, kind := range []struct {
			name string
			op   byte
		}{{"binary", frame.OpBinary}, {"text", frame.OpText}} {
			for _, size := range []int{16, 1 << 10, 16 << 10} {
				name := fmt.Sprintf("read=%s/type=%s/size=%s", read, kind.name, sizeName(size))
				b.Run(name, func(b *testing.B) {
					wire := enc(true, 0, kind.op, true, bytes.Repeat([]byte("abcdefgh"), size/8))
					cut := len(wire)
					if read == "halves" {
						cut = len(wire) / 2
					}
					p := frame.NewParser(frame.Config{Masked: true, MaxMessage: 1 << 20})
					n := 0
					emit := func(ev frame.Event) error { n += len(ev.Data); return nil }
					b.SetBytes(int64(size))
					b.ReportAllocs()
					for b.Loop() {
						if err := p.Feed(wire[:cut], emit); err != nil {
							b.Fatal(err)
						}
						if err := p.Feed(wire[cut:], emit); err != nil {
							b.Fatal(err)
						}
					}
					if n == 0 {
						b.Fatal("no data")
					}
				})
			}
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
