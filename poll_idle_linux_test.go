//go:build linux

package wschan_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// A poll connection holds a frame parser only while a frame or a
// fragmented message is partly read: an idle one holds none.
func TestIdlePollConnHoldsNoParser(t *testing.T) {
	t.Parallel()
	opts := &wschan.AcceptOptions{}
	wschan.UseEngine(opts, wschan.EnginePoll)
	u, accepted := acceptedServer(t, opts)
	raw := wstest.DialRaw(t, u, nil)
	ch := serverChannel(t, accepted)
	holds := func(want bool, when string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for wschan.HoldsParser(ch) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: holds a parser %v, want %v", when, !want, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	echo := func(want []byte) {
		t.Helper()
		_ = raw.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := raw.ReadFrame()
		if err != nil || !bytes.Equal(f.Payload, want) {
			t.Fatalf("echo %q, %v; want %q", f.Payload, err, want)
		}
	}
	write := func(b []byte) {
		t.Helper()
		if _, err := raw.Conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	holds(false, "after the handshake")

	whole := wstest.Frame{Fin: true, Opcode: opBinary, Masked: true, Payload: []byte("split in two")}.Encode()
	write(whole[:4])
	holds(true, "inside a frame")
	write(whole[4:])
	echo([]byte("split in two"))
	holds(false, "after the message")

	write(wstest.Frame{Fin: false, Opcode: opText, Masked: true, Payload: []byte("one, ")}.Encode())
	holds(true, "with a fragmented message open")
	write(wstest.Frame{Fin: true, Opcode: opCont, Masked: true, Payload: []byte("two")}.Encode())
	echo([]byte("one, two"))
	holds(false, "after the last fragment")
}
