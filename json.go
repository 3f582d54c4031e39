package wschan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalidJSON is matched by ReadJSON's error for a message that is not
// a JSON document of the type asked for. The message is consumed and the
// channel stays open: the next ReadJSON reads the next message. The error
// also wraps encoding/json's (*json.SyntaxError, *json.UnmarshalTypeError,
// ...) for errors.As.
var ErrInvalidJSON = errors.New("wschan: message is not valid JSON for the type")

// SendJSON encodes v with encoding/json and sends it as one text message
// (see Channel.Send). A value that cannot be encoded is an error from
// encoding/json, wrapped, and nothing is sent.
func SendJSON(ctx context.Context, ch *Channel, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wschan: send json: %w", err)
	}
	return ch.Send(ctx, Text, data)
}

// ReadJSON reads the next message (text or binary) and decodes it with
// encoding/json into a T. It blocks as Channel.Read does and returns
// Read's error unchanged when the channel has ended or ctx ends. A message
// that does not decode (bad syntax, trailing data, a value that does not
// fit T) returns the zero T and an error matching ErrInvalidJSON; the
// channel stays usable.
//
// The message's buffer is recycled after decoding (Message.Release): T
// keeps no reference to it, as encoding/json copies what it keeps.
func ReadJSON[T any](ctx context.Context, ch *Channel) (T, error) {
	var v T
	m, err := ch.Read(ctx)
	if err != nil {
		return v, err
	}
	err = json.Unmarshal(m.Data, &v)
	m.Release()
	if err != nil {
		var zero T
		return zero, fmt.Errorf("wschan: read json: %w: %w", ErrInvalidJSON, err)
	}
	return v, nil
}
