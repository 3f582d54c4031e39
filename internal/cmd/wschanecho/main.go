// Command wschanecho runs the `wschan serve` echo server (package server)
// with its per-client limits off, for scripts/bench-serve: a load generator
// on one address would otherwise be throttled by the message rate limit,
// the per-IP connection cap and the idle timeout. Everything else (keepalive
// pings, write timeout, metrics at /metrics, scenarios) is the default.
//
//	go run ./internal/cmd/wschanecho -addr 127.0.0.1:9002
//
// It prints "listening ADDR" once the listener is open and runs until
// SIGINT or SIGTERM (then drains as `wschan serve` does). The server's own
// /metrics reports goroutines and memory; -pprof ADDR serves net/http/pprof
// on a second listener, for diagnosis.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // on -pprof's listener only (http.DefaultServeMux)
	"os"
	"os/signal"
	"syscall"

	"github.com/wschan/wschan/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9002", "listen address")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (default off)")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, "wschanecho: pprof:", http.ListenAndServe(*pprofAddr, nil)) }()
	}

	s, err := server.New(server.Config{
		Addr:          *addr,
		MessageRate:   -1,
		MaxConns:      -1,
		MaxConnsPerIP: -1,
		IdleTimeout:   -1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "wschanecho:", err)
		os.Exit(2)
	}
	ln, err := s.Listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wschanecho:", err)
		os.Exit(1)
	}
	fmt.Println("listening", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, "wschanecho:", err)
		os.Exit(1)
	}
}
