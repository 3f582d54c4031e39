// Package peer holds what every echo server in bench/peers shares: the
// -addr flag, the "listening ADDR" line that scripts/bench-peers waits for,
// and stopping on SIGINT or SIGTERM.
package peer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Flags parses the command line (-addr) and returns the listen address.
func Flags() string {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0: any free port)")
	flag.Parse()
	return *addr
}

// Listen opens a TCP listener on addr and prints "listening ADDR" on stdout.
func Listen(name, addr string) net.Listener {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		Fatal(name, err)
	}
	fmt.Println("listening", ln.Addr())
	return ln
}

// Fatal prints err and exits 1.
func Fatal(name string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// Signaled returns a context that ends on SIGINT or SIGTERM.
func Signaled() context.Context {
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx
}

// ServeHTTP serves h on a new listener at addr until SIGINT or SIGTERM.
// Hijacked connections die with the process.
func ServeHTTP(name, addr string, h http.Handler) {
	ln := Listen(name, addr)
	ctx := Signaled()
	hs := &http.Server{Handler: h}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		Fatal(name, err)
	}
}
