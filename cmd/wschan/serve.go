package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/wschan/wschan/rooms/natsbroker"
	"github.com/wschan/wschan/server"
)

// envPrefix starts the environment variable that stands for each flag:
// --max-message-size is WSCHAN_MAX_MESSAGE_SIZE.
const envPrefix = "WSCHAN_"

// lookupEnvFunc reads one environment variable (os.LookupEnv in main).
type lookupEnvFunc func(key string) (string, bool)

// serveOptions is what `wschan serve` is told: a server.Config filled in
// field by field from the flags and the environment, plus the logger's
// settings.
type serveOptions struct {
	cfg       server.Config
	nats      natsbroker.Options // rooms across instances when URLs is set
	logFormat string             // text or json
	logLevel  slog.Level
	flagNames []string // every flag, in definition order: each has a WSCHAN_* variable
	fromEnv   []string // flags set from the environment
}

func newServeCmd(lookupEnv lookupEnvFunc) *cobra.Command {
	o := &serveOptions{}
	cmd := o.command()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.applyEnv(cmd, lookupEnv); err != nil {
			return err
		}
		if pct, ok := gcPercent(o.cfg.Engine, lookupEnv); ok {
			debug.SetGCPercent(pct)
		}
		return o.serve(cmd)
	}
	return cmd
}

