package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
	"golang.org/x/net/idna"
)

// Config is everything `wschan serve` can be told. The zero value of a
// field means its default (see Defaults); negative numbers and durations
// mean "off" where the field says so.
type Config struct {
	Addr string // listen address; default "127.0.0.1:8080"

	Compression bool // negotiate permessage-deflate when the client offers it
	// Engine runs the WebSocket connections (wschan.AcceptOptions.Engine):
	// wschan.EnginePoll (the operating system's poller; TLS and HTTP/2
	// connections fall back) or wschan.EngineGoroutine. Default
	// DefaultEngine.
	Engine      wschan.Engine
	Greeting    string // sent once on connect as a text message; default none (pure echo)
	NoScenarios bool   // turn off the /ws/close, /ws/delay, /ws/silent, /ws/drop routes

	MaxMessageSize int64 // bytes; larger messages close with 1009. Default 1 MiB

	MaxConns      int // open WebSocket connections in all; default 10000; -1 no limit
	MaxConnsPerIP int // open connections per client IP; default 100; -1 no limit

	MessageRate  float64 // messages per second per connection, pings included (token bucket); default 1000; -1 no limit
	MessageBurst int     // bucket size; default 2×MessageRate (at least 1)

	// LimitLoopback applies MaxConnsPerIP and MessageRate to clients on
	// this machine too. Default false: a client whose TCP connection comes
	// from a loopback address (127.0.0.0/8, ::1) is exempt from those two
	// limits, so that local tools such as `wschan bench` measure the
	// server instead of its limits. The exemption is off, whatever this
	// says, when any TrustedProxies range holds a loopback address (a proxy
	// on this machine then speaks for remote clients), and for a loopback
	// request that carries a Forwarded, X-Forwarded-For or X-Real-IP header
	// (it comes through a proxy that is not trusted). MaxConns always
	// applies.
	LimitLoopback bool

	// TrustedProxies are the addresses of proxies and load balancers in
	// front of the server. Only from a TCP peer in one of them are the
	// Forwarded, X-Forwarded-For and X-Real-IP headers believed (the first
	// of them present, in that order), and the client is the rightmost
	// address in that header that is not itself in TrustedProxies. Per-IP
	// limits, connection logs and metrics use that address. A header that
	// cannot be parsed is ignored (logged; the peer is the client). Default
	// none: every header is ignored.
	TrustedProxies []netip.Prefix

	// ProxyProtocol reads a PROXY protocol header (v1 or v2, as sent by
	// HAProxy's send-proxy and cloud TCP load balancers) at the start of
	// every connection from a TrustedProxies address, which must send one
	// within HandshakeTimeout, and takes the client address from it. A
	// connection from any other address that starts with a PROXY header
	// is closed. Needs TrustedProxies. Default off: a PROXY header is
	// not HTTP and gets 400.
	ProxyProtocol bool

	HandshakeTimeout time.Duration // time to send the request headers (slowloris guard); default 10s
	IdleTimeout      time.Duration // close a connection without messages for this long (1000 "idle timeout"); default 5m; -1 off
	PingInterval     time.Duration // keepalive ping; default 30s; -1 off
	PingTimeout      time.Duration // drop a peer that does not answer a ping; default 15s; -1 off
	WriteTimeout     time.Duration // drop a client that does not read an echo for this long; default 10s
	// (One watchdog looks at every connection for both timeouts each eighth
	// of the shorter, from 10 ms to 1 s apart: a client is ended up to that
	// long after its timeout.)

	AllowedOrigins []string // browser Origin hosts allowed (path.Match patterns); default: any origin

	MaxRoomMembers int          // members per room on /ws/room/{name}; more get HTTP 503; default 1000; -1 no limit
	MaxRooms       int          // rooms with members on this server; a new room beyond gets HTTP 503; default 1000; -1 no limit
	RoomQueue      int          // messages waiting per room member; a member whose queue is full is closed with 1008; default 256
	RoomBroker     rooms.Broker // carries room messages between servers (e.g. natsbroker); default: rooms live in this process
	// RoomHistory and RoomHistoryTTL bound the history each room keeps for
	// members that resume (the wschan.room.v1 subprotocol) when RoomBroker
	// is nil: the last RoomHistory messages (default 100; -1 none) no older
	// than RoomHistoryTTL (default 5m). A RoomBroker brings its own history,
	// or none.
	RoomHistory    int
	RoomHistoryTTL time.Duration

	// RoomPresenceInterval is how often the server tells the other
	// servers on its RoomBroker (when it carries presence, as natsbroker
	// does) how many members it has in each room; the others count them
	// for three intervals after the last word, so the members of a server
	// that died or lost the broker stop counting within four intervals.
	// Joins and leaves are told at once. Default 5s; -1 off (each server
	// counts its own members only).
	RoomPresenceInterval time.Duration

	TLSCert, TLSKey string // serve https/wss with this certificate and key (PEM files)
	TLSSelfSigned   bool   // serve https/wss with a certificate generated in memory for localhost

	// ACMEDomains turns on automatic HTTPS: Addr serves https/wss with
	// certificates for these DNS names, obtained from an ACME CA (ACMECA)
	// and renewed when a third of their lifetime is left, by the
	// TLS-ALPN-01 challenge on Addr or the HTTP-01 challenge on HTTPAddr.
	// Setting it accepts the CA's terms of service. Excludes TLSCert and
	// TLSSelfSigned. Default none: no ACME, and the other ACME fields
	// must be empty.
	ACMEDomains []string
	ACMEEmail   string // contact address the CA may write to about expiry and policy; default none
	ACMECA      string // the CA's ACME directory URL (https); default DefaultACMECA, Let's Encrypt production
	ACMECARoot  string // PEM file with the root certificate(s) to trust for the CA's own HTTPS (a private CA); default the system's roots
	ACMEDir     string // directory for the ACME account key and certificates, created 0700; default <os.UserCacheDir()>/wschan/acme
	HTTPAddr    string // with ACME: plain-HTTP listen address for HTTP-01 challenges and /healthz, redirecting all else to https; default ":80"

	DrainTimeout time.Duration // on shutdown, how long to wait for clients to close after 1001; default 10s

	Logger *slog.Logger // connection and server logs; nil discards

	acmeCheckEvery time.Duration // how often to check that ACME renewal happened; default acmeCheckEvery (tests set it)
}

