package bench

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// timerClock is a timerfd read through Go's poller.
type timerClock struct {
	fd int
	f  *os.File
}

func newClock() (clock, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	return &timerClock{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

func (c *timerClock) arm(d time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	return unix.TimerfdSettime(c.fd, 0, &spec, nil)
}

func (c *timerClock) wait() error {
	var b [8]byte // the count of expirations
	_, err := c.f.Read(b[:])
	return err
}

func (c *timerClock) close() error { return c.f.Close() }
