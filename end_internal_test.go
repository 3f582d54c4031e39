package wschan

import (
	"errors"
	"io"
	"testing"
	"time"
)

// TestClassifyEnd checks each way a connection can end against the close
// code, reason and error the channel reports.
func TestClassifyEnd(t *testing.T) {
	sent := func(code StatusCode, reason string) closeFrame { return closeFrame{code, reason, true} }
	tests := []struct {
		name       string
		r          endRecord
		code       StatusCode
		reason     string
		is         error
		remoteCode StatusCode // for a *CloseError with Remote set
	}{
		{"peer closed", endRecord{cause: endCause{peerClose: true, peerCode: 4000, peerReason: "bye"}}, 4000, "bye", nil, 4000},
		{"peer closed without status", endRecord{cause: endCause{peerClose: true, peerNoStatus: true}}, StatusNoStatusReceived, "", nil, StatusNoStatusReceived},
		{"peer sent status 0", endRecord{cause: endCause{peerClose: true}, sent: sent(StatusProtocolError, "")}, StatusProtocolError, "", ErrProtocol, 0},
		{"peer sent an unsendable code", endRecord{cause: endCause{peerClose: true, peerCode: 1005}, sent: sent(StatusProtocolError, "")},
			StatusProtocolError, "", ErrProtocol, 0},
		{"peer sent invalid UTF-8 reason", endRecord{cause: endCause{peerClose: true, peerCode: 1000, peerReason: "\xff"}, sent: sent(StatusInvalidFramePayloadData, "")},
			StatusInvalidFramePayloadData, "", ErrProtocol, 0},
		{"bad peer close, none sent", endRecord{cause: endCause{peerClose: true, peerCode: 999}}, StatusProtocolError, "", ErrProtocol, 0},
		{"malformed frame", endRecord{cause: endCause{malformed: true, detail: "length"}}, StatusProtocolError, "", ErrProtocol, 0},
		{"local close, frame out", endRecord{localClose: true, sent: sent(1000, "done"), cause: endCause{err: io.EOF}}, 1000, "done", ErrClosed, 0},
		{"local close, socket failed first", endRecord{localClose: true, intended: sent(4001, "x"), cause: endCause{err: io.EOF}}, 4001, "x", ErrClosed, 0},
		{"ping timeout", endRecord{timedOut: true, pingTimeout: time.Second, cause: endCause{err: io.EOF}}, StatusAbnormalClosure, "", ErrTimeout, 0},
		{"send abandoned", endRecord{aborted: errors.New("deadline"), cause: endCause{err: io.EOF}}, StatusAbnormalClosure, "", ErrConnectionLost, 0},
		{"we sent 1009", endRecord{sent: sent(StatusMessageTooBig, "big"), cause: endCause{err: io.EOF}}, StatusMessageTooBig, "big", ErrMessageTooBig, 0},
		{"we sent 1002", endRecord{sent: sent(StatusProtocolError, ""), cause: endCause{err: io.EOF}}, StatusProtocolError, "", ErrProtocol, 0},
		{"we sent 1007", endRecord{sent: sent(StatusInvalidFramePayloadData, "invalid UTF-8"), cause: endCause{err: io.EOF}}, StatusInvalidFramePayloadData, "invalid UTF-8", ErrProtocol, 0},
		{"transport lost", endRecord{cause: endCause{err: io.ErrUnexpectedEOF}}, StatusAbnormalClosure, "", ErrConnectionLost, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := classifyEnd(tt.r)
			if code != tt.code || reason != tt.reason {
				t.Fatalf("got %v %q, want %v %q", code, reason, tt.code, tt.reason)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("err %v, want %v", err, tt.is)
			}
			ce, ok := errors.AsType[*CloseError](err)
			if tt.remoteCode != 0 {
				if !ok || !ce.Remote || ce.Code != tt.remoteCode {
					t.Fatalf("err %v, want a remote *CloseError %v", err, tt.remoteCode)
				}
			} else if ok && ce.Remote {
				t.Fatalf("err %v is remote", err)
			}
		})
	}
}