// DefaultEngine runs a server's connections unless Config.Engine says
// otherwise.
const DefaultEngine = wschan.EngineGoroutine

// defaultEngine is DefaultEngine, or in the package's tests the engine
// they run over (WSCHAN_TEST_ENGINE, export_test.go).
var defaultEngine = DefaultEngine

// Defaults for Config.
const (
	DefaultAddr             = "127.0.0.1:8080"
	DefaultMaxMessageSize   = 1 << 20
	DefaultMaxConns         = 10000
	DefaultMaxConnsPerIP    = 100
	DefaultMessageRate      = 1000
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultPingInterval     = 30 * time.Second
	DefaultPingTimeout      = 15 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultDrainTimeout     = 10 * time.Second
	DefaultMaxRoomMembers   = rooms.DefaultMaxMembers
	DefaultMaxRooms         = rooms.DefaultMaxRooms
	DefaultRoomQueue        = rooms.DefaultQueueSize
	DefaultACMECA           = "https://acme-v02.api.letsencrypt.org/directory" // Let's Encrypt production
	DefaultHTTPAddr         = ":80"
	DefaultRoomHistory      = rooms.DefaultHistorySize
	DefaultRoomHistoryTTL   = rooms.DefaultHistoryTTL
	DefaultRoomPresence     = rooms.DefaultPresenceInterval
	maxScenarioDelay        = 30 * time.Second
	maxGreeting             = 64 << 10
)

// ErrConfig is matched by every error Validate returns.
var ErrConfig = errors.New("invalid server configuration")

// ConfigError is a Config that cannot work. Fields are the Config fields
// involved, in the order the message names them; Name renders the message
// with other names for them (the command line's flags, say). It matches
// ErrConfig.
type ConfigError struct {
	Fields []string
	text   string // the message, each field marked as \x00Field\x00
}

