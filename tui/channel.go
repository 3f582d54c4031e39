package tui

import (
	"context"

	"github.com/wschan/wschan"
)

// Channel is what the Model and RunPlain use of a *wschan.Channel. Tests
// and the demo pass a real channel; the interface only keeps this package's
// needs in one place.
type Channel interface {
	Read(ctx context.Context) (wschan.Message, error)
	Send(ctx context.Context, typ wschan.MessageType, data []byte) error
	Close(code wschan.StatusCode, reason string) error
	Done() <-chan struct{}
	State() wschan.State
	CloseCode() wschan.StatusCode
	CloseReason() string
	Err() error
}

var _ Channel = (*wschan.Channel)(nil)

// StateMsg is a change of the channel's state, as reported to
// wschan.DialOptions.OnStateChange: the new state and, for
// StateReconnecting and StateClosed, the error that caused it.
type StateMsg struct {
	State wschan.State
	Err   error
}

// stateFeedSize is how many state changes a StateFeed holds for a model
// that has not read them yet.
const stateFeedSize = 64

// StateFeed carries state changes from wschan.DialOptions.OnStateChange to
// a Model (Config.States). Create it with NewStateFeed. OnStateChange never
// blocks, as the hook must not: when the model falls behind by more than
// 64 changes, the oldest is dropped, so the latest state always arrives.
type StateFeed struct {
	c chan StateMsg
}

// NewStateFeed returns an empty StateFeed.
func NewStateFeed() *StateFeed {
	return &StateFeed{c: make(chan StateMsg, stateFeedSize)}
}

// OnStateChange records a state change; use it as
// wschan.DialOptions.OnStateChange. It is safe for concurrent use and
// never blocks.
func (f *StateFeed) OnStateChange(s wschan.State, err error) {
	m := StateMsg{State: s, Err: err}
	for {
		select {
		case f.c <- m:
			return
		default:
		}
		select { // full: drop the oldest change and try again
		case <-f.c:
		default:
		}
	}
}

// C returns the channel the changes arrive on, for Config.States.
func (f *StateFeed) C() <-chan StateMsg { return f.c }