// command builds the cobra command with its flags bound to o; RunE is
// left to the caller.
func (o *serveOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the WebSocket echo server (with test scenarios, health checks and metrics)",
		Long:  serveLong(),
		Example: `  wschan serve
  wschan serve --max-room-members 50      # then connect to ws://127.0.0.1:8080/ws/room/lobby
  wschan serve --addr :8080 --greeting 'hello from wschan'
  WSCHAN_ADDR=0.0.0.0:9000 wschan serve --log-format json
  wschan serve --tls-self-signed          # wss://localhost:8080/ws
  wschan serve --addr :443 --acme-domain ws.example.com --acme-email you@example.com`,
		Args: cobra.NoArgs,
	}
	// Defaults in one place; the flags show them in --help.
	o.cfg = server.Config{
		Addr:             server.DefaultAddr,
		MaxMessageSize:   server.DefaultMaxMessageSize,
		MaxConns:         server.DefaultMaxConns,
		MaxConnsPerIP:    server.DefaultMaxConnsPerIP,
		MessageRate:      server.DefaultMessageRate,
		HandshakeTimeout: server.DefaultHandshakeTimeout,
		IdleTimeout:      server.DefaultIdleTimeout,
		PingInterval:     server.DefaultPingInterval,
		PingTimeout:      server.DefaultPingTimeout,
		WriteTimeout:     server.DefaultWriteTimeout,
		DrainTimeout:     server.DefaultDrainTimeout,
		MaxRoomMembers:   server.DefaultMaxRoomMembers,
		MaxRooms:         server.DefaultMaxRooms,
		RoomQueue:        server.DefaultRoomQueue,
		RoomHistory:      server.DefaultRoomHistory,
		RoomHistoryTTL:   server.DefaultRoomHistoryTTL,

		RoomPresenceInterval: server.DefaultRoomPresence,
	}
	o.logFormat, o.logLevel = "text", slog.LevelInfo

	c := &o.cfg
	fs := cmd.Flags()
	fs.SortFlags = false
	name := func(n string) string { o.flagNames = append(o.flagNames, n); return n }
	boolVar := func(p *bool, n, usage string) {
		fs.VarPF(boolValue(p), name(n), "", usage).NoOptDefVal = "true"
	}

	fs.StringVar(&c.Addr, name("addr"), c.Addr,
		"listen address `host:port`; \":8080\" or \"0.0.0.0:8080\" listens on every interface")
	boolVar(&c.Compression, "compression",
		"negotiate permessage-deflate when the client offers it (default off)")
	fs.StringVar((*string)(&c.Engine), name("engine"), string(server.DefaultEngine),
		"what runs the connections: `poll` (the operating system's poller: no goroutine or buffer for a waiting connection; "+
			"TLS and HTTP/2 connections fall back; the garbage collector then runs at GOGC=25 unless GOGC is set) "+
			"or goroutine (one per connection)")
	fs.StringVar(&c.Greeting, name("greeting"), "",
		"`text` message sent once on connect, before any echo (default none: pure echo)")
	boolVar(&c.NoScenarios, "no-scenarios",
		"turn off the test scenario routes listed above")

	fs.Var(sizeValue(&c.MaxMessageSize), name("max-message-size"),
		"largest message a client may send, in bytes or with a KiB, MiB or GiB suffix; larger ones close with 1009")
	fs.Var(intValue(&c.MaxConns), name("max-conns"),
		"open WebSocket connections in all; more get HTTP 503 with Retry-After; -1 for no limit")
	fs.Var(intValue(&c.MaxConnsPerIP), name("max-conns-per-ip"),
		"open WebSocket connections per client IP; more get HTTP 503 with Retry-After; -1 for no limit")
	fs.Var(floatValue(&c.MessageRate), name("message-rate"),
		"messages per second per connection, pings included (token bucket); faster clients are closed with 1008; -1 for no limit")
	fs.Var(intValue(&c.MessageBurst), name("message-burst"),
		"messages a connection may send at once before the rate applies (default 2 × --message-rate)")
	boolVar(&c.LimitLoopback, "limit-loopback",
		"apply --max-conns-per-ip and --message-rate to clients on this machine too (default off: see \"Clients on this machine\" above)")
	fs.Var(prefixesValue(&c.TrustedProxies), name("trusted-proxies"),
		"comma-separated `addresses` or CIDR ranges of proxies in front of the server, e.g. 10.0.0.0/8,192.168.1.5: only their Forwarded, X-Forwarded-For and X-Real-IP headers are believed (default none)")
	boolVar(&c.ProxyProtocol, "proxy-protocol",
		"read a PROXY protocol v1 or v2 header (HAProxy send-proxy, cloud TCP load balancers) on every connection from --trusted-proxies, which must send one; close any other connection that sends one (default off)")

	fs.Var(intValue(&c.MaxRoomMembers), name("max-room-members"),
		"members per room on /ws/room/{name}; more get HTTP 503 with Retry-After; -1 for no limit")
	fs.Var(intValue(&c.MaxRooms), name("max-rooms"),
		"rooms with members at once; a client opening one more gets HTTP 503 with Retry-After; -1 for no limit")
	fs.Var(intValue(&c.RoomQueue), name("room-queue"),
		"room messages waiting per member; a member whose queue is full is closed with 1008 \"too slow\"")
	fs.Var(intValue(&c.RoomHistory), name("room-history"),
		"messages each room keeps for members that resume (wschan.room.v1): in memory, or on JetStream with --nats; -1 for none")
	fs.Var(durationValue(&c.RoomHistoryTTL, false), name("room-history-ttl"),
		"how long a room keeps a message for members that resume")
	fs.Var(durationValue(&c.RoomPresenceInterval, true), name("room-presence-interval"),
		"with --nats: how often to tell the other instances this one's member count in each room; "+
			"an instance not heard from for 3 intervals stops counting; off: count this instance's members only")

	n := &o.nats
	fs.StringVar(&n.URLs, name("nats"), "",
		"share rooms with every wschan serve on this NATS cluster: comma-separated `URLs` such as nats://a:4222,nats://b:4222 (default: rooms live in this process)")
	fs.StringVar(&n.CredsFile, name("nats-creds"), "", "NATS credentials `file` (JWT and NKey seed)")
	fs.StringVar(&n.NKeyFile, name("nats-nkey"), "", "NATS NKey seed `file`")
	fs.StringVar(&n.User, name("nats-user"), "", "NATS user name (or put user:password in the URL)")
	fs.StringVar(&n.Password, name("nats-password"), "", "NATS password (prefer WSCHAN_NATS_PASSWORD: flags show in ps)")
	fs.StringVar(&n.Token, name("nats-token"), "", "NATS authentication token (prefer WSCHAN_NATS_TOKEN)")
	fs.StringVar(&n.TLSCAFile, name("nats-tls-ca"), "", "CA certificate `file` to verify the NATS servers")
	fs.StringVar(&n.TLSCertFile, name("nats-tls-cert"), "", "client certificate `file` for NATS mutual TLS (needs --nats-tls-key)")
	fs.StringVar(&n.TLSKeyFile, name("nats-tls-key"), "", "client key `file` for --nats-tls-cert")
	fs.StringVar(&n.Prefix, name("nats-subject-prefix"), natsbroker.DefaultPrefix,
		"NATS subjects for rooms are `prefix`.<room>; instances that share rooms use the same prefix")
	fs.Var(intValue(&n.HistoryReplicas), name("nats-history-replicas"),
		"copies of each room's JetStream history (default 1; 3 survives the loss of a node in a 3-node cluster)")

	fs.Var(durationValue(&c.HandshakeTimeout, false), name("handshake-timeout"),
		"time a client has to send its request headers (slowloris guard)")
	fs.Var(durationValue(&c.IdleTimeout, true), name("idle-timeout"),
		"close a connection that sends no message for this long (1000 \"idle timeout\"); off to disable")
	fs.Var(durationValue(&c.PingInterval, true), name("ping-interval"),
		"how often to ping each client to keep the connection alive; off to disable")
	fs.Var(durationValue(&c.PingTimeout, true), name("ping-timeout"),
		"drop a client that does not answer a ping within this; off to disable")
	fs.Var(durationValue(&c.WriteTimeout, false), name("write-timeout"),
		"drop a client that does not read an echo (or a room message) for this long (1008)")

	fs.StringSliceVar(&c.AllowedOrigins, name("allowed-origins"), nil,
		"comma-separated browser Origin `hosts` allowed, as path.Match patterns like *.example.com (default: any origin)")
	fs.StringVar(&c.TLSCert, name("tls-cert"), "",
		"serve https:// and wss:// with this PEM certificate `file` (needs --tls-key)")
	fs.StringVar(&c.TLSKey, name("tls-key"), "",
		"PEM private key `file` for --tls-cert")
	boolVar(&c.TLSSelfSigned, "tls-self-signed",
		"serve https:// and wss:// with a certificate made in memory for localhost; clients must skip verification (default off)")
	fs.StringSliceVar(&c.ACMEDomains, name("acme-domain"), nil,
		"automatic HTTPS: obtain and renew a certificate for this DNS `name` from an ACME CA and serve https:// and wss:// on --addr; repeat the flag or separate names with commas (see \"Automatic HTTPS\" above)")
	fs.StringVar(&c.ACMEEmail, name("acme-email"), "",
		"contact `address` the CA may write to about expiring certificates (default none)")
	fs.StringVar(&c.ACMECA, name("acme-ca"), "",
		"ACME directory `URL` of the CA (default Let's Encrypt: "+server.DefaultACMECA+")")
	fs.StringVar(&c.ACMECARoot, name("acme-ca-root"), "",
		"PEM root certificate `file` to trust for a private ACME CA's own HTTPS (default: the system's roots)")
	fs.StringVar(&c.ACMEDir, name("acme-dir"), "",
		"`directory` for the ACME account key and certificates, kept across restarts (default: wschan/acme in the user's cache directory)")
	fs.StringVar(&c.HTTPAddr, name("http-addr"), "",
		"with --acme-domain: plain-HTTP listen address `host:port` for HTTP-01 challenges and /healthz; everything else is redirected to https (default \":80\")")
	fs.Var(durationValue(&c.DrainTimeout, false), name("drain-timeout"),
		"on shutdown, how long to wait for clients to close after 1001 \"going away\"")

	fs.Var(logFormatValue(&o.logFormat), name("log-format"), "log format: text or json")
	fs.Var(levelValue(&o.logLevel), name("log-level"), "least important log level shown: debug, info, warn or error")
	return cmd
}

