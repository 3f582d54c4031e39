package wschan_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/wschan/wschan"
)

type point struct {
	X, Y int
	Tag  string `json:"tag,omitempty"`
}

// ReadJSON decodes each message; a bad one is an error matching
// ErrInvalidJSON (and encoding/json's error) that leaves the channel
// usable: the message sent after it is read next.
func TestReadJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     wschan.MessageType
		data    string
		want    point
		wantErr any // nil, or a pointer to the encoding/json error type expected
	}{
		{"object", wschan.Text, `{"X":1,"Y":2,"tag":"a"}`, point{1, 2, "a"}, nil},
		{"binary message", wschan.Binary, `{"X":3}`, point{X: 3}, nil},
		{"unknown fields ignored", wschan.Text, `{"X":4,"Z":9}`, point{X: 4}, nil},
		{"bad syntax", wschan.Text, `{"X":`, point{}, new(*json.SyntaxError)},
		{"trailing data", wschan.Text, `{"X":1} {}`, point{}, new(*json.SyntaxError)},
		{"wrong type", wschan.Text, `{"X":"one"}`, point{}, new(*json.UnmarshalTypeError)},
		{"empty message", wschan.Text, ``, point{}, new(*json.SyntaxError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, s := channelPair(t)
			if err := s.Send(t.Context(), tt.typ, []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			if err := wschan.SendJSON(t.Context(), s, point{X: 7, Y: 8}); err != nil {
				t.Fatal(err)
			}
			got, err := wschan.ReadJSON[point](t.Context(), c)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("ReadJSON: %v", err)
			case tt.wantErr != nil && (!errors.Is(err, wschan.ErrInvalidJSON) || !errors.As(err, tt.wantErr)):
				t.Fatalf("ReadJSON: %v, want ErrInvalidJSON wrapping %T", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ReadJSON: %+v, want %+v", got, tt.want)
			}
			if next, err := wschan.ReadJSON[point](t.Context(), c); err != nil || next != (point{X: 7, Y: 8}) {
				t.Fatalf("next ReadJSON: %+v, %v; want the next message", next, err)
			}
			if c.Err() != nil {
				t.Fatalf("channel ended: %v", c.Err())
			}
		})
	}
}

// SendJSON refuses a value encoding/json cannot encode and sends nothing;
// ReadJSON passes the channel's end through unchanged.
func TestSendJSONErrors(t *testing.T) {
	t.Parallel()
	c, s := channelPair(t)
	err := wschan.SendJSON(t.Context(), s, map[string]any{"ch": make(chan int)})
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) {
		t.Fatalf("SendJSON(chan): %v, want *json.UnsupportedTypeError", err)
	}
	if err := wschan.SendJSON(t.Context(), s, []string{"ok"}); err != nil {
		t.Fatal(err)
	}
	if got, err := wschan.ReadJSON[[]string](t.Context(), c); err != nil || len(got) != 1 || got[0] != "ok" {
		t.Fatalf("ReadJSON: %q, %v; want [ok] (nothing sent before it)", got, err)
	}
	_ = s.Close(4001, "done")
	if _, err := wschan.ReadJSON[point](t.Context(), c); wschan.CloseStatus(err) != 4001 || errors.Is(err, wschan.ErrInvalidJSON) {
		t.Fatalf("ReadJSON after close: %v, want the peer's 4001", err)
	}
}
