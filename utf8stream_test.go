package wschan_test

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// frames splits msg into text frames at the given cut points (a cut
// outside the message is ignored), with a ping between the first two.
func textFrames(msg []byte, cuts []int, masked bool) []byte {
	var out []byte
	prev := 0
	op := byte(opText)
	first := true
	for _, c := range append(cuts, len(msg)) {
		if c < prev || c > len(msg) {
			continue
		}
		fin := c == len(msg)
		out = append(out, wstest.Frame{Fin: fin, Opcode: op, Masked: masked, Payload: msg[prev:c]}.Encode()...)
		if first && !fin {
			out = append(out, wstest.Frame{Fin: true, Opcode: opPing, Masked: masked, Payload: []byte("p")}.Encode()...)
		}
		first = false
		op = opCont
		prev = c
		if fin {
			break
		}
	}
	return out
}

// feedChopped feeds stream in reads of the given sizes (cycled).
func feedChopped(w *wschan.TextWatch, stream []byte, chops []int) bool {
	for i := 0; len(stream) > 0; i++ {
		n := 1
		if len(chops) > 0 {
			n = max(1, chops[i%len(chops)])
		}
		n = min(n, len(stream))
		if !w.Feed(stream[:n]) {
			return false
		}
		stream = stream[n:]
	}
	return true
}

func FuzzTextWatch(f *testing.F) {
	f.Add([]byte("hello, 世界 €𝄞"), []byte{3, 7}, []byte{1}, true)
	f.Add([]byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80}, []byte{2, 5}, []byte{3, 1}, false)
	f.Add(bytes.Repeat([]byte("é"), 300), []byte{1, 200}, []byte{5, 50, 1}, true)
	f.Fuzz(func(t *testing.T, msg, cutBytes, chopBytes []byte, masked bool) {
		var cuts, chops []int
		for _, c := range cutBytes {
			cuts = append(cuts, int(c))
		}
		for _, c := range chopBytes {
			chops = append(chops, int(c))
		}
		stream := append(textFrames(msg, cuts, masked),
			wstest.Frame{Fin: true, Opcode: opBinary, Masked: masked, Payload: []byte{0xff}}.Encode()...)
		valid := utf8.Valid(msg)
		var w wschan.TextWatch
		if ok := feedChopped(&w, stream, chops); valid && !ok {
			t.Fatalf("valid message %q (cuts %v, chops %v) reported invalid", msg, cuts, chops)
		}
		// Byte by byte every message spans reads, so an invalid one must be caught.
		var w1 wschan.TextWatch
		if ok := feedChopped(&w1, stream, nil); ok != valid {
			t.Fatalf("byte-by-byte feed of %q: ok %v, want %v", msg, ok, valid)
		}
	})
}

// TestInvalidUTF8FailsFast checks the connection is failed with 1007 when
// the bad bytes arrive, not when the message is complete: the rest of the
// message is never sent.
func TestInvalidUTF8FailsFast(t *testing.T) {
	t.Parallel()
	valid := []byte("κόσμε")
	tests := []struct {
		name string
		data []byte
	}{
		{"bad first fragment", wstest.Frame{Opcode: opText, Masked: true, Payload: []byte{0xff, 0x41}}.Encode()},
		{"bad second fragment (6.4.1)", append(
			wstest.Frame{Opcode: opText, Masked: true, Payload: valid}.Encode(),
			wstest.Frame{Opcode: opCont, Masked: true, Payload: []byte{0xf4, 0x90, 0x80, 0x80}}.Encode()...)},
		{"bad chop of one frame (6.4.3)", func() []byte {
			f := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: append(append(bytes.Clone(valid), 0xf4, 0x90, 0x80, 0x80), bytes.Repeat([]byte("a"), 100)...)}.Encode()
			return f[:len(f)-100] // the rest of the frame is never sent
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, accepted := acceptedServer(t, nil)
			raw := wstest.DialRaw(t, u, nil)
			srv := serverChannel(t, accepted)
			if err := raw.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			if code, reason := raw.ReadClose(); code != 1007 {
				t.Fatalf("server answered %d %q, want 1007 before the message completes", code, reason)
			}
			wstest.WaitDone(t, srv)
			if wschan.CloseStatus(srv.Err()) != 1007 {
				t.Fatalf("server Err() = %v", srv.Err())
			}
		})
	}
	t.Run("client side, first frame in the handshake packet", func(t *testing.T) {
		t.Parallel()
		got := make(chan int, 1)
		u := wstest.RawServer(t, func(r *wstest.Raw) {
			_ = r.WriteFrame(wstest.Frame{Opcode: opText, Payload: []byte{0xc3}})
			time.Sleep(10 * time.Millisecond) // separate reads for the next fragment
			_ = r.WriteFrame(wstest.Frame{Opcode: opCont, Payload: []byte{0x28}})
			code, _ := r.ReadClose()
			got <- code
		})
		ch := wstest.Dial(t, u, nil)
		wstest.WaitDone(t, ch)
		if ch.CloseCode() != 1007 {
			t.Fatalf("client CloseCode() = %v (%v), want 1007", ch.CloseCode(), ch.Err())
		}
		if code := <-got; code != 1007 {
			t.Fatalf("server received %d", code)
		}
	})
	t.Run("client side, valid text right behind the handshake", func(t *testing.T) {
		t.Parallel()
		msg := bytes.Repeat([]byte("€𝄞é"), 2000)
		u := wstest.RawServer(t, func(r *wstest.Raw) {
			stream := textFrames(msg, []int{1, 5000, 9001}, false)
			for len(stream) > 0 { // many small writes: many reads on the client
				n := min(777, len(stream))
				_ = r.Write(stream[:n])
				stream = stream[n:]
			}
			r.ReadClose()
		})
		ch := wstest.Dial(t, u, nil)
		m := wstest.Read(t, ch)
		if !bytes.Equal(m.Data, msg) {
			t.Fatalf("got %d bytes, want %d", len(m.Data), len(msg))
		}
	})
}

// BenchmarkTextWatch measures the early UTF-8 check on a 16 KiB masked
// text frame that arrives in 4 KiB reads (the case it validates).
func BenchmarkTextWatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"ascii", bytes.Repeat([]byte("x"), 16<<10)},
		{"mixed", wstest.RandomText(16<<10, 1)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			stream := wstest.Frame{Fin: true, Opcode: opText, Masked: true, Payload: tc.msg}.Encode()
			b.SetBytes(int64(len(tc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				var w wschan.TextWatch
				if !feedChopped(&w, stream, []int{4096}) {
					b.Fatal("valid text refused")
				}
			}
		})
	}
}