// serveLong is the help text; it lists the scenarios the server offers.
func serveLong() string {
	var b strings.Builder
	b.WriteString(`Run the WebSocket echo server: a replacement for the public echo servers
that tutorials point to (ws://echo.websocket.org is gone).

Endpoints, on one listener (--addr, default ` + server.DefaultAddr + `):
  /ws        echo every message back unchanged: same type, same bytes, in order
  /ws/room/{name}
             a room: every message a member sends goes to every member of
             the room, itself included, unchanged and in the order sent;
             names are 1-64 letters, digits, '-' or '_'
  /          the demo page; a WebSocket upgrade here echoes as /ws does
  /healthz   liveness: 200 "ok" while the process runs
  /readyz    readiness: 200 "ready", 503 while draining or while --nats is set
             and NATS is unreachable (echo keeps working)
  /metrics   Prometheus metrics: connections, handshakes, messages, bytes, close
             codes, rooms, room members and messages, slow-member disconnects,
             resumes (hit or gap)

Test scenarios for client developers (--no-scenarios turns them off):
`)
	scs := server.Scenarios()
	width := 0
	for _, s := range scs {
		width = max(width, len(s.Path))
	}
	for _, s := range scs {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, s.Path, s.Summary)
	}
	b.WriteString(`
Stopping: Ctrl+C (SIGINT) or SIGTERM stops accepting, reports not ready,
closes every connection with 1001 "going away", waits up to --drain-timeout
for clients to close, then exits 0. Press Ctrl+C again to quit at once.

Clients on this machine: a client whose connection comes from a loopback
address (127.0.0.0/8, ::1) is exempt from --max-conns-per-ip and
--message-rate, so that tools such as wschan bench measure the server
instead of its limits; --max-conns still applies. Remote clients are
limited as always. The exemption is off with --limit-loopback, when
--trusted-proxies holds a loopback address (a proxy on this machine then
speaks for remote clients), and for a request that carries a Forwarded,
X-Forwarded-For or X-Real-IP header (it comes through a proxy).

Behind a proxy: --trusted-proxies lists the proxies' addresses. From them
alone the Forwarded, X-Forwarded-For or X-Real-IP header (the first
present) is believed, and the client is the rightmost address in it that
is not a trusted proxy; per-IP limits, logs and metrics use it. A header
that cannot be parsed is logged and ignored. With --proxy-protocol the
client's address comes from the PROXY header that a trusted proxy must
send first (health checks from a trusted address too); a PROXY header from
anyone else closes the connection.
Rooms: a member that does not keep up is closed with 1008 "too slow" once
--room-queue messages wait for it, so it never slows the room; the message
size, rate and connection limits apply to members as to echo clients.
A client that offers the subprotocol wschan.room.v1 speaks JSON instead:
it sends {"type":"join"} (or {"type":"join","epoch":E,"seq":N} to get what
it missed since message N) and {"type":"message","text":"..."}, and hears
a welcome with the room's position, each message with its seq and sender,
joins and leaves with the member count ("members" when the count changes
otherwise), and a "gap" event when the history
(--room-history messages, at most --room-history-ttl old; JetStream with
--nats, which must then run JetStream) does not reach back far enough.
With --nats, presence and the count span every instance: each tells the
others of joins and leaves at once and of its count every
--room-presence-interval; an instance not heard from for three intervals
(it died, or lost NATS) stops counting.

Automatic HTTPS: with --acme-domain ws.example.com (the name's DNS must
point at this machine) the server gets a certificate from Let's Encrypt
(or --acme-ca) when it starts, renews it when a third of its life is left,
and keeps it in --acme-dir, so a restart does not ask again. --addr is
then the HTTPS listener (use --addr :443) and --http-addr (default :80)
answers the CA's HTTP-01 challenges and /healthz and redirects everything
else to https; TLS-ALPN-01 is answered on --addr. Using it accepts the
CA's terms of service. What the CA refuses (rate limit, a name it will
not issue for, no answer) is logged in plain words; the server keeps
serving /healthz and any certificate it has, and tries again after a
wait (1 minute, doubling to 1 hour, or what the CA asks).

Origins: any origin is allowed by default, because the server holds no
credentials or per-user state: a page on another site gains nothing by
using a visitor's browser against it. --allowed-origins restricts it.

Environment: every flag can also be set with a WSCHAN_ variable named after
it in upper case with underscores (--max-message-size is
WSCHAN_MAX_MESSAGE_SIZE). A flag on the command line wins over the
environment. A value of 0 means the default.

Logs go to stderr, one line per connection opened and closed; message
contents are never logged. With --log-format text the first line says where
to connect; with json, every line is a JSON record ("listening" has the URL).

Exit status: 0 after a clean stop; 2 for a bad flag, value or environment
variable; 1 when the server fails (for example, the port is in use).`)
	return b.String()
}

