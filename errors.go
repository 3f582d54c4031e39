package wschan

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors callers branch on with errors.Is.
var (
	// ErrClosed ends a Channel closed by this side with Close, and is
	// returned by Send and Read after that.
	ErrClosed = errors.New("wschan: channel closed")

	// ErrConnectionLost ends a Channel whose connection dropped without a
	// close frame (CloseCode reports 1006). It wraps the transport error.
	ErrConnectionLost = errors.New("wschan: connection lost")

	// ErrTimeout is matched by a handshake that took longer than its timeout
	// and by a Channel ended because the peer stopped answering pings
	// (CloseCode reports 1006).
	ErrTimeout = errors.New("wschan: timeout")

	// ErrProtocol is matched by a Channel ended because the peer broke the
	// WebSocket protocol (1002) or sent a text message that is not UTF-8
	// (1007). The error also holds a *CloseError with the code sent.
	ErrProtocol = errors.New("wschan: protocol violation by peer")

	// ErrMessageTooBig is matched by a Channel ended because the peer sent a
	// message larger than the read limit (close code 1009).
	ErrMessageTooBig = errors.New("wschan: message exceeds read limit")

	// ErrInvalidUTF8 is returned by Send for a text message that is not UTF-8;
	// nothing is sent and the Channel stays open.
	ErrInvalidUTF8 = errors.New("wschan: text message is not valid UTF-8")

	// ErrInvalidClose is returned by Close for a status code that may not be
	// sent or a reason that is too long or not UTF-8.
	ErrInvalidClose = errors.New("wschan: invalid close status or reason")

	// ErrBufferFull is matched by Send on a reconnecting Channel whose send
	// buffer stayed full until the context ended; the message was not taken.
	ErrBufferFull = errors.New("wschan: send buffer full")

	// ErrUndelivered is matched by Close on a reconnecting Channel that ends
	// with buffered messages it could not send; see UndeliveredError.
	ErrUndelivered = errors.New("wschan: buffered messages not delivered")

	// ErrOriginNotAllowed is returned by Accept when the request's Origin is
	// not allowed by AcceptOptions.OriginPatterns (the client got HTTP 403).
	ErrOriginNotAllowed = errors.New("wschan: origin not allowed")

	// ErrUnsupportedOption is returned by Dial in a browser (GOOS=js) for
	// a DialOptions field the browser's WebSocket cannot honour; the error
	// names the field.
	ErrUnsupportedOption = errors.New("wschan: option not supported in the browser")

	// ErrNotWebSocket is returned by Accept for a request that is not a valid
	// WebSocket upgrade (the client got HTTP 400 or 426).
	ErrNotWebSocket = errors.New("wschan: not a WebSocket handshake")
)

// HandshakeError is returned by Dial when the server answered the opening
// handshake with something other than a valid WebSocket upgrade: a non-101
// status (a plain web page, 404, 403, 503...), or a 101 whose headers fail
// the checks of RFC 6455, section 4.1.
type HandshakeError struct {
	StatusCode int         // HTTP status of the response
	Header     http.Header // response headers
	Body       []byte      // the first bytes (up to 512) of the response body
	Reason     string      // what was wrong, for humans
}

func (e *HandshakeError) Error() string {
	msg := fmt.Sprintf("wschan: handshake failed: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// UndeliveredError reports messages a reconnecting Channel had accepted into
// its send buffer but could not send before it ended. It matches
// ErrUndelivered.
type UndeliveredError struct {
	Messages []Message
}

func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("wschan: %d buffered messages not delivered", len(e.Messages))
}

// Is reports whether target is ErrUndelivered.
func (e *UndeliveredError) Is(target error) bool { return target == ErrUndelivered }
