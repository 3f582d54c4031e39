// Command wsload is the load client of scripts/bench-serve: it drives an
// echo server through the wschan client and checks every echo byte for byte.
//
// Echo mode (the default) opens -conns connections, sends -msgs messages of
// -size bytes on each, keeping at most -pipeline unanswered (1: ping-pong),
// and prints a one-line JSON summary:
//
//	wsload -url ws://127.0.0.1:9001/ -conns 100 -msgs 1000 -size 1024
//	{"mode":"echo","conns":100,"messages":100000,"errors":0,"mismatches":0,...}
//
// messages counts echoes received and verified or not; mismatches counts
// echoes that differ from what was sent (wrong type, length or bytes, or out
// of order); errors counts connections that failed to open or ended early.
//
// Hold mode (-hold) opens -conns idle connections, prints "ready N" (N: how
// many opened) once every dial has finished, holds them until SIGINT or
// SIGTERM, then prints the summary and exits.
//
// Client keepalive pings are off, so an idle server sees only its own pings.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wschan/wschan"
)

type config struct {
	url      string
	conns    int
	msgs     int
	size     int
	pipeline int
	text     bool
	hold     bool
	dialers  int
	timeout  time.Duration
}

type summary struct {
	Mode       string  `json:"mode"`
	Conns      int     `json:"conns"`
	Opened     int64   `json:"opened"`
	Size       int     `json:"size,omitempty"`
	Pipeline   int     `json:"pipeline,omitempty"`
	Type       string  `json:"type,omitempty"`
	Messages   int64   `json:"messages"`
	Errors     int64   `json:"errors"`
	Mismatches int64   `json:"mismatches"`
	ConnectSec float64 `json:"connect_s"`
	Elapsed    float64 `json:"elapsed_s"`
	PerSec     float64 `json:"msgs_per_s,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

// counters are shared by all connections.
type counters struct {
	opened, messages, errors, mismatches atomic.Int64

	mu       sync.Mutex
	firstErr string
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:9001/", "echo server URL")
	flag.IntVar(&cfg.conns, "conns", 100, "connections")
	flag.IntVar(&cfg.msgs, "msgs", 1000, "messages per connection (echo mode)")
	flag.IntVar(&cfg.size, "size", 1024, "message size in bytes")
	flag.IntVar(&cfg.pipeline, "pipeline", 1, "messages in flight per connection (1: ping-pong)")
	flag.BoolVar(&cfg.text, "text", false, "send text messages (default binary)")
	flag.BoolVar(&cfg.hold, "hold", false, "open -conns idle connections and hold them until SIGINT/SIGTERM")
	flag.IntVar(&cfg.dialers, "dialers", 32, "concurrent dials")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up after this long (echo mode)")
	flag.Parse()
	if cfg.conns < 1 || cfg.msgs < 0 || cfg.size < 0 || cfg.pipeline < 1 || cfg.dialers < 1 {
		fmt.Fprintln(os.Stderr, "wsload: -conns, -pipeline and -dialers must be at least 1; -msgs and -size at least 0")
		os.Exit(2)
	}

	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var s summary
	if cfg.hold {
		s = hold(sig, cfg)
	} else {
		ctx, cancel := context.WithTimeout(sig, cfg.timeout)
		s = echo(ctx, cfg)
		cancel()
	}
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
	if s.Errors > 0 || s.Mismatches > 0 {
		os.Exit(1)
	}
}

var dialOpts = &wschan.DialOptions{PingInterval: -1}

// dialAll opens cfg.conns connections, cfg.dialers at a time; failed dials
// are counted and leave a nil slot.
func dialAll(ctx context.Context, cfg config, c *counters) []*wschan.Channel {
	chans := make([]*wschan.Channel, cfg.conns)
	sem := make(chan struct{}, cfg.dialers)
	var wg sync.WaitGroup
	for i := range chans {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ch, err := wschan.Dial(ctx, cfg.url, dialOpts)
			if err != nil {
				c.fail(fmt.Errorf("dial: %w", err))
				return
			}
			c.opened.Add(1)
			chans[i] = ch
		})
	}
	wg.Wait()
	return chans
}

func hold(ctx context.Context, cfg config) summary {
	var c counters
	start := time.Now()
	chans := dialAll(ctx, cfg, &c)
	s := summary{Mode: "hold", Conns: cfg.conns, ConnectSec: time.Since(start).Seconds()}
	interrupted := ctx.Err() != nil
	fmt.Printf("ready %d\n", c.opened.Load())
	<-ctx.Done()
	// Connections the server ended while held count as errors.
	for _, ch := range chans {
		if ch == nil {
			continue
		}
		select {
		case <-ch.Done():
			c.fail(fmt.Errorf("ended while held: %w", ch.Err()))
		default:
		}
	}
	s.Elapsed = time.Since(start).Seconds()
	s.Opened, s.Errors, s.FirstError = c.opened.Load(), c.errors.Load(), c.firstErr
	if interrupted { // say what cut the dialing short, not which dial noticed first
		s.FirstError = "interrupted while dialing: " + context.Cause(ctx).Error()
	}
	return s // the process exits: the kernel drops the connections
}

func echo(ctx context.Context, cfg config) summary {
	var c counters
	start := time.Now()
	chans := dialAll(ctx, cfg, &c)
	connected := time.Now()
	typ := wschan.Binary
	if cfg.text {
		typ = wschan.Text
	}
	var wg sync.WaitGroup
	for i, ch := range chans {
		if ch == nil {
			continue
		}
		wg.Go(func() {
			if err := run(ctx, ch, i, typ, cfg, &c); err != nil {
				c.fail(err)
			}
			_ = ch.Close(wschan.StatusNormalClosure, "")
		})
	}
	wg.Wait()
	elapsed := time.Since(connected)
	s := summary{
		Mode: "echo", Conns: cfg.conns, Opened: c.opened.Load(), Size: cfg.size, Pipeline: cfg.pipeline,
		Type: typ.String(), Messages: c.messages.Load(), Errors: c.errors.Load(), Mismatches: c.mismatches.Load(),
		ConnectSec: connected.Sub(start).Seconds(), Elapsed: elapsed.Seconds(), FirstError: c.firstErr,
	}
	if ctx.Err() != nil { // a signal or -timeout, not the first connection to notice
		s.FirstError = "stopped: " + context.Cause(ctx).Error()
	}
	if elapsed > 0 {
		s.PerSec = float64(s.Messages) / elapsed.Seconds()
	}
	return s
}

// pattern is a connection's message body: printable ASCII (valid as text),
// different per connection.
func pattern(conn, size int) []byte {
	p := make([]byte, size)
	x := uint32(conn)*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = 'a' + byte(x%26)
	}
	return p
}

// stamp writes message number seq into the first 16 bytes of p (as hex, so
// text stays valid), or as much of it as fits.
func stamp(p []byte, seq uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	const hex = "0123456789abcdef"
	for i := 0; i < 16 && i < len(p); i++ {
		p[i] = hex[(b[i/2]>>(4*(1-i%2)))&0xf]
	}
}

// run sends cfg.msgs messages on ch, at most cfg.pipeline unanswered, and
// checks each echo against what was sent, in order.
func run(ctx context.Context, ch *wschan.Channel, conn int, typ wschan.MessageType, cfg config, c *counters) error {
	out := pattern(conn, cfg.size)
	want := pattern(conn, cfg.size)
	sent, got := 0, 0
	defer func() { c.messages.Add(int64(got)) }()
	send := func() error {
		stamp(out, uint64(sent))
		if err := ch.Send(ctx, typ, out); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent++
		return nil
	}
	for sent < cfg.msgs && sent < cfg.pipeline {
		if err := send(); err != nil {
			return err
		}
	}
	for got < cfg.msgs {
		m, err := ch.Read(ctx)
		if err != nil {
			return fmt.Errorf("read after %d echoes: %w", got, err)
		}
		stamp(want, uint64(got))
		if m.Type != typ || !bytes.Equal(m.Data, want) {
			c.mismatches.Add(1)
		}
		m.Release()
		got++
		if sent < cfg.msgs {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return nil
}
