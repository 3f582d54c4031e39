package wschan_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

func FuzzParseClosePayload(f *testing.F) {
	for _, seed := range [][]byte{nil, {3}, wstest.ClosePayload(1000, ""), wstest.ClosePayload(4999, "bye"),
		wstest.ClosePayload(1005, ""), wstest.ClosePayload(1000, "\xff"), wstest.ClosePayload(3000, strings.Repeat("x", 123))} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := wschan.ParseClosePayload(p)
		if err != nil {
			return
		}
		if len(p) == 0 {
			if code != wschan.StatusNoStatusReceived {
				t.Fatalf("empty payload gave %v", code)
			}
			return
		}
		if !code.Sendable() || !utf8.ValidString(reason) || len(reason) > wschan.MaxCloseReason {
			t.Fatalf("accepted %x as %v %q", p, code, reason)
		}
		if !bytes.Equal(wstest.ClosePayload(uint16(code), reason), p) {
			t.Fatalf("round trip of %x gave %v %q", p, code, reason)
		}
	})
}

func FuzzParseCloseFrame(f *testing.F) {
	f.Add(wstest.Frame{Fin: true, Opcode: 8, Payload: wstest.ClosePayload(1000, "ok")}.Encode())
	f.Add(wstest.Frame{Fin: true, Opcode: 8, Masked: true, Payload: wstest.ClosePayload(4000, "masked")}.Encode())
	f.Add(wstest.Frame{Fin: true, Opcode: 8}.Encode())
	f.Add([]byte{0x88, 0x7e, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, ok := wschan.ParseCloseFrame(p)
		if !ok {
			return
		}
		// An accepted frame says the same as its payload parsed alone.
		n := int(p[1] & 0x7f)
		i := 2
		var key []byte
		if p[1]&0x80 != 0 {
			key, i = p[2:6], 6
		}
		body := bytes.Clone(p[i : i+n])
		for j := range body {
			if key != nil {
				body[j] ^= key[j&3]
			}
		}
		c2, r2, err := wschan.ParseClosePayload(body)
		if err != nil || c2 != code || r2 != reason {
			t.Fatalf("frame %x: %v %q, payload says %v %q %v", p, code, reason, c2, r2, err)
		}
	})
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"ws://localhost:8080/ws", "wss://example.com", "http://[::1]:80/x?y=z#f", "localhost:8080", "ws://", "ws://h:port", "ftp://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := wschan.ParseURL(s)
		if err != nil {
			return
		}
		if u.Scheme != "ws" && u.Scheme != "wss" || u.Hostname() == "" || u.Fragment != "" {
			t.Fatalf("%q accepted as %#v", s, u)
		}
		if _, err := wschan.ParseURL(u.String()); err != nil {
			t.Fatalf("%q normalised to %q, which is refused: %v", s, u.String(), err)
		}
	})
}

// FuzzServerFrames sends arbitrary bytes after a valid handshake, in two
// writes split at a fuzzed point, to a live server. The server must neither
// crash nor stop serving; the next client must get its echo.
func FuzzServerFrames(f *testing.F) {
	seeds := [][]byte{
		wstest.Frame{Fin: true, Opcode: 1, Masked: true, Payload: []byte("hello")}.Encode(),
		wstest.Frame{Fin: false, Opcode: 1, Masked: true, Payload: []byte{0xce}}.Encode(),
		wstest.Frame{Fin: true, Opcode: 9, Masked: true, Payload: []byte("ping")}.Encode(),
		wstest.Frame{Fin: true, Opcode: 8, Masked: true, Payload: wstest.ClosePayload(1000, "")}.Encode(),
		wstest.Frame{Fin: true, Opcode: 2, Masked: true, Length: 1 << 63}.Encode(),
		binary.BigEndian.AppendUint16([]byte{0x82, 0xfe}, 0xffff),
	}
	for _, s := range seeds {
		f.Add(s, uint8(len(s)/2))
	}
	url := wstest.EchoServer(f, &wschan.AcceptOptions{ReadLimit: 1 << 16})
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		raw := wstest.DialRaw(t, url, nil)
		at := min(int(split), len(data))
		_ = raw.Write(data[:at])
		_ = raw.Write(data[at:])
		// Read whatever the server answers until it closes or goes quiet.
		_ = raw.Conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			if _, err := raw.ReadFrame(); err != nil {
				break // closed by the server, or quiet
			}
		}
		raw.Conn.Close()
		// Still serving.
		ch := wstest.Dial(t, url, nil)
		if err := ch.SendText(t.Context(), "ok"); err != nil {
			t.Fatal(err)
		}
		if m := wstest.Read(t, ch); string(m.Data) != "ok" {
			t.Fatalf("echo after fuzz input: %q", m.Data)
		}
	})
}