// applyEnv sets every flag not given on the command line from its
// WSCHAN_* variable, if that is set and not empty.
func (o *serveOptions) applyEnv(cmd *cobra.Command, lookupEnv lookupEnvFunc) error {
	set, err := flagsFromEnv(cmd, o.flagNames, envPrefix, lookupEnv)
	o.fromEnv = append(o.fromEnv, set...)
	return err
}

// envName is the environment variable for a flag: max-conns → WSCHAN_MAX_CONNS.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// serve runs the server until the command's context ends.
func (o *serveOptions) serve(cmd *cobra.Command) error {
	stderr := cmd.ErrOrStderr()
	cfg := o.cfg
	cfg.Logger = o.logger(stderr)
	if o.nats.URLs == "" && o.natsFlagSet(cmd) {
		return o.blameEnv(errors.New("the --nats-* options need --nats URL"))
	}
	if o.nats.URLs != "" {
		log := cfg.Logger
		n := o.nats
		var nb atomic.Pointer[natsbroker.Broker] // set once Connect returns; callbacks may come first
		n.OnStatus = func(err error) {
			if err != nil {
				log.Warn("rooms: NATS unavailable: rooms are not shared with other instances and /readyz answers 503; echo keeps working", "err", err)
				return
			}
			url := ""
			if b := nb.Load(); b != nil {
				url = b.ConnectedURL()
			}
			log.Info("rooms: connected to NATS", "url", url)
		}
		n.OnLost = func(room string, count uint64) {
			log.Warn("rooms: messages from other instances lost", "room", room, "lost", count)
		}
		if cfg.RoomHistory > 0 {
			n.HistorySize, n.HistoryTTL = cfg.RoomHistory, cfg.RoomHistoryTTL
			n.OnHistoryError = func(room string, err error) {
				log.Warn("rooms: no JetStream history for this room: it is carried without, and members that resume are told of a gap", "room", room, "err", err)
			}
		}
		b, err := natsbroker.Connect(n)
		if err != nil {
			return o.blameEnv(fmt.Errorf("--nats: %w", err))
		}
		defer b.Close()
		nb.Store(b)
		cfg.RoomBroker = b
		if err := b.Check(); err != nil {
			log.Warn("rooms: not connected to NATS yet; retrying in the background", "err", err)
		}
	}
	srv, err := server.New(cfg)
	if err != nil {
		if ce, ok := errors.AsType[*server.ConfigError](err); ok {
			return o.configError(ce) // the user's to fix: a usage error
		}
		return runtimeError{err}
	}
	ln, err := srv.Listen()
	if err != nil {
		return runtimeError{err}
	}
	if o.logFormat == "text" {
		ws, page := urls(ln.Addr(), cfg.TLSCert != "" || cfg.TLSSelfSigned)
		if len(cfg.ACMEDomains) > 0 {
			ws, page = acmeURLs(cfg.ACMEDomains[0], ln.Addr())
		}
		fmt.Fprintf(stderr, "wschan serve: echo server on %s, page at %s (Ctrl+C to stop)\n", ws, page)
	}
	if err := srv.Serve(cmd.Context(), ln); err != nil {
		return runtimeError{err}
	}
	return nil
}

