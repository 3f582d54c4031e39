package wstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// BuildWschan builds the wschan command (./cmd/wschan of this module) into
// path, with the go command found on PATH. Tests that run `wschan serve`
// as a real process use it.
func BuildWschan(ctx context.Context, path string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build wschan: %w", err)
	}
	out, err := exec.CommandContext(ctx, goCmd, "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return fmt.Errorf("go env GOMOD = %q (%v): not inside the wschan module", mod, err)
	}
	return GoBuild(ctx, filepath.Dir(mod), path, "./cmd/wschan")
}

// GoBuild runs `go build -o out pkgs...` in dir (a module of its own, for
// a tool the tests run beside the project: nats-server, Pebble). out is a
// file, or a directory ending in a separator for several packages.
func GoBuild(ctx context.Context, dir, out string, pkgs ...string) error {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", out}, pkgs...)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
	}
	return nil
}

// ListenBelowEphemeral listens on a random free loopback port in
// 10000-32767, below the kernel's ephemeral range (32768 and up on Linux)
// from which outgoing connections take their ports: a port found free
// there stays free for a server started on it a moment later, or started
// again on it after a kill, even while other tests dial in parallel. After
// 100 taken ports it listens on any free port.
func ListenBelowEphemeral() (net.Listener, error) {
	for range 100 {
		port := 10000 + rand.IntN(32768-10000)
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			return ln, nil
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// FreeLoopbackAddr returns a loopback address whose port was free a moment
// ago (see ListenBelowEphemeral), and that it has not returned before in
// this process: two callers that each start something on the address they
// got (a test's server, a CA for it) never get the same one.
func FreeLoopbackAddr() (string, error) {
	for range 100 {
		ln, err := ListenBelowEphemeral()
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		ln.Close()
		given.Lock()
		_, dup := given.addrs[addr]
		given.addrs[addr] = struct{}{}
		given.Unlock()
		if !dup {
			return addr, nil
		}
	}
	return "", errors.New("wstest: no loopback port left that was not given out already")
}

// given is every address FreeLoopbackAddr returned.
var given = struct {
	sync.Mutex
	addrs map[string]struct{}
}{addrs: map[string]struct{}{}}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a process's
// output copied in by exec while the test reads it, a server's log.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
