// Command rawload is the load client for the raw TCP echo server (rawtcp)
// in scripts/bench-peers: internal/cmd/wsload and `wschan bench` speak
// WebSocket only. It takes wsload's flags and prints the same one-line JSON
// summary, so the script reads both the same way.
//
// Echo mode opens -conns connections and, on each, writes a -size byte
// message, reads -size bytes back and checks them, -msgs times (ping-pong:
// one message in flight per connection). Hold mode (-hold) opens -conns
// idle connections, prints "ready N" once every dial has finished, and holds
// them until SIGINT or SIGTERM.
//
//	rawload -url tcp://127.0.0.1:9001 -conns 100 -msgs 1000 -size 1024
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type summary struct {
	Mode       string  `json:"mode"`
	Conns      int     `json:"conns"`
	Opened     int64   `json:"opened"`
	Size       int     `json:"size,omitempty"`
	Messages   int64   `json:"messages"`
	Errors     int64   `json:"errors"`
	Mismatches int64   `json:"mismatches"`
	ConnectSec float64 `json:"connect_s"`
	Elapsed    float64 `json:"elapsed_s"`
	PerSec     float64 `json:"msgs_per_s,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

type counters struct {
	opened, messages, errors, mismatches atomic.Int64
	mu                                   sync.Mutex
	firstErr                             string
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
	url := flag.String("url", "tcp://127.0.0.1:9001", "echo server, tcp://HOST:PORT")
	conns := flag.Int("conns", 100, "connections")
	msgs := flag.Int("msgs", 1000, "messages per connection (echo mode)")
	size := flag.Int("size", 1024, "message size in bytes")
	hold := flag.Bool("hold", false, "open -conns idle connections and hold them until SIGINT/SIGTERM")
	dialers := flag.Int("dialers", 32, "concurrent dials")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long (echo mode)")
	rate := flag.Float64("rate", 0, "messages a second in all, spread evenly over the connections (each still waits for its echo); 0: as fast as echoes come")
	flag.Parse()
	if *conns < 1 || *msgs < 0 || *size < 1 || *dialers < 1 || *rate < 0 {
		fmt.Fprintln(os.Stderr, "rawload: -conns, -size and -dialers must be at least 1; -msgs and -rate at least 0")
		os.Exit(2)
	}
	var every time.Duration // between one connection's messages
	if *rate > 0 {
		every = time.Duration(float64(*conns) / *rate * float64(time.Second))
	}
	addr := strings.TrimPrefix(*url, "tcp://")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var c counters
	start := time.Now()
	cs := dialAll(ctx, addr, *conns, *dialers, &c)
	connected := time.Now()
	s := summary{Conns: *conns, ConnectSec: connected.Sub(start).Seconds()}
	if *hold {
		s.Mode = "hold"
		fmt.Printf("ready %d\n", c.opened.Load())
		<-ctx.Done()
	} else {
		s.Mode, s.Size = "echo", *size
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		var wg sync.WaitGroup
		for i, conn := range cs {
			if conn == nil {
				continue
			}
			wg.Go(func() {
				stopOnDone := context.AfterFunc(ctx, func() { _ = conn.Close() })
				defer stopOnDone()
				if err := run(conn, i, *size, *msgs, every, &c); err != nil {
					c.fail(err)
				}
			})
		}
		wg.Wait()
		cancel()
		s.Elapsed = time.Since(connected).Seconds()
		if s.Elapsed > 0 {
			s.PerSec = float64(c.messages.Load()) / s.Elapsed
		}
	}
	for _, conn := range cs {
		if conn != nil {
			_ = conn.Close()
		}
	}
	s.Opened, s.Messages, s.Errors, s.Mismatches, s.FirstError =
		c.opened.Load(), c.messages.Load(), c.errors.Load(), c.mismatches.Load(), c.firstErr
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
	if s.Errors > 0 || s.Mismatches > 0 {
		os.Exit(1)
	}
}

func dialAll(ctx context.Context, addr string, n, dialers int, c *counters) []net.Conn {
	cs := make([]net.Conn, n)
	sem := make(chan struct{}, dialers)
	var wg sync.WaitGroup
	var d net.Dialer
	for i := range cs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				c.fail(fmt.Errorf("dial: %w", err))
				return
			}
			c.opened.Add(1)
			cs[i] = conn
		})
	}
	wg.Wait()
	return cs
}

// run sends msgs messages of size bytes on conn, each after the echo of the
// one before (and, with every > 0, no sooner than every after the one
// before was due), and checks every echo. The first 8 bytes carry the
// message number, so a reply out of order is caught.
func run(conn net.Conn, id, size, msgs int, every time.Duration, c *counters) error {
	out := make([]byte, size)
	for i := range out {
		out[i] = 'a' + byte((id+i)%26)
	}
	in := make([]byte, size)
	got := 0
	defer func() { c.messages.Add(int64(got)) }()
	due := time.Now()
	for seq := range msgs {
		if every > 0 {
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			due = due.Add(every)
		}
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(seq))
		copy(out, b[:])
		if _, err := conn.Write(out); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(conn, in); err != nil {
			return fmt.Errorf("read after %d echoes: %w", got, err)
		}
		if !bytes.Equal(in, out) {
			c.mismatches.Add(1)
		}
		got++
	}
	return nil
}
