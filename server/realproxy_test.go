package server_test

// Real proxies from Debian's packages (nginx, HAProxy), started on loopback
// in front of a server that trusts them. Clients connect to the proxy from
// other loopback addresses (127.0.0.2, 127.0.0.3: any 127.0.0.0/8 address
// is this machine on Linux), so the server must tell them apart by what
// the proxy passes on. A missing proxy skips the test, unless
// WSCHAN_REQUIRE_PEERS=1 (as in CI), where it fails it.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// requirePeersEnv turns a missing proxy from a skip into a failure, as for
// the interop peers (internal/peers).
const requirePeersEnv = "WSCHAN_REQUIRE_PEERS"

// requireProgram returns the path of a program from a Debian package, or
// skips the test (fails it under WSCHAN_REQUIRE_PEERS=1) when it is missing.
func requireProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("%s tests need Linux (clients bind 127.0.0.2 and 127.0.0.3)", name)
	}
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv(requirePeersEnv) == "1" {
		t.Fatalf("%s is not installed and %s=1 requires it: apt-get install -y %s (./scripts/test does it when run as root)", name, requirePeersEnv, pkg)
	}
	t.Skipf("%s is not installed: apt-get install -y %s (set %s=1 to fail instead)", name, pkg, requirePeersEnv)
	return ""
}

// startProxy runs a proxy in the foreground until the test ends (killed by
// its PID), and waits until addr accepts connections or the proxy exits.
func startProxy(ctx context.Context, t testing.TB, addr string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out := &wstest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out)
		}
	})
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("%s exited before listening: %v\n%s", name, err, out)
		case <-ctx.Done():
			t.Fatalf("%s is not listening on %s: %v\n%s", name, addr, context.Cause(ctx), out)
		case <-time.After(20 * time.Millisecond): // poll: the proxy says nothing when ready
		}
	}
}

// proxySrc is the address the proxies connect to the server from, as if
// they ran on a machine of their own: the server trusts it, and metrics
// are scraped from 127.0.0.1, which it does not.
const proxySrc = "127.0.0.9"

// proxiedServer starts a server that trusts proxySrc with a per-IP limit
// of 1, and returns it with its log.
func proxiedServer(t *testing.T, proxyProtocol bool) (*running, *logRecorder) {
	t.Helper()
	logs := newLogRecorder()
	srv := start(t, server.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxySrc + "/32")},
		ProxyProtocol:  proxyProtocol,
		MaxConnsPerIP:  1,
		Logger:         slog.New(logs),
	})
	return srv, logs
}

// checkRealAddresses dials the server through the proxy at front from
// two client addresses and checks that the server sees them: in its log,
// in the per-IP limit and in its metrics. spoof is a header the first
// client adds, which must change nothing.
func checkRealAddresses(ctx context.Context, t *testing.T, srv *running, logs *logRecorder, front string, spoof http.Header, via string) {
	t.Helper()
	url := "ws://" + front + "/ws"
	a := wstest.Dial(t, url+"?client=a", &wschan.DialOptions{NetDial: dialFrom("127.0.0.2", nil), Header: spoof})
	echoOnce(ctx, t, a, "from a")
	logs.wait(ctx, t, "connection open", map[string]string{"remote": "127.0.0.2*", "via": via, "proxy": proxySrc + "*"})

	b := wstest.Dial(t, url+"?client=b", &wschan.DialOptions{NetDial: dialFrom("127.0.0.3", nil)})
	echoOnce(ctx, t, b, "from b")
	logs.wait(ctx, t, "connection open", map[string]string{"remote": "127.0.0.3*", "via": via})

	// The per-IP limit (1) counts real clients, not the proxy.
	_, err := wschan.Dial(ctx, url+"?client=a2", &wschan.DialOptions{NetDial: dialFrom("127.0.0.2", nil)})
	he, ok := errors.AsType[*wschan.HandshakeError](err)
	if !ok || he.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(he.Body), "too many connections from 127.0.0.2 ") {
		t.Fatalf("second connection from 127.0.0.2: %v, want 503 for 127.0.0.2", err)
	}
	if n, _ := metricsGet(ctx, t, srv.URL).value("wschan_client_addresses"); n != 2 {
		t.Errorf("wschan_client_addresses = %v, want 2", n)
	}
	a.Close(wschan.StatusNormalClosure, "")
	logs.wait(ctx, t, "connection closed", map[string]string{"remote": "127.0.0.2*", "via": via})
}

// TestBehindNginx proxies WebSockets through nginx, which passes the
// client's address in X-Forwarded-For.
func TestBehindNginx(t *testing.T) {
	t.Parallel()
	nginx := requireProgram(t, "nginx", "nginx-light")
	ctx := wstest.Context(t, proxyTimeout)
	srv, logs := proxiedServer(t, false)
	front, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := `daemon off;
master_process off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path ` + dir + `/body;
	proxy_temp_path ` + dir + `/proxy;
	fastcgi_temp_path ` + dir + `/fastcgi;
	uwsgi_temp_path ` + dir + `/uwsgi;
	scgi_temp_path ` + dir + `/scgi;
	map $http_upgrade $connection_upgrade { default upgrade; '' close; }
	server {
		listen ` + front + `;
		location / {
			proxy_pass ` + srv.URL + `;
			proxy_bind ` + proxySrc + `;
			proxy_http_version 1.1;
			proxy_set_header Host $host;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
		}
	}
}
`
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(ctx, t, front, nginx, "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	// nginx appends the peer to what the client sent: "198.51.100.1,
	// 127.0.0.2". The rightmost untrusted address is the client.
	checkRealAddresses(ctx, t, srv, logs, front, http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "x-forwarded-for")
}

// TestBehindHAProxy relays TCP through HAProxy, which opens each
// connection with a PROXY protocol v2 header (send-proxy-v2).
func TestBehindHAProxy(t *testing.T) {
	t.Parallel()
	haproxy := requireProgram(t, "haproxy", "haproxy")
	ctx := wstest.Context(t, proxyTimeout)
	srv, logs := proxiedServer(t, true)
	front, err := wstest.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := `global
	log stderr format raw local0 notice
defaults
	mode tcp
	log global
	timeout connect 5s
	timeout client 1m
	timeout server 1m
frontend front
	bind ` + front + `
	default_backend wschan
backend wschan
	server wschan ` + strings.TrimPrefix(srv.URL, "http://") + ` send-proxy-v2 source ` + proxySrc + `
`
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProxy(ctx, t, front, haproxy, "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	// A header from the client is not believed: the PROXY header is.
	checkRealAddresses(ctx, t, srv, logs, front, http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "proxy-protocol")

	// A client that sends its own PROXY header through HAProxy gets it
	// read as HTTP (400), and changes nothing.
	c, err := dialFrom("127.0.0.3", nil)(ctx, "tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(proxyTimeout))
	if _, err := c.Write([]byte("PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\nGET /ws HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 400" {
		t.Fatalf("spoofed PROXY header through HAProxy: %q %v, want HTTP/1.1 400", buf, err)
	}
}
