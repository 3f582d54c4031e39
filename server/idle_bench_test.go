package server_test

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/server"
)

// BenchmarkIdleConnections measures what an open, idle WebSocket
// connection costs the server on each engine: live heap and goroutines
// per connection once the handshakes are over and the garbage collected,
// and what was allocated per connection to get there (the handshakes'
// garbage, which sets how high the heap climbs when many arrive at once).
// The clients are bare TCP sockets in the same process (no WebSocket
// state of their own); the "tcp" row holds the same sockets against a
// listener that only accepts, so (engine − tcp) is what the WebSocket
// server adds to an accepted socket.
//
//	go test -run '^$' -bench IdleConnections -benchtime 1x ./server/
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 2000
	rows := []string{"tcp", string(wschan.EngineGoroutine), string(wschan.EnginePoll)}
	for _, row := range rows {
		b.Run(row, func(b *testing.B) {
			for range b.N {
				heap, alloc, gor := idleCost(b, row, conns)
				b.ReportMetric(heap, "heap-B/conn")
				b.ReportMetric(alloc, "alloc-B/conn")
				b.ReportMetric(gor, "goroutines/conn")
			}
		})
	}
}

func idleCost(b *testing.B, row string, n int) (heapPerConn, allocPerConn, goroutinesPerConn float64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var held []net.Conn
	if row == "tcp" {
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
	} else {
		s, err := server.New(server.Config{Engine: wschan.Engine(row), MaxConns: -1, MaxConnsPerIP: -1, MessageRate: -1, NoScenarios: true})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer close(done)
			_ = s.Serve(ctx, ln)
		}()
	}
	before := settledHeap()
	alloc0 := totalAlloc()
	g0 := runtime.NumGoroutine()
	clients := make([]net.Conn, 0, n)
	req := []byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	var buf [512]byte
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		if row == "tcp" {
			continue
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := 0
		for !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
			k, err := c.Read(buf[got:])
			if err != nil {
				b.Fatalf("handshake: %v after %q", err, buf[:got])
			}
			got += k
		}
		if !bytes.HasPrefix(buf[:got], []byte("HTTP/1.1 101")) {
			b.Fatalf("handshake answered %q", buf[:got])
		}
	}
	time.Sleep(200 * time.Millisecond) // let the server settle
	allocPerConn = float64(totalAlloc()-alloc0) / float64(n)
	after := settledHeap()
	g1 := runtime.NumGoroutine()
	heapPerConn = float64(int64(after)-int64(before)) / float64(n)
	goroutinesPerConn = float64(g1-g0) / float64(n)
	b.Logf("%s: %d connections: heap %s B/conn, %.2f goroutines/conn", row, n, strconv.FormatFloat(heapPerConn, 'f', 0, 64), goroutinesPerConn)
	for _, c := range clients {
		_ = c.Close()
	}
	cancel()
	_ = ln.Close()
	<-done
	for _, c := range held {
		_ = c.Close()
	}
	return heapPerConn, allocPerConn, goroutinesPerConn
}

// totalAlloc is the bytes allocated so far: what the handshakes cost in
// garbage, before the collector runs (see alloc-B/conn).
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// settledHeap is the live heap after the garbage is collected.
func settledHeap() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