// natsFlagSet reports whether any --nats-* option was given.
func (o *serveOptions) natsFlagSet(cmd *cobra.Command) bool {
	for _, name := range o.flagNames {
		if strings.HasPrefix(name, "nats-") && name != "nats-subject-prefix" && cmd.Flags().Changed(name) {
			return true
		}
	}
	return false
}

// configError words a refused server.Config as the command line: its
// fields as the flags that set them, and the variables that set those
// flags, since the user may not have typed them.
func (o *serveOptions) configError(ce *server.ConfigError) error {
	flag := func(field string) string {
		if f, ok := configFlags[field]; ok {
			return "--" + f
		}
		return field
	}
	msg := "invalid server configuration: " + ce.Name(flag)
	var vars []string
	for _, field := range ce.Fields {
		if f, ok := configFlags[field]; ok && slices.Contains(o.fromEnv, f) {
			vars = append(vars, envName(f))
		}
	}
	if len(vars) > 0 {
		msg += " (set by " + strings.Join(vars, ", ") + ")"
	}
	return &worded{msg, ce}
}

// worded is an error with the command line's own wording.
type worded struct {
	msg string
	err error
}

func (e *worded) Error() string { return e.msg }
func (e *worded) Unwrap() error { return e.err }

// blameEnv adds to a configuration error the variables that set the flags
// it names, since the user may not have typed them.
func (o *serveOptions) blameEnv(err error) error {
	var vars []string
	for _, name := range o.fromEnv {
		if mentionsFlag(err.Error(), name) {
			vars = append(vars, envName(name))
		}
	}
	if len(vars) == 0 {
		return err
	}
	return fmt.Errorf("%w (set by %s)", err, strings.Join(vars, ", "))
}

