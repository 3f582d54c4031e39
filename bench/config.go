package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	neturl "net/url"
	"strings"
	"time"

	"github.com/wschan/wschan"
)

// Defaults for Config.
const (
	DefaultConns        = 1
	DefaultSize         = 1024
	DefaultPipeline     = 1
	DefaultDuration     = 10 * time.Second
	DefaultReplyTimeout = 5 * time.Second
)

// Limits of Config.
const (
	// MinSize is the smallest message: the header that carries the
	// connection and sequence numbers.
	MinSize = headerLen
	// MaxConns is the most connections one run can tell apart.
	MaxConns = 1<<24 - 1
)

// ErrConfig is matched by the error Run returns for a Config it cannot run.
var ErrConfig = errors.New("bench: invalid configuration")

// ErrNoConnection is matched by the error Run returns when every connection
// failed to open; the error also wraps the first dial error.
var ErrNoConnection = errors.New("bench: no connection could be opened")

// Config describes one run. The zero value of each field means its default;
// Run copies the struct.
type Config struct {
	// URL is the WebSocket echo server's URL (ws:// or wss://).
	URL string

	// Conns is how many connections to open. Default DefaultConns (1); at
	// most MaxConns.
	Conns int

	// Ramp is how many connections to open per second. Default 0: all at
	// once.
	Ramp float64

	// Size is each message's size in bytes. Default DefaultSize (1 KiB); at
	// least MinSize (16).
	Size int

	// Pipeline is how many messages each connection keeps in flight.
	// Default DefaultPipeline (1: ping-pong).
	Pipeline int

	// Rate caps the messages sent per second across all connections, in
	// open loop (see the package doc). Default 0: closed loop, as fast as
	// the replies come.
	Rate float64

	// Duration is how long to send after the warmup (echo mode), or to hold
	// the connections once all have been dialled (hold mode). Default
	// DefaultDuration (10s), unless Messages is set.
	Duration time.Duration

	// Messages, when set, is how many measured messages each connection
	// sends, instead of sending for Duration. Echo mode only.
	Messages int

	// Warmup is how long after the first dial messages are sent without
	// being measured. Default 0.
	Warmup time.Duration

	// Text sends text messages instead of binary.
	Text bool

	// Compression offers permessage-deflate.
	Compression bool

	// Hold opens the connections and holds them idle instead of sending.
	Hold bool

	// Room, when set, measures fan-out instead of echo: every connection
	// joins the room of that name on a wschan serve (URL's path becomes
	// /ws/room/Room unless it is one already) and publishes its share of
	// Rate (default: one message per second per connection), for
	// Duration or Messages each; each member times every message from
	// when it was due to when it arrived (Result.RTT), and the run counts
	// deliveries against Sent × members (Result.Expected). URL may list
	// several servers, comma-separated (instances sharing rooms on NATS):
	// the members are spread over them in turn. Size is at least 33 bytes
	// here. Pipeline and Hold do not apply.
	Room string

	// ReplyTimeout is how long a message may wait for its reply before it
	// counts as lost, and the longest wait for the last replies at the end.
	// Default DefaultReplyTimeout (5s).
	ReplyTimeout time.Duration

	// Dial holds the options for every connection (headers, TLS, handshake
	// timeout, proxy...). Run copies it and sets EnableCompression from
	// Compression and its own OnMessage and OnStateChange; Reconnect is
	// ignored. Unless set, PingInterval is -1: no keepalive pings, so idle
	// connections stay idle.
	Dial *wschan.DialOptions

	// ServerPID, when set, is the server's process id, for its CPU time and
	// memory from /proc (Linux only).
	ServerPID int

	// Sources is how many loopback addresses the connections come from,
	// in turn: 127.0.0.1, 127.0.0.2, and so on (a target on 127.0.0.0/8
	// only). One source address reaches one server port from at most the
	// ephemeral port range (about 28,000 connections). Default: one per
	// started 25,000 connections. At most 254.
	Sources int

	// Progress, when set, receives a progress line every second, each
	// starting with a carriage return, and a line clear at the end. Meant
	// for a terminal. Default nil: no progress.
	Progress io.Writer
}