// newConfigError formats a message in which {Field} names a Config field;
// only the format's own braces are fields, never a value formatted into it.
func newConfigError(format string, a ...any) error {
	e := &ConfigError{}
	format = configField.ReplaceAllStringFunc(format, func(tok string) string {
		f := tok[1 : len(tok)-1]
		e.Fields = append(e.Fields, f)
		return "\x00" + f + "\x00"
	})
	e.text = fmt.Sprintf(format, a...)
	return e
}

var configField = regexp.MustCompile(`\{[A-Z][A-Za-z0-9]*\}`)

// Name returns the message with each field named by name(field).
func (e *ConfigError) Name(name func(field string) string) string {
	parts := strings.Split(e.text, "\x00")
	for i := 1; i < len(parts); i += 2 {
		parts[i] = name(parts[i])
	}
	return strings.Join(parts, "")
}

func (e *ConfigError) Error() string {
	return ErrConfig.Error() + ": " + e.Name(func(f string) string { return f })
}

// Is makes a ConfigError match ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// withDefaults returns c with defaults filled in.
func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Engine == "" {
		c.Engine = defaultEngine
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MessageRate == 0 {
		c.MessageRate = DefaultMessageRate
	}
	if c.MessageBurst == 0 && c.MessageRate > 0 {
		c.MessageBurst = max(1, int(2*c.MessageRate))
	}
	if c.MaxRoomMembers == 0 {
		c.MaxRoomMembers = DefaultMaxRoomMembers
	}
	if c.MaxRooms == 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.RoomQueue == 0 {
		c.RoomQueue = DefaultRoomQueue
	}
	if c.RoomHistory == 0 {
		c.RoomHistory = DefaultRoomHistory
	}
	if c.RoomHistoryTTL == 0 {
		c.RoomHistoryTTL = DefaultRoomHistoryTTL
	}
	if c.RoomPresenceInterval == 0 {
		c.RoomPresenceInterval = DefaultRoomPresence
	}
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.PingTimeout, DefaultPingTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.ACMEDomains) > 0 {
		ds := make([]string, 0, len(c.ACMEDomains))
		for _, d := range c.ACMEDomains {
			if a, err := acmeDomain(d); err == nil && !slices.Contains(ds, a) {
				ds = append(ds, a)
			}
		}
		c.ACMEDomains = ds
		if c.ACMECA == "" {
			c.ACMECA = DefaultACMECA
		}
		if c.HTTPAddr == "" {
			c.HTTPAddr = DefaultHTTPAddr
		}
	}
	return c
}

// Validate reports the first setting that cannot work, as a *ConfigError
// naming the fields involved.
func (c Config) Validate() error {
	bad := newConfigError
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return bad("{Addr} %q is not host:port (for example 127.0.0.1:8080 or :8080)", c.Addr)
		}
	}
	switch c.Engine {
	case "", wschan.EngineGoroutine, wschan.EnginePoll:
	default:
		return bad("{Engine} %q is not an engine: use %q or %q", c.Engine, wschan.EnginePoll, wschan.EngineGoroutine)
	}
	if c.MaxMessageSize < 0 {
		return bad("{MaxMessageSize} must be positive")
	}
	if c.MaxConns < -1 {
		return bad("{MaxConns} must be positive, or -1 for no limit")
	}
	if c.MaxConnsPerIP < -1 {
		return bad("{MaxConnsPerIP} must be positive, or -1 for no limit")
	}
	if c.MaxRoomMembers < -1 {
		return bad("{MaxRoomMembers} must be positive, or -1 for no limit")
	}
	if c.MaxRooms < -1 {
		return bad("{MaxRooms} must be positive, or -1 for no limit")
	}
	if c.RoomQueue < 0 {
		return bad("{RoomQueue} must be positive")
	}
	if c.RoomHistory < -1 {
		return bad("{RoomHistory} must be positive, or -1 for none")
	}
	if c.RoomHistoryTTL < 0 {
		return bad("{RoomHistoryTTL} must be positive")
	}
	if c.RoomPresenceInterval < 0 && c.RoomPresenceInterval != -1 {
		return bad("{RoomPresenceInterval} must be positive, or -1 for off")
	}
	if c.MessageRate < 0 && c.MessageRate != -1 {
		return bad("{MessageRate} must be positive, or -1 for no limit")
	}
	if c.MessageBurst < 0 {
		return bad("{MessageBurst} must be positive")
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			return bad("{TrustedProxies} holds an invalid range")
		}
	}
	if c.ProxyProtocol && len(c.TrustedProxies) == 0 {
		return bad("{ProxyProtocol} needs {TrustedProxies}: the addresses of the proxies that send PROXY headers")
	}
	for name, d := range map[string]time.Duration{"HandshakeTimeout": c.HandshakeTimeout, "WriteTimeout": c.WriteTimeout, "DrainTimeout": c.DrainTimeout} {
		if d < 0 {
			return bad("{" + name + "} must be positive")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("{TLSCert} and {TLSKey} go together")
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		return bad("{TLSSelfSigned} and {TLSCert} exclude each other")
	}
	if err := c.validateACME(); err != nil {
		return err
	}
	if !utf8.ValidString(c.Greeting) {
		return bad("{Greeting} must be UTF-8 text (it is sent as a text message)")
	}
	if len(c.Greeting) > maxGreeting {
		return bad("{Greeting} is longer than %d bytes", maxGreeting)
	}
	return nil
}

