package wschan_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

func TestEchoRoundTrip(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name string
		typ  wschan.MessageType
		data []byte
		comp bool
	}{
		{"text", wschan.Text, []byte("hello, 世界"), false},
		{"binary", wschan.Binary, []byte{0, 1, 2, 0xff, 0xfe}, false},
		{"empty text", wschan.Text, []byte{}, false},
		{"empty binary", wschan.Binary, nil, false},
		{"1 MiB binary", wschan.Binary, big, false},
		{"1 MiB text compressed", wschan.Text, big, true},
		{"small text compressed", wschan.Text, []byte("hi"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := wstest.EchoServer(t, &wschan.AcceptOptions{EnableCompression: tt.comp})
			ch := wstest.Dial(t, u, &wschan.DialOptions{EnableCompression: tt.comp})
			for i := range 3 {
				if err := ch.Send(t.Context(), tt.typ, tt.data); err != nil {
					t.Fatalf("Send #%d: %v", i, err)
				}
			}
			for i := range 3 {
				m := wstest.Read(t, ch)
				if m.Type != tt.typ || !bytes.Equal(m.Data, tt.data) {
					t.Fatalf("echo #%d = %v %d bytes, want %v %d bytes", i, m.Type, len(m.Data), tt.typ, len(tt.data))
				}
			}
			if err := ch.Close(wschan.StatusNormalClosure, "done"); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if !errors.Is(ch.Err(), wschan.ErrClosed) {
				t.Errorf("Err() = %v, want ErrClosed", ch.Err())
			}
			if ch.CloseCode() != wschan.StatusNormalClosure || ch.CloseReason() != "done" {
				t.Errorf("CloseCode/Reason = %v %q", ch.CloseCode(), ch.CloseReason())
			}
		})
	}
}

func TestSendInvalidUTF8KeepsChannelOpen(t *testing.T) {
	t.Parallel()
	ch := wstest.Dial(t, wstest.EchoServer(t, nil), nil)
	if err := ch.Send(t.Context(), wschan.Text, []byte{0xff, 0xfe}); !errors.Is(err, wschan.ErrInvalidUTF8) {
		t.Fatalf("Send invalid UTF-8: %v, want ErrInvalidUTF8", err)
	}
	if err := ch.SendText(t.Context(), "still here"); err != nil {
		t.Fatalf("SendText after refused message: %v", err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "still here" {
		t.Fatalf("got %q", m.Data)
	}
}
