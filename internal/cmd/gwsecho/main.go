// Command gwsecho is the raw engine's echo server, the baseline that
// scripts/bench-serve measures `wschan serve` against. It is github.com/lxzan/gws
// configured as wschan configures it (UTF-8 checking on, pings answered with
// the same payload) and nothing else: no limits, no metrics, no keepalive,
// one read-loop goroutine per connection.
//
//	go run ./internal/cmd/gwsecho -addr 127.0.0.1:9001
//
// It prints "listening ADDR" once the listener is open and runs until
// SIGINT or SIGTERM. GET /metrics reports goroutines and memory in the
// Prometheus text format, with the names the wschan server's /metrics uses,
// so the benchmark reads both the same way; -pprof ADDR serves
// net/http/pprof on a second listener, for diagnosis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	_ "net/http/pprof" // on -pprof's listener only (http.DefaultServeMux)

	"github.com/lxzan/gws"
)

type echo struct{ gws.BuiltinEventHandler }

func (echo) OnPing(s *gws.Conn, payload []byte) { _ = s.WritePong(payload) }

func (echo) OnMessage(s *gws.Conn, m *gws.Message) {
	_ = s.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (default off)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "gwsecho: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	up := gws.NewUpgrader(echo{}, &gws.ServerOption{CheckUtf8Enabled: true})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\ngo_memstats_stack_inuse_bytes %d\ngo_memstats_sys_bytes %d\n",
			runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse, ms.Sys)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gwsecho:", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hs := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		_ = hs.Close() // hijacked connections die with the process
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "gwsecho:", err)
		os.Exit(1)
	}
}
