package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/pipe"
)

// connectEnvPrefix starts the variable that stands for each connect flag:
// --header is WSCHAN_CONNECT_HEADER. The prefix differs from serve's so
// that a WSCHAN_PING_INTERVAL meant for a server does not reach clients
// started in the same environment.
const connectEnvPrefix = "WSCHAN_CONNECT_"

// connectOptions is what `wschan connect` is told: the Dial options and
// the pipe.Config, filled in from flags and the environment.
type connectOptions struct {
	header           []string
	subprotocols     []string
	origin           string
	insecure         bool
	reconnect        bool
	pingInterval     time.Duration
	handshakeTimeout time.Duration
	maxMessageSize   int64
	cfg              pipe.Config
	flagNames        []string              // every flag: each has a WSCHAN_CONNECT_* variable
	connected        atomic.Bool           // with --reconnect: a connection was open at some point
	lastErr          atomic.Pointer[error] // with --reconnect: the last reason to redial
}

func newConnectCmd(lookupEnv lookupEnvFunc) *cobra.Command {
	o := &connectOptions{
		pingInterval:     wschan.DefaultPingInterval,
		handshakeTimeout: wschan.DefaultHandshakeTimeout,
		maxMessageSize:   wschan.DefaultReadLimit,
		cfg:              pipe.Config{DrainTimeout: pipe.DefaultDrainTimeout},
	}
	cmd := &cobra.Command{
		Use:   "connect URL",
		Short: "Connect to a WebSocket server: stdin lines → messages → stdout, for scripts",
		Long:  connectLong,
		Example: `  echo hello | wschan connect ws://localhost:8080/ws
  wschan connect --jsonl wss://example.com/feed --close-after 10s < /dev/null
  printf 'a\0b\0' | wschan connect --null --binary ws://localhost:8080/ws | xxd
  wschan connect -H 'Authorization: Bearer t0k3n' --subprotocol v2.chat,v1.chat wss://example.com/chat
  wschan connect --insecure wss://localhost:8080/ws    # wschan serve --tls-self-signed`,
		Args:              oneURLArg,
		ValidArgsFunction: noFileCompletion,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.applyEnv(cmd, lookupEnv); err != nil {
				return err
			}
			return o.run(cmd, args[0])
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	c := &o.cfg
	name := func(n string) string { o.flagNames = append(o.flagNames, n); return n }
	fs.BoolVar(&c.Binary, name("binary"), false, "send each input line (or record) as a binary message instead of text")
	fs.BoolVar(&c.NullSeparated, name("null"), false, "split input at NUL bytes instead of newlines, and end each message written with NUL")
	fs.BoolVar(&c.JSONL, name("jsonl"), false, "write one JSON object per event (open, text, binary, reconnecting, close) instead of raw messages")
	fs.StringArrayVarP(&o.header, name("header"), "H", nil, "extra request `header` as 'Name: value'; repeat for more")
	fs.StringSliceVar(&o.subprotocols, name("subprotocol"), nil, "subprotocol to offer, in order of preference; repeat or separate with commas")
	fs.StringVar(&o.origin, name("origin"), "", "Origin header to send, such as https://example.com (default none)")
	fs.BoolVar(&o.insecure, name("insecure"), false, "skip TLS certificate verification, for wss:// servers with a self-signed certificate")
	fs.BoolVar(&o.reconnect, name("reconnect"), false, "redial after the connection is lost or the server restarts, keeping unsent input")
	fs.Var(durationValue(&o.pingInterval, true), name("ping-interval"), "how often to ping the server to keep the connection alive; off to disable")
	fs.Var(optDurationValue(&c.CloseAfter), name("close-after"), "close (1000) after this long, whatever stdin does; the end of stdin then does not close (default: close when stdin ends)")
	fs.Var(durationValue(&c.DrainTimeout, true), name("drain-timeout"), "after stdin ends, wait at most this long for as many messages as were sent; off to close at once")
	fs.Var(durationValue(&o.handshakeTimeout, false), name("handshake-timeout"), "give up connecting after this long (TCP, TLS and the upgrade)")
	fs.Var(sizeValue(&o.maxMessageSize), name("max-message-size"), "largest message accepted from the server; a larger one closes with 1009")
	return cmd
}

const connectLong = `Connect to a WebSocket server and pipe: each line of stdin is sent as a
text message, and each message received is written to stdout, one per line.
A pipe-friendly client, like wscat or websocat.

Input: one message per line (without the newline); --null splits at NUL
bytes instead, --binary sends binary messages. A line that is not UTF-8
cannot be a text message: it is skipped with a warning (use --binary).

Output: every message received, text or binary, as its raw bytes and a
newline (NUL with --null). A message that contains the separator cannot be
told from two: use --jsonl, which writes one JSON object per line:
  {"type":"open","time":"…","protocol":"chat"}      protocol only if agreed
  {"type":"text","time":"…","data":"hello"}
  {"type":"binary","time":"…","base64":"AAEC"}
  {"type":"reconnecting","time":"…","error":"…"}    with --reconnect
  {"type":"close","time":"…","code":1000,"reason":"","error":"…"}
time is RFC 3339 in UTC; error only when the end was abnormal.

Ending: when stdin ends, wschan connect waits until as many messages came
back as were sent (what an echo server does), at most --drain-timeout, then
closes with 1000. With --close-after it closes after that time instead,
whatever stdin does: ` + "`wschan connect --close-after 10s URL < /dev/null`" + `
listens for 10 seconds. Ctrl+C closes with 1000 at once.

Environment: every flag can also be set with a WSCHAN_CONNECT_ variable
named after it (--header is WSCHAN_CONNECT_HEADER, one header), which
keeps secrets such as tokens out of the command line. A flag on the
command line wins over the environment.

Exit status:
  0  closed normally: stdin ended (or --close-after passed, or Ctrl+C), or
     the server closed with 1000 (normal), 1001 (going away) or no code
  1  stdin could not be read or stdout could not be written
  2  usage: a bad flag, argument, URL or environment variable
  3  could not connect: refused, unknown host, timeout, TLS, or the server
     answered without a WebSocket upgrade (401, 403, 404...); with
     --reconnect, no connection was ever made
  4  abnormal close: the server closed with another code (printed with its
     reason), the connection was lost (1006), the server broke the protocol,
     or --reconnect could not deliver every message
Each failure prints one line on stderr saying what went wrong and what to
try.`

// optDurationValue reads a duration where 0 means none; it shows no default.
func optDurationValue(p *time.Duration) value[time.Duration] {
	v := durationValue(p, false)
	v.format = func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	return v
}

// applyEnv sets every flag not given on the command line from its
// WSCHAN_CONNECT_* variable, if that is set and not empty.
func (o *connectOptions) applyEnv(cmd *cobra.Command, lookupEnv lookupEnvFunc) error {
	_, err := flagsFromEnv(cmd, o.flagNames, connectEnvPrefix, lookupEnv)
	return err
}

// dialOptions turns the flags into wschan.DialOptions; states receives the
// state changes of a reconnecting channel.
func (o *connectOptions) dialOptions(states chan<- pipe.StateChange) (*wschan.DialOptions, error) {
	h := http.Header{}
	for _, kv := range o.header {
		name, value, ok := strings.Cut(kv, ":")
		name = strings.TrimSpace(name)
		if !ok || !validHeaderName(name) {
			return nil, fmt.Errorf("--header %q: want 'Name: value', such as 'Authorization: Bearer t0k3n'", kv)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	var subprotocols []string
	for _, p := range o.subprotocols {
		if p = strings.TrimSpace(p); p != "" {
			subprotocols = append(subprotocols, p)
		}
	}
	opts := &wschan.DialOptions{
		Header:           h,
		Subprotocols:     subprotocols,
		HandshakeTimeout: o.handshakeTimeout,
		PingInterval:     o.pingInterval,
		ReadLimit:        o.maxMessageSize,
	}
	if o.insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	if o.reconnect {
		opts.Reconnect = &wschan.ReconnectOptions{}
		opts.OnStateChange = func(s wschan.State, err error) {
			switch {
			case s == wschan.StateOpen:
				o.connected.Store(true)
			case s == wschan.StateReconnecting && err != nil:
				o.lastErr.Store(&err)
			}
			select {
			case states <- pipe.StateChange{State: s, Err: err}:
			default: // a full buffer loses an event line, never the connection
			}
		}
	}
	return opts, nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// run dials rawURL and pipes until the channel ends, turning each way it
// can fail into an exit code and one line.
func (o *connectOptions) run(cmd *cobra.Command, rawURL string) error {
	ctx := cmd.Context()
	states := make(chan pipe.StateChange, 64)
	opts, err := o.dialOptions(states)
	if err != nil {
		return err
	}
	ch, err := wschan.Dial(ctx, rawURL, opts)
	if err != nil {
		return dialError(rawURL, err, o.handshakeTimeout)
	}
	cfg := o.cfg
	cfg.In = cmd.InOrStdin()
	cfg.Out = cmd.OutOrStdout()
	cfg.Err = prefixWriter{cmd.ErrOrStderr(), cmd.CommandPath() + ": "}
	if o.reconnect {
		cfg.States = states
	}
	err = pipe.Run(ctx, ch, cfg)
	if o.reconnect && !o.connected.Load() && err == nil {
		last := ""
		if p := o.lastErr.Load(); p != nil {
			last = "; last error: " + netDetail(*p)
		}
		return exitCodeError{exitHandshake, fmt.Errorf("never connected to %s (--reconnect kept trying%s) — is a server running there?", redact(rawURL), last)}
	}
	return runError(rawURL, err, o.maxMessageSize)
}

// prefixWriter starts every Write (one line each, from pipe) with prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// redact returns the URL for messages, without a password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// plain drops the package prefix from a library error, for a line that
// already starts with the command's name.
func plain(err error) string {
	s := err.Error()
	for _, p := range []string{"wschan: ", "pipe: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// dialError explains a failed Dial: usage for a bad URL, exit 3 for the rest.
func dialError(rawURL string, err error, timeout time.Duration) error {
	u := redact(rawURL)
	host := u
	if pu, perr := url.Parse(rawURL); perr == nil {
		host = pu.Host
	}
	fail := func(format string, args ...any) error {
		return exitCodeError{exitHandshake, fmt.Errorf(format, args...)}
	}
	var (
		he    *wschan.HandshakeError
		dns   *net.DNSError
		cve   *tls.CertificateVerificationError
		uae   x509.UnknownAuthorityError
		hne   x509.HostnameError
		cie   x509.CertificateInvalidError
		rhe   tls.RecordHeaderError
		alert tls.AlertError
	)
	switch {
	case errors.Is(err, wschan.ErrInvalidURL) && !strings.Contains(rawURL, "://") && rawURL != "":
		// "localhost:8080" parses as scheme "localhost": say what was meant.
		return fmt.Errorf("invalid WebSocket URL %q: write ws://%s, or wss://%s for TLS", rawURL, rawURL, rawURL)
	case errors.Is(err, wschan.ErrInvalidURL):
		return errors.New(plain(err))
	case errors.Is(err, context.Canceled):
		return nil // interrupted while connecting
	case errors.As(err, &he):
		return fail("%s answered %d %s instead of a WebSocket upgrade%s", u, he.StatusCode, http.StatusText(he.StatusCode), handshakeHint(he))
	case errors.Is(err, wschan.ErrTimeout):
		return fail("no WebSocket handshake from %s within %v — is the address right, or is a firewall or proxy in the way? (--handshake-timeout waits longer)", u, timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fail("cannot connect to %s: connection refused — is a server running there? try `wschan serve`", u)
	case errors.As(err, &dns) && dns.IsNotFound:
		return fail("cannot connect to %s: host %q not found — check the host name", u, dns.Name)
	case errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie):
		return fail("TLS certificate of %s is not trusted (%s) — for a test server with a self-signed certificate, add --insecure", host, certDetail(err))
	case errors.As(err, &rhe):
		return fail("%s does not speak TLS — use ws:// instead of wss://", host)
	case errors.As(err, &alert), strings.Contains(err.Error(), ": tls: "):
		return fail("TLS handshake with %s failed: %s — check the URL and the server's TLS setup", host, tlsDetail(err))
	}
	return fail("cannot connect to %s: %s — check the address and your network", u, netDetail(err))
}

// handshakeHint says what to do about an HTTP answer that is not an upgrade.
func handshakeHint(he *wschan.HandshakeError) string {
	switch he.StatusCode {
	case http.StatusSwitchingProtocols:
		return ": " + he.Reason + " — is it a WebSocket server?"
	case http.StatusNotFound:
		return " — check the path (wschan serve answers on /ws)"
	case http.StatusUnauthorized, http.StatusForbidden:
		return " — the server refused: check -H 'Authorization: …' or --origin"
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if line := bodyLine(he.Body); line != "" {
			return ": " + line
		}
		return " — the server is busy or shutting down: try again later"
	case http.StatusBadRequest:
		if strings.Contains(string(he.Body), "HTTPS server") {
			return " — it speaks TLS: use wss:// instead of ws://"
		}
		if line := bodyLine(he.Body); strings.HasPrefix(line, "invalid room name") {
			return ": " + line
		}
	}
	return " — is this URL a WebSocket endpoint?"
}

// bodyLine is the first line of a plain-text refusal, as wschan serve
// writes them ("room \"lobby\" is full (50 members); try again later"), or
// "" when the body does not look like one.
func bodyLine(body []byte) string {
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.TrimSpace(line)
	if line == "" || len(line) > 200 || !utf8.ValidString(line) || strings.ContainsAny(line, "<>\x1b") {
		return ""
	}
	return line
}

// certDetail is the certificate problem, without the wrapping.
func certDetail(err error) string {
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	switch {
	case errors.As(err, &uae):
		return "signed by an unknown authority"
	case errors.As(err, &hne):
		return hne.Error()
	}
	return tlsDetail(err)
}

// tlsDetail is the innermost part of a TLS error.
func tlsDetail(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, "tls: "); i >= 0 {
		return s[i+len("tls: "):]
	}
	return s
}

// netDetail is a network error without the dial prefix the library adds.
func netDetail(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	s := plain(err)
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// runError explains how a pipe.Run ended: nil, exit 1 for stdin and
// stdout, exit 4 for an abnormal close.
func runError(rawURL string, err error, readLimit int64) error {
	u := redact(rawURL)
	fail := func(code int, format string, args ...any) error {
		return exitCodeError{code, fmt.Errorf(format, args...)}
	}
	var (
		end *pipe.EndError
		ce  *wschan.CloseError
		ue  *wschan.UndeliveredError
	)
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return nil
	case errors.As(err, &ue):
		n := fmt.Sprintf("%d messages were", len(ue.Messages))
		if len(ue.Messages) == 1 {
			n = "1 message was"
		}
		return fail(exitAbnormal, "%s not delivered: the connection to %s was down when stdin ended — is the server up?", n, u)
	case errors.Is(err, pipe.ErrInput):
		return fail(exitError, "cannot read stdin: %s", innerDetail(err))
	case errors.Is(err, pipe.ErrOutput):
		return fail(exitError, "cannot write stdout: %s", innerDetail(err))
	case !errors.As(err, &end):
		return fail(exitError, "%s", plain(err))
	case errors.As(err, &ce) && ce.Remote:
		return fail(exitAbnormal, "server closed the connection with %s%s — %s", end.Code, quoteReason(end.Reason), closeHint(end.Code))
	case errors.Is(err, wschan.ErrMessageTooBig):
		return fail(exitAbnormal, "server sent a message over %s; closed with %s — raise --max-message-size", formatSize(readLimit), end.Code)
	case errors.Is(err, wschan.ErrProtocol):
		return fail(exitAbnormal, "server broke the WebSocket protocol; closed with %s%s — is %s a WebSocket server?", end.Code, quoteReason(end.Reason), u)
	case errors.Is(err, wschan.ErrTimeout):
		return fail(exitAbnormal, "server stopped answering pings; connection closed: %s — the server or the network is stuck; --reconnect redials", end.Code)
	}
	return fail(exitAbnormal, "connection to %s lost without a close frame: %s — the server or the network dropped it; --reconnect redials", u, end.Code)
}

func quoteReason(r string) string {
	if r == "" {
		return ""
	}
	return fmt.Sprintf(" %q", r)
}

// innerDetail is the error under pipe's ErrInput or ErrOutput.
func innerDetail(err error) string {
	s := err.Error()
	for _, sentinel := range []error{pipe.ErrInput, pipe.ErrOutput} {
		s = strings.TrimPrefix(s, sentinel.Error()+": ")
	}
	return s
}

// closeHint says what a close code from the server usually means.
func closeHint(code wschan.StatusCode) string {
	switch {
	case code == wschan.StatusProtocolError, code == wschan.StatusInvalidFramePayloadData:
		return "the server rejected what was sent as broken"
	case code == wschan.StatusUnsupportedData:
		return "the server does not take this kind of message: try with or without --binary"
	case code == wschan.StatusPolicyViolation:
		return "the server refused something that was sent (too fast, too big, or not allowed)"
	case code == wschan.StatusMessageTooBig:
		return "a message was too big for the server: send smaller ones"
	case code == wschan.StatusInternalError:
		return "the server failed: check its logs"
	case code >= wschan.StatusServiceRestart && code <= wschan.StatusBadGateway:
		return "the server is restarting or overloaded: try again later, or use --reconnect"
	case code >= 3000 && code <= 4999:
		return "an application code: see the server's documentation"
	}
	return "see the server's documentation for this code"
}
