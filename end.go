package wschan

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// endRecord is everything known about a connection when it is over: what
// the engine reports (cause) and what this side did.
type endRecord struct {
	cause endCause

	localClose  bool          // this side started the closing handshake
	timedOut    bool          // the keepalive declared the peer dead
	pingTimeout time.Duration // its timeout, for the message
	aborted     error         // a Send's context ended mid-message, or nil

	sent     closeFrame // the close frame this side wrote
	intended closeFrame // the close frame this side asked for
}

// closeFrame is a close frame's status and reason; ok when there was one.
type closeFrame struct {
	code   StatusCode
	reason string
	ok     bool
}

// classifyEnd turns the record of a connection's end into the channel's
// close code, reason and error (see Channel.Err for the cases).
func classifyEnd(r endRecord) (StatusCode, string, error) {
	c := r.cause
	switch {
	case c.peerClose:
		code, reason := StatusCode(c.peerCode), c.peerReason
		if c.peerNoStatus {
			return StatusNoStatusReceived, "", &CloseError{Code: StatusNoStatusReceived, Remote: true}
		}
		if code.Sendable() && utf8.ValidString(reason) {
			return code, reason, &CloseError{Code: code, Reason: reason, Remote: true}
		}
		sent, sentReason := r.sent.code, r.sent.reason
		if !r.sent.ok {
			sent, sentReason = StatusProtocolError, ""
		}
		return sent, sentReason, fmt.Errorf("%w: invalid close frame (code %d): %w", ErrProtocol, c.peerCode,
			&CloseError{Code: sent, Reason: sentReason})
	case c.malformed:
		return StatusProtocolError, "", fmt.Errorf("%w: malformed frame (%s): %w", ErrProtocol, c.detail, &CloseError{Code: StatusProtocolError})
	case r.localClose:
		f := r.sent
		if !f.ok { // the socket failed before the close frame could go out
			f = r.intended
		}
		return f.code, f.reason, ErrClosed
	case r.timedOut:
		return StatusAbnormalClosure, "", fmt.Errorf("%w: peer did not answer a ping within %v", ErrTimeout, r.pingTimeout)
	case r.aborted != nil:
		return StatusAbnormalClosure, "", fmt.Errorf("%w: send abandoned mid-message: %w", ErrConnectionLost, r.aborted)
	}
	if f := r.sent; f.ok {
		ce := &CloseError{Code: f.code, Reason: f.reason}
		switch f.code {
		case StatusMessageTooBig:
			return f.code, f.reason, fmt.Errorf("%w: %w", ErrMessageTooBig, ce)
		case StatusProtocolError, StatusInvalidFramePayloadData, StatusUnsupportedData,
			StatusPolicyViolation, StatusMandatoryExtension, StatusInternalError:
			return f.code, f.reason, fmt.Errorf("%w: %w", ErrProtocol, ce)
		}
	}
	return StatusAbnormalClosure, "", fmt.Errorf("%w: %w", ErrConnectionLost, c.err)
}
