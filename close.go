package wschan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// StatusCode is a WebSocket close status code (RFC 6455, section 7.4).
type StatusCode int

// Close status codes defined by RFC 6455 and the IANA registry. 1005, 1006
// and 1015 are never sent on the wire: they only report what happened.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	// StatusNoStatusReceived reports a close frame that carried no status code.
	StatusNoStatusReceived StatusCode = 1005
	// StatusAbnormalClosure reports a connection that ended without a close
	// frame: the transport was lost, or the peer stopped answering.
	StatusAbnormalClosure         StatusCode = 1006
	StatusInvalidFramePayloadData StatusCode = 1007
	StatusPolicyViolation         StatusCode = 1008
	StatusMessageTooBig           StatusCode = 1009
	StatusMandatoryExtension      StatusCode = 1010
	StatusInternalError           StatusCode = 1011
	StatusServiceRestart          StatusCode = 1012
	StatusTryAgainLater           StatusCode = 1013
	StatusBadGateway              StatusCode = 1014
	StatusTLSHandshake            StatusCode = 1015
)

var statusNames = map[StatusCode]string{
	StatusNormalClosure:           "normal closure",
	StatusGoingAway:               "going away",
	StatusProtocolError:           "protocol error",
	StatusUnsupportedData:         "unsupported data",
	StatusNoStatusReceived:        "no status received",
	StatusAbnormalClosure:         "abnormal closure",
	StatusInvalidFramePayloadData: "invalid frame payload data",
	StatusPolicyViolation:         "policy violation",
	StatusMessageTooBig:           "message too big",
	StatusMandatoryExtension:      "mandatory extension",
	StatusInternalError:           "internal error",
	StatusServiceRestart:          "service restart",
	StatusTryAgainLater:           "try again later",
	StatusBadGateway:              "bad gateway",
	StatusTLSHandshake:            "TLS handshake",
}

// String returns the code and its registered name, e.g. "1000 (normal closure)".
func (s StatusCode) String() string {
	if name, ok := statusNames[s]; ok {
		return strconv.Itoa(int(s)) + " (" + name + ")"
	}
	return strconv.Itoa(int(s))
}

// Sendable reports whether s may be sent in a close frame: 1000-1003,
// 1007-1014 and the application ranges 3000-4999.
func (s StatusCode) Sendable() bool {
	switch {
	case s >= 1000 && s <= 1003, s >= 1007 && s <= 1014:
		return true
	case s >= 3000 && s <= 4999:
		return true
	}
	return false
}

// MaxCloseReason is the longest close reason in bytes: a control frame carries
// at most 125 bytes, two of which are the status code.
const MaxCloseReason = 123

// CloseError is the error that ends a Channel closed by a close frame: from
// the peer (Remote is true), or sent by this side because the peer broke the
// protocol (Remote is false; the error also matches ErrProtocol, or
// ErrMessageTooBig for 1009). Use errors.As to read it, or CloseStatus.
type CloseError struct {
	Code   StatusCode
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	who := "peer"
	if !e.Remote {
		who = "this side"
	}
	if e.Reason == "" {
		return fmt.Sprintf("wschan: %s closed with %s", who, e.Code)
	}
	return fmt.Sprintf("wschan: %s closed with %s: %q", who, e.Code, e.Reason)
}

// CloseStatus returns the status code carried by a *CloseError in err's tree,
// or -1 when there is none.
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// errBadClosePayload is returned by parseClosePayload for a payload that no
// conforming peer sends.
var errBadClosePayload = errors.New("wschan: invalid close frame payload")

// parseClosePayload decodes the body of a close frame. An empty body is
// StatusNoStatusReceived. A 1-byte body, a code that may not be sent, or a
// reason that is not UTF-8 is an error.
func parseClosePayload(p []byte) (StatusCode, string, error) {
	switch {
	case len(p) == 0:
		return StatusNoStatusReceived, "", nil
	case len(p) == 1:
		return 0, "", fmt.Errorf("%w: 1 byte", errBadClosePayload)
	case len(p) > 125:
		return 0, "", fmt.Errorf("%w: %d bytes", errBadClosePayload, len(p))
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !code.Sendable() {
		return 0, "", fmt.Errorf("%w: status %d may not be sent", errBadClosePayload, int(code))
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", fmt.Errorf("%w: reason is not UTF-8", errBadClosePayload)
	}
	return code, string(p[2:]), nil
}

// checkClose validates what Close is asked to send.
func checkClose(code StatusCode, reason string) error {
	if !code.Sendable() {
		return fmt.Errorf("%w: status %d may not be sent (use 1000-1003, 1007-1014 or 3000-4999)", ErrInvalidClose, int(code))
	}
	if len(reason) > MaxCloseReason {
		return fmt.Errorf("%w: reason is %d bytes, at most %d fit", ErrInvalidClose, len(reason), MaxCloseReason)
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("%w: reason is not UTF-8", ErrInvalidClose)
	}
	return nil
}
