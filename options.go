package wschan

import "time"

// Defaults shared by Dial and Accept.
const (
	DefaultReadLimit        = 32 << 20 // bytes
	DefaultPingInterval     = 30 * time.Second
	DefaultPingTimeout      = 15 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
)

// settings are the per-channel knobs shared by Dial and Accept, with
// defaults filled in.
type settings struct {
	readLimit     int
	pingInterval  time.Duration // 0: no pings
	pingTimeout   time.Duration // 0: pings only measure RTT
	closeTimeout  time.Duration
	onMessage     func(*Channel, Message)
	onPing        func(*Channel, []byte)
	onStateChange func(State, error)
	engine        Engine // see AcceptOptions.Engine
}

func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}
