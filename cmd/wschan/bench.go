package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/bench"
)

// benchEnvPrefix starts the variable that stands for each bench flag:
// --conns is WSCHAN_BENCH_CONNS.
const benchEnvPrefix = "WSCHAN_BENCH_"

// benchOptions is what `wschan bench` is told: a bench.Config filled in
// from flags and the environment, plus the output and dial settings.
type benchOptions struct {
	cfg              bench.Config
	size             int64
	binary           bool
	json             bool
	insecure         bool
	handshakeTimeout time.Duration
	flagNames        []string // every flag: each has a WSCHAN_BENCH_* variable
}

func newBenchCmd(lookupEnv lookupEnvFunc) *cobra.Command {
	o := &benchOptions{
		size:             bench.DefaultSize,
		handshakeTimeout: wschan.DefaultHandshakeTimeout,
		cfg: bench.Config{
			Conns:        bench.DefaultConns,
			Pipeline:     bench.DefaultPipeline,
			ReplyTimeout: bench.DefaultReplyTimeout,
		},
	}
	cmd := &cobra.Command{
		Use:   "bench URL",
		Short: "Measure a WebSocket echo server: throughput, round-trip times, connections, errors",
		Long:  benchLong,
		Example: `  wschan serve &
  wschan bench ws://localhost:8080/ws --conns 100 --duration 30s --warmup 5s
  wschan bench ws://localhost:8080/ws --conns 10 --pipeline 16 --size 16KiB --json
  wschan bench ws://localhost:8080/ws --conns 50 --rate 20000 --pipeline 64    # open loop
  wschan bench ws://localhost:8080/ws --hold --conns 10000 --ramp 2000 --duration 30s --server-pid $!
  wschan bench ws://localhost:8080 --room lobby --conns 100 --rate 100 --size 64 --duration 30s`,
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
	fs.Var(intValue(&c.Conns), name("conns"), "connections to open")
	fs.Var(floatValue(&c.Ramp), name("ramp"), "connections opened per second; 0 opens them all at once")
	fs.Var(sizeValue(&o.size), name("size"), "message size, in bytes or with a KiB or MiB suffix; at least 16")
	fs.Var(intValue(&c.Pipeline), name("pipeline"), "messages in flight per connection; 1 is ping-pong")
	fs.Var(floatValue(&c.Rate), name("rate"), "open loop: send this many messages per second across all connections, on schedule, and time each from when it was due (default 0: as fast as replies come)")
	fs.Var(optDurationValue(&c.Duration), name("duration"), "how long to send after the warmup, or with --hold to hold the connections (default 10s)")
	fs.Var(intValue(&c.Messages), name("messages"), "send this many messages per connection instead of for --duration")
	fs.BoolVar(&c.Text, name("text"), false, "send text messages")
	fs.BoolVar(&o.binary, name("binary"), false, "send binary messages (the default)")
	fs.BoolVar(&c.Compression, name("compression"), false, "offer permessage-deflate")
	fs.Var(optDurationValue(&c.Warmup), name("warmup"), "send for this long first without measuring (default none)")
	fs.BoolVar(&c.Hold, name("hold"), false, "idle mode: open --conns connections, hold them for --duration, report connect rate and failures")
	fs.StringVar(&c.Room, name("room"), "", "fan-out mode: every connection joins the wschan serve room `NAME` and publishes its share of --rate (default 1 msg/s each); reports the delay from publish to each member and delivered/expected counts")
	fs.BoolVar(&o.json, name("json"), false, "write the result as one JSON document (fields: go doc github.com/wschan/wschan/bench)")
	fs.Var(intValue(&c.ServerPID), name("server-pid"), "`pid` of the server on this machine: report its CPU time per message and memory (Linux)")
	fs.Var(intValue(&c.Sources), name("sources"), "loopback source addresses to spread the connections over (127.0.0.1, .2, ...; a server on 127.0.0.0/8 only); default one per 25,000 connections")
	fs.Var(durationValue(&c.ReplyTimeout, false), name("reply-timeout"), "count a message lost when its reply takes longer; also the longest wait for the last replies")
	fs.Var(durationValue(&o.handshakeTimeout, false), name("handshake-timeout"), "give up a connection after this long (TCP, TLS and the upgrade)")
	fs.BoolVar(&o.insecure, name("insecure"), false, "skip TLS certificate verification, for wss:// servers with a self-signed certificate")
	cmd.MarkFlagsMutuallyExclusive("text", "binary")
	cmd.MarkFlagsMutuallyExclusive("duration", "messages")
	cmd.MarkFlagsMutuallyExclusive("hold", "messages")
	cmd.MarkFlagsMutuallyExclusive("hold", "room")
	return cmd
}

const benchLong = `Measure a WebSocket echo server: open connections, send messages, check
that every reply is the message sent, byte for byte, and report throughput,
round-trip times (p50, p90, p99, p99.9, max), connect times and errors.

Load: --conns connections, opened at --ramp per second, each keeping
--pipeline messages of --size bytes in flight (1: ping-pong), for
--duration or --messages each, after --warmup (not measured). --rate sends
on a fixed schedule instead (open loop) and times each message from when it
was due, so a server that falls behind shows in the latencies instead of
slowing the client down; raise --pipeline so it does not cap the rate. On
Linux the sends keep to the schedule within tens of microseconds (a kernel
timer); elsewhere Go's timers keep it to about a millisecond, so sends come
in bursts of a millisecond's worth.
--hold opens the connections and holds them idle: connect rate, failures,
and with --server-pid the server's memory per connection.

Fan-out (--room NAME, against wschan serve): every connection joins the
room /ws/room/NAME (the URL's path is replaced unless it is a room's;
several comma-separated URLs spread the members over instances that
share rooms on NATS) and
publishes its share of --rate (default: one message per second per
member), on schedule, for --duration or --messages each. Before the clock
starts, a probe makes sure every member is in the room. Each member times
every message from when it was due to when it arrived (p50 to max), and
the run counts deliveries against published × members: any shortfall is
lost (exit 4); a message from one sender older than one already seen is
out of order.

Checks: each message carries its connection and sequence number. A reply
with other bytes is corrupted; a message without a reply within
--reply-timeout (or whose connection ended) is lost; a reply to no message
in flight is unexpected; a reply ahead of an earlier message's is out of
order. At the end, sending stops and the last replies are awaited.

Output: the table on stdout, or with --json one JSON document; on a
terminal, a progress line on stderr every second. --server-pid adds the
server's CPU time per message and memory, from /proc (Linux); bench's own
memory is reported too, so a run shows when the client was the limit.

Many connections: one source address reaches one server port from about
28,000 ports, so bench spreads connections to a server on 127.0.0.0/8
over 127.0.0.1, 127.0.0.2, ... (--sources; one per 25,000 by default).
Each connection is an open file: a run that needs more than this
process's hard limit (RLIMIT_NOFILE) is refused up front, naming it;
spread such runs over several bench processes.

Benchmarking wschan serve: on the same machine, its per-IP connection
and message-rate limits do not apply to bench (loopback clients are
exempt); from another machine they do, so start it there with
--message-rate -1 --max-conns-per-ip -1. More than 10000 connections need
--max-conns -1 either way. When a server refuses or closes connections
for a limit (HTTP 429 or 503, close 1008 or 1013), bench says so in one
line on stderr, naming the wschan serve flag to change.

Environment: every flag can also be set with a WSCHAN_BENCH_ variable named
after it (--conns is WSCHAN_BENCH_CONNS). A flag wins over the environment.

Exit status:
  0  the run completed and every reply was intact
  2  usage: a bad flag, argument, URL or environment variable
  3  could not open any connection (refused, unknown host, TLS, no upgrade)
  4  the server did not echo every message faithfully: a reply was
     corrupted, lost or unexpected, or a connection closed early (the
     report is still written)`

// applyEnv sets every flag not given on the command line from its
// WSCHAN_BENCH_* variable, if that is set and not empty.
func (o *benchOptions) applyEnv(cmd *cobra.Command, lookupEnv lookupEnvFunc) error {
	if _, err := flagsFromEnv(cmd, o.flagNames, benchEnvPrefix, lookupEnv); err != nil {
		return err
	}
	fs := cmd.Flags()
	for _, pair := range [][2]string{{"text", "binary"}, {"duration", "messages"}, {"hold", "messages"}, {"hold", "room"}} {
		if fs.Changed(pair[0]) && fs.Changed(pair[1]) {
			return fmt.Errorf("--%s and --%s do not go together (one may come from a %s variable)", pair[0], pair[1], benchEnvPrefix)
		}
	}
	return nil
}

// limitedLine says, in one line, that the server's limits cut the run
// short, what it said, and which `wschan serve` flag to change.
func limitedLine(limited string) string {
	hint := "raise its limits, or send less: fewer --conns, a lower --rate"
	switch {
	case strings.Contains(limited, "message rate"):
		hint = "if it is wschan serve, raise its --message-rate (-1 for no limit)"
	case strings.Contains(limited, "too many connections from"):
		hint = "if it is wschan serve, raise its --max-conns-per-ip (-1 for no limit)"
	case strings.Contains(limited, "too slow"):
		hint = "a room member could not keep up: if it is wschan serve, raise its --room-queue, or send less: fewer --conns, a lower --rate"
	case strings.Contains(limited, "connection limit"):
		hint = "if it is wschan serve, raise its --max-conns (-1 for no limit)"
	}
	return "the server limited the benchmark: it " + limited + "; " + hint
}

// run benchmarks rawURL and reports; the exit code says how it went.
func (o *benchOptions) run(cmd *cobra.Command, rawURL string) error {
	cfg := o.cfg
	cfg.URL = rawURL
	if o.size > math.MaxInt32 {
		return fmt.Errorf("--size %s: at most 2GiB", formatSize(o.size))
	}
	cfg.Size = int(o.size)
	if cfg.Size == 0 {
		return fmt.Errorf("--size 0: at least %d bytes", bench.MinSize)
	}
	if cfg.Conns == 0 || cfg.Pipeline == 0 || cfg.ReplyTimeout == 0 {
		return errors.New("--conns, --pipeline and --reply-timeout must be above 0")
	}
	if cmd.Flags().Changed("messages") && cfg.Messages == 0 {
		return errors.New("--messages 0: want 1 or more")
	}
	dial := &wschan.DialOptions{HandshakeTimeout: o.handshakeTimeout}
	if o.insecure {
		dial.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	cfg.Dial = dial
	stderr, stdout := cmd.ErrOrStderr(), cmd.OutOrStdout()
	if !o.json && isTerminal(stderr) {
		cfg.Progress = stderr
	}
	res, err := bench.Run(cmd.Context(), cfg)
	switch {
	case errors.Is(err, bench.ErrConfig):
		return errors.New(strings.TrimPrefix(err.Error(), "bench: "))
	case errors.Is(err, bench.ErrNoConnection):
		if e := dialError(rawURL, err, o.handshakeTimeout); e != nil {
			return e
		}
		return nil // interrupted while connecting
	case err != nil:
		return runtimeError{err}
	}
	if o.json {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return runtimeError{fmt.Errorf("cannot write stdout: %w", err)}
	}
	if res.Limited != "" {
		line := limitedLine(res.Limited)
		if res.Failed() {
			return exitCodeError{exitAbnormal, errors.New(line)}
		}
		fmt.Fprintln(stderr, "wschan bench: "+line)
		return nil
	}
	if res.Failed() {
		e := res.Errors
		return exitCodeError{exitAbnormal, fmt.Errorf("the server did not echo every message faithfully: %d corrupted, %d lost, %d unexpected, %d connections closed early (first error: %s)",
			e.Corrupted, e.Lost, e.Unexpected, e.ClosedEarly, res.FirstError)}
	}
	return nil
}
