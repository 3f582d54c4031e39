package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan/internal/xconnect"
	"github.com/wschan/wschan/server"
)

var updateScreenshot = flag.Bool("update-screenshot", false,
	"copy the desktop screenshot of TestBrowser to docs/screenshot-web.png (shown in the README)")

// requireEnv turns a missing browser, node or npm package from a skip into
// a failure, as for the interop peers (internal/peers).
const requireEnv = "WSCHAN_REQUIRE_PEERS"

// browserTimeout bounds the whole browser suite.
const browserTimeout = 3 * time.Minute

// chromiumPath is Debian's Chromium (apt-get install -y chromium);
// WSCHAN_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("WSCHAN_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// requireBrowser skips the test, or fails it under WSCHAN_REQUIRE_PEERS=1,
// when node, Chromium or the npm packages are missing. It returns the
// module root.
func requireBrowser(t *testing.T) string {
	t.Helper()
	why := func() string {
		out, err := exec.Command("node", "--version").Output()
		if err != nil {
			return "node is not installed (apt-get install -y nodejs npm)"
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		if major, _, _ := strings.Cut(v, "."); atoi(major) < 20 {
			return "node " + v + " is too old: playwright-core needs 20 or later"
		}
		if _, err := os.Stat(chromiumPath()); err != nil {
			return chromiumPath() + " is missing (apt-get install -y chromium)"
		}
		root, err := moduleRoot()
		if err != nil {
			return err.Error()
		}
		for _, pkg := range []string{"playwright-core", "axe-core"} {
			if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
				return "the npm package " + pkg + " is not installed (run npm ci in " + root + ")"
			}
		}
		return ""
	}()
	if why == "" {
		root, _ := moduleRoot()
		return root
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("browser tests required (%s=1): %s; ./scripts/test installs everything when run as root", requireEnv, why)
	}
	t.Skipf("browser tests skipped: %s (set %s=1 to make this a failure)", why, requireEnv)
	return ""
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// liveServer is a real wschan server on a fixed loopback port that the
// browser tests can stop and start again on the same port.
type liveServer struct {
	t    *testing.T
	tls  bool   // serve HTTPS (self-signed), offering HTTP/2
	addr string // host:port, fixed by the first start
	tcp  atomic.Int32
	srv  atomic.Pointer[server.Server] // the running server, for its metrics

	mu     sync.Mutex
	cancel context.CancelFunc // nil while stopped
	done   chan error
}

// startLive starts a server on a port of its own choosing; stop and start
// then act on that port.
func startLive(t *testing.T, tls bool) *liveServer {
	t.Helper()
	ls := &liveServer{t: t, tls: tls, addr: "127.0.0.1:0"}
	if err := ls.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.stop)
	return ls
}

// start starts a new server on the server's address (the first time, on a
// port of its own choosing).
func (ls *liveServer) start() error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.cancel != nil {
		return errors.New("already running")
	}
	addr := &ls.addr
	s, err := server.New(server.Config{Addr: *addr, DrainTimeout: 15 * time.Second, TLSSelfSigned: ls.tls}) // a graceful window, even for a browser on a busy machine
	if err != nil {
		return err
	}
	tcp, err := s.Listen()
	if err != nil {
		return err
	}
	*addr = tcp.Addr().String()
	ls.srv.Store(s)
	ln := &countingListener{Listener: tcp, n: &ls.tcp}
	ctx, cancel := context.WithCancel(context.Background())
	ls.cancel, ls.done = cancel, make(chan error, 1)
	go func(done chan<- error) { done <- s.Serve(ctx, ln) }(ls.done)
	return nil
}

// stop drains the server (1001 to every client) and waits for Serve.
func (ls *liveServer) stop() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.cancel == nil {
		return
	}
	ls.cancel()
	if err := <-ls.done; err != nil {
		ls.t.Errorf("Serve: %v", err)
	}
	ls.cancel = nil
}

// control lets the browser tests stop and start the server:
// POST /stop, POST /start.
func (ls *liveServer) control() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		ls.stop()
		fmt.Fprintln(w, "stopped")
	})
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, _ *http.Request) {
		if err := ls.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "started")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		_, metrics := do(ls.t, ls.srv.Load().Handler(), "GET", "/metrics", nil)
		accepted := func(proto string) int {
			m := regexp.MustCompile(`wschan_handshakes_total\{outcome="accepted",proto="` + regexp.QuoteMeta(proto) + `"\} (\d+)`).FindStringSubmatch(metrics)
			if m == nil {
				return -1
			}
			return atoi(m[1])
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]int{"tcp": int(ls.tcp.Load()), "h1": accepted("HTTP/1.1"), "h2": accepted("HTTP/2.0")})
	})
	return mux
}

// countingListener counts the TCP connections it accepts into n.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// lineLogger writes each line of the browser suite's output to t.Log.
type lineLogger struct {
	t   *testing.T
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
}

// TestBrowser runs e2e.test.mjs (node:test, playwright-core) in Debian's
// Chromium against a real server on loopback. Screenshots go to
// $WSCHAN_ARTIFACTS, or to wschan-web under the system's temporary
// directory; -update-screenshot copies the desktop one to docs/.
func TestBrowser(t *testing.T) {
	root := requireBrowser(t)
	// The same suite over both protocols: the page over plain HTTP/1.1, and
	// over HTTPS with HTTP/2, where the page's socket rides the page's
	// connection (RFC 8441).
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			if proto == "h2" && !xconnect.Enabled() {
				t.Skipf("HTTP/2 extended CONNECT is off in this process: run with GODEBUG=%s", xconnect.Setting)
			}
			runBrowserSuite(t, root, proto)
		})
	}
}

// runBrowserSuite runs e2e.test.mjs against a live server speaking proto.
func runBrowserSuite(t *testing.T, root, proto string) {
	ls := startLive(t, proto == "h2")
	ctl := httptest.NewServer(ls.control())
	t.Cleanup(ctl.Close)
	scheme := "http"
	if ls.tls {
		scheme = "https"
	}

	artifacts := os.Getenv("WSCHAN_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(os.TempDir(), "wschan-web")
	}
	if proto != "http/1.1" {
		artifacts = filepath.Join(artifacts, proto) // the README's screenshot stays the HTTP/1.1 one
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	// Chromium's profile (a fresh one per launch, made by playwright-core)
	// and anything else the browser writes stays in a directory of ours.
	home := t.TempDir()

	ctx, cancel := context.WithTimeout(t.Context(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "e2e.test.mjs")
	cmd.Env = append(os.Environ(),
		"WSCHAN_WEB_URL="+scheme+"://"+ls.addr+"/",
		"WSCHAN_WEB_PROTO="+proto,
		"WSCHAN_WEB_CONTROL="+ctl.URL,
		"WSCHAN_CHROMIUM="+chromiumPath(),
		"WSCHAN_ARTIFACTS="+artifacts,
		"HOME="+home, "TMPDIR="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home,
	)
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	out.Write([]byte("\n"))
	t.Logf("browser suite: %s; screenshots in %s", time.Since(start).Round(time.Millisecond), artifacts)
	if ctx.Err() != nil {
		t.Fatalf("browser suite did not finish within %s", browserTimeout)
	}
	if err != nil {
		t.Fatalf("browser suite failed: %v", err)
	}
	if *updateScreenshot && proto == "http/1.1" {
		dst := filepath.Join(root, "docs", "screenshot-web.png")
		if err := copyFile(filepath.Join(artifacts, "web-desktop.png"), dst); err != nil {
			t.Fatal(err)
		}
		t.Logf("updated %s", dst)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