// mentionsFlag reports whether msg names --flag (and not a longer flag
// that starts with the same words, as --max-conns-per-ip does --max-conns).
func mentionsFlag(msg, flag string) bool {
	for rest := msg; ; {
		i := strings.Index(rest, "--"+flag)
		if i < 0 {
			return false
		}
		rest = rest[i+2+len(flag):]
		if rest == "" || !(rest[0] == '-' || 'a' <= rest[0] && rest[0] <= 'z') {
			return true
		}
	}
}

func (o *serveOptions) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// urls returns the WebSocket and page URLs a client on this machine can
// use for addr: an unspecified host (":8080", "0.0.0.0") becomes localhost.
func urls(addr net.Addr, tls bool) (ws, page string) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		host, port = addr.String(), ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	hp := host
	if port != "" {
		hp = net.JoinHostPort(host, port)
	}
	if tls {
		return "wss://" + hp + "/ws", "https://" + hp + "/"
	}
	return "ws://" + hp + "/ws", "http://" + hp + "/"
}

// acmeURLs returns the WebSocket and page URLs for an ACME domain served
// on addr's port.
func acmeURLs(domain string, addr net.Addr) (ws, page string) {
	host := strings.ToLower(strings.TrimSuffix(domain, "."))
	if _, port, err := net.SplitHostPort(addr.String()); err == nil && port != "443" {
		host = net.JoinHostPort(host, port)
	}
	return "wss://" + host + "/ws", "https://" + host + "/"
}
