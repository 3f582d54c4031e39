// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, for
// tests: with its DNS companion pebble-challtestsrv answering 127.0.0.1
// for every name, so that Pebble validates HTTP-01 and TLS-ALPN-01
// against the server under test on loopback, no real DNS needed. Both are
// built from the github.com/letsencrypt/pebble/v2 module pinned in
// pebble/go.mod (a module of its own, so Pebble's dependencies never raise
// those of wschan). Only tests import it.
package pebbletest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan/internal/wstest"
)

// RequireEnv turns a Pebble that cannot be built from a skip into a
// failure, as for the interop peers.
const RequireEnv = "WSCHAN_REQUIRE_PEERS"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// binaries builds pebble and pebble-challtestsrv once per test process
// (go build's cache makes later builds quick) and returns their directory.
// A build that fails (no module proxy) skips the test, or fails it under
// WSCHAN_REQUIRE_PEERS=1.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wschan-pebbletest-")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		_, file, _, _ := runtime.Caller(0)
		buildErr = wstest.GoBuild(ctx, filepath.Join(filepath.Dir(file), "pebble"), dir+string(filepath.Separator),
			"github.com/letsencrypt/pebble/v2/cmd/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv")
	})
	if buildErr != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v\n%s=1 requires Pebble", buildErr, RequireEnv)
		}
		t.Skipf("Pebble could not be built (set %s=1 to fail instead): %v", RequireEnv, buildErr)
	}
	return buildDir
}

// Options say where Pebble validates challenges.
type Options struct {
	HTTPPort  int      // port Pebble connects to for HTTP-01 (the server's --http-addr)
	TLSPort   int      // port Pebble connects to for TLS-ALPN-01 (the server's --addr)
	Blocklist []string // names Pebble refuses to issue for (rejectedIdentifier)
}

// CA is a running Pebble.
type CA struct {
	Directory string // the ACME directory URL, for --acme-ca
	RootFile  string // PEM root of Pebble's own HTTPS, for --acme-ca-root
	mgmt      string // https://127.0.0.1:port of the management interface
	client    *http.Client
	procs     []*proc
}

type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	out    *wstest.SyncBuffer
	once   sync.Once
}

// Start runs Pebble and its DNS server on loopback ports until the test
// ends, and waits until Pebble answers.
func Start(t testing.TB, opts Options) *CA {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	rootFile, certFile, keyFile, pool := serverCert(t, dir)
	port := func() string {
		addr, err := wstest.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		return addr
	}
	listen, mgmt, dns, dnsMgmt := port(), port(), port(), port()
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"ocspResponderURL":        "",
		"domainBlocklist":         append([]string{"blocked.invalid"}, opts.Blocklist...),
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            "ecdsa",
		"profiles":                map[string]any{"default": map[string]any{"description": "90 days", "validityPeriod": 7776000}},
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := &CA{
		Directory: "https://" + listen + "/dir",
		RootFile:  rootFile,
		mgmt:      "https://" + mgmt,
		client: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true,
		}, Timeout: 10 * time.Second},
	}
	ca.start(t, filepath.Join(bin, "pebble-challtestsrv"), nil, "-dnsserver", dns, "-management", dnsMgmt,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	ca.start(t, filepath.Join(bin, "pebble"),
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", cfgFile, "-dnsserver", dns)
	ca.waitReady(t, dns)
	return ca
}

func (ca *CA) start(t testing.TB, bin string, env []string, args ...string) {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), exited: make(chan struct{}), out: &wstest.SyncBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	ca.procs = append(ca.procs, p)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.out.String())
		}
	})
}

// kill ends the process (SIGKILL, by PID) and waits for it.
func (p *proc) kill() {
	p.once.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.exited
}

// Stop ends Pebble and its DNS server: the CA becomes unreachable.
func (ca *CA) Stop() {
	for _, p := range ca.procs {
		p.kill()
	}
}

// waitReady polls the directory until Pebble answers, and the DNS
// server until it answers a query.
func (ca *CA) waitReady(t testing.TB, dns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", dns)
	}}
	last := "no answer"
	for {
		if _, err := r.LookupHost(ctx, "ready.test"); err != nil {
			last = "dns: " + err.Error()
		} else if _, err := ca.get(ctx, ca.Directory); err != nil {
			last = err.Error()
		} else {
			return
		}
		for _, p := range ca.procs {
			select {
			case <-p.exited:
				t.Fatalf("pebble exited while starting:\n%s", p.out.String())
			default:
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("pebble did not start: %s", last)
		}
	}
}

func (ca *CA) get(ctx context.Context, url string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := ca.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// IssuerRoots returns the root that Pebble's certificates chain to (made
// anew by every Pebble), from its management interface.
func (ca *CA) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := ca.get(ctx, ca.mgmt+"/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root is not PEM: %q", b)
	}
	return pool
}

// serverCert makes a root and a certificate for 127.0.0.1 signed by it,
// for Pebble's own HTTPS, and writes them as PEM files.
func serverCert(t testing.TB, dir string) (rootFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wschan pebbletest root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(rootCert)
	return write("root.pem", "CERTIFICATE", rootDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), pool
}

// Port returns the port of a host:port address, for Options.
func Port(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
