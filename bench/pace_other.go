//go:build !linux

package bench

import (
	"errors"
	"fmt"
)

// newClock: no timerfd here; open-loop connections wait on Go's timers.
func newClock() (clock, error) {
	return nil, fmt.Errorf("no timerfd: %w", errors.ErrUnsupported)
}