// withDefaults returns c with defaults filled in, or an error matching
// ErrConfig.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.URL == "":
		return bad("no URL")
	case c.Conns < 0 || c.Conns > MaxConns:
		return bad("--conns %d: want 1 to %d", c.Conns, MaxConns)
	case c.Ramp < 0:
		return bad("--ramp %g: want 0 (all at once) or more connections per second", c.Ramp)
	case c.Size != 0 && c.Size < MinSize:
		return bad("--size %d: at least %d bytes, for the connection and sequence numbers each message carries", c.Size, MinSize)
	case c.Pipeline < 0:
		return bad("--pipeline %d: want 1 (ping-pong) or more", c.Pipeline)
	case c.Rate < 0:
		return bad("--rate %g: want 0 (no cap) or more messages per second", c.Rate)
	case c.Duration < 0:
		return bad("--duration %v: want a positive duration", c.Duration)
	case c.Messages < 0:
		return bad("--messages %d: want 1 or more", c.Messages)
	case c.Messages > 0 && c.Duration > 0:
		return bad("--duration and --messages do not go together: pick one")
	case c.Hold && c.Messages > 0:
		return bad("--hold holds connections for --duration and sends no --messages")
	case c.Warmup < 0:
		return bad("--warmup %v: want 0 or a positive duration", c.Warmup)
	case c.ReplyTimeout < 0:
		return bad("--reply-timeout %v: want a positive duration", c.ReplyTimeout)
	case c.Room != "" && c.Hold:
		return bad("--room and --hold do not go together")
	case c.ServerPID < 0:
		return bad("--server-pid %d: want a process id", c.ServerPID)
	case c.Sources < 0 || c.Sources > maxSources:
		return bad("--sources %d: want 1 to %d loopback addresses", c.Sources, maxSources)
	case c.Sources > 1 && !loopbackTarget(c.URL):
		return bad("--sources %d: several source addresses need a server on 127.0.0.0/8; %s is not", c.Sources, c.URL)
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if limit := fileLimit(); limit > 0 && uint64(c.Conns)+filesSpare > limit {
		return bad("--conns %d needs about %d open files, and this process may hold %d (its hard RLIMIT_NOFILE, which Go raises the soft limit to): "+
			"lower --conns, spread the connections over several bench processes, or raise the hard limit where the system allows it (ulimit -Hn)",
			c.Conns, uint64(c.Conns)+filesSpare, limit)
	}
	if c.Sources == 0 {
		c.Sources = 1
		if loopbackTarget(c.URL) {
			c.Sources = min((c.Conns+portsPerSource-1)/portsPerSource, maxSources)
		}
	}
	if c.Size == 0 {
		c.Size = DefaultSize
	}
	if c.Pipeline == 0 {
		c.Pipeline = DefaultPipeline
	}
	if c.Duration == 0 && c.Messages == 0 {
		c.Duration = DefaultDuration
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.Room != "" && c.Rate == 0 {
		c.Rate = float64(c.Conns)
	}
	var d wschan.DialOptions
	if c.Dial != nil {
		d = *c.Dial
	}
	if d.PingInterval == 0 {
		d.PingInterval = -1
	}
	d.EnableCompression = c.Compression
	d.Reconnect = nil
	c.Dial = &d
	return c, nil
}

// messageType is the type of every message sent.
func (c *Config) messageType() wschan.MessageType {
	if c.Text {
		return wschan.Text
	}
	return wschan.Binary
}

const (
	maxSources     = 254    // 127.0.0.1 to 127.0.0.254
	portsPerSource = 25_000 // of the ~28,000 ephemeral ports, with room for others
	filesSpare     = 64     // files bench itself holds besides its connections
)

// loopbackTarget reports whether url's host (the first of a list) is an
// IPv4 loopback address, which several source addresses can reach.
func loopbackTarget(url string) bool {
	u, err := neturl.Parse(strings.TrimSpace(strings.Split(url, ",")[0]))
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	return err == nil && ip.Is4() && ip.IsLoopback()
}

// sourceDial returns a NetDial that connects from the loopback source
// address for connection id.
func sourceDial(id, sources int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	ip := net.IPv4(127, 0, 0, byte(1+id%sources))
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return d.DialContext
}
