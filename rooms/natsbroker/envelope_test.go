package natsbroker

import (
	"bytes"
	"testing"

	"github.com/wschan/wschan"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, e := range []envelope{
		{typ: wschan.Text, seq: 1, origin: "o", sender: "s", data: []byte("hello")},
		{typ: wschan.Binary, seq: 1 << 60, origin: "origin-id", data: []byte{0, 1, 2}},
		{typ: wschan.Binary, seq: 7, origin: "x", sender: "", data: []byte{}},
	} {
		got, err := decode(e.encode(nil))
		if err != nil || got.typ != e.typ || got.seq != e.seq || got.origin != e.origin || got.sender != e.sender || !bytes.Equal(got.data, e.data) {
			t.Errorf("decode(encode(%+v)) = %+v, %v", e, got, err)
		}
	}
}

// FuzzEnvelope feeds any bytes to decode: no panic, and whatever decodes
// encodes back to the same bytes. Seeds are valid envelopes, also cut in
// two.
func FuzzEnvelope(f *testing.F) {
	valid := (&envelope{typ: wschan.Text, seq: 300, origin: "abc", sender: "m-1", data: []byte("hi")}).encode(nil)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[len(valid)/2:])
	f.Add([]byte{1, 2, 1, 1, 'o', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decode(b)
		if err != nil {
			return
		}
		if again := e.encode(nil); !bytes.Equal(again, b) {
			// Uvarints have one canonical form per value only when minimal.
			if e2, err := decode(again); err != nil || e2.seq != e.seq || !bytes.Equal(e2.data, e.data) || e2.origin != e.origin || e2.sender != e.sender {
				t.Fatalf("decode(%x) = %+v does not encode back", b, e)
			}
		}
	})
}