// validateACME checks the ACME fields without touching the disk or the
// network; New checks ACMEDir and ACMECARoot.
func (c Config) validateACME() error {
	bad := newConfigError
	if len(c.ACMEDomains) == 0 {
		for _, f := range []struct{ field, v string }{
			{"ACMEEmail", c.ACMEEmail}, {"ACMECA", c.ACMECA}, {"ACMECARoot", c.ACMECARoot},
			{"ACMEDir", c.ACMEDir}, {"HTTPAddr", c.HTTPAddr},
		} {
			if f.v != "" {
				return bad("{" + f.field + "} needs {ACMEDomains}: it only applies to automatic HTTPS")
			}
		}
		return nil
	}
	if c.TLSCert != "" {
		return bad("{ACMEDomains} and {TLSCert} exclude each other: with ACME the server obtains its certificate itself")
	}
	if c.TLSSelfSigned {
		return bad("{ACMEDomains} and {TLSSelfSigned} exclude each other: with ACME the server obtains its certificate itself")
	}
	for _, d := range c.ACMEDomains {
		if _, err := acmeDomain(d); err != nil {
			return bad("{ACMEDomains} %q is not a valid DNS name: %v", d, err)
		}
	}
	if c.ACMECA != "" {
		u, err := url.Parse(c.ACMECA)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("{ACMECA} %q is not the https:// URL of an ACME directory (for example %s)", c.ACMECA, DefaultACMECA)
		}
	}
	if c.ACMEEmail != "" {
		if a, err := mail.ParseAddress(c.ACMEEmail); err != nil || a.Address != c.ACMEEmail {
			return bad("{ACMEEmail} %q is not an email address such as admin@example.com", c.ACMEEmail)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return bad("{HTTPAddr} %q is not host:port (for example :80)", c.HTTPAddr)
		}
		if c.HTTPAddr == c.Addr {
			return bad("{HTTPAddr} and {Addr} are both %s: plain HTTP and HTTPS need ports of their own", c.HTTPAddr)
		}
	}
	return nil
}

// acmeDomain returns d as an ACME CA wants it (lower case, ASCII, no
// final dot), or says why it is not a DNS name a CA can issue for with
// HTTP-01 or TLS-ALPN-01.
func acmeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	switch {
	case d == "":
		return "", errors.New("it is empty")
	case strings.Contains(d, "*"):
		return "", errors.New("wildcard names need the DNS-01 challenge, which wschan does not do; list each name")
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", errors.New("it is an IP address; ACME CAs such as Let's Encrypt issue for names")
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", errors.New("it holds characters a host name cannot have")
	}
	a = strings.ToLower(a)
	if len(a) > 253 {
		return "", errors.New("it is longer than 253 characters")
	}
	labels := strings.Split(a, ".")
	if len(labels) < 2 {
		return "", errors.New("it needs at least one dot, as in ws.example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return "", errors.New("each dot-separated part must be 1 to 63 characters long")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("the part %q starts or ends with '-'", l)
		}
		for _, r := range l {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
				return "", fmt.Errorf("the part %q holds %q: only letters, digits and '-' are allowed", l, r)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", errors.New("its last part is all digits")
	}
	return a, nil
}
