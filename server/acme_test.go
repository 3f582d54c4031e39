package server_test

// Automatic HTTPS against Pebble, the ACME test server (internal/pebbletest):
// Pebble resolves every name to 127.0.0.1 and validates TLS-ALPN-01 and
// HTTP-01 against the server's loopback ports. Pebble is built from the Go
// module proxy; without it these tests skip, or fail under
// WSCHAN_REQUIRE_PEERS=1.

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
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/pebbletest"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

const acmeName = "ws.wschan.test"

// acmeServer is a server with ACME on two loopback ports.
type acmeServer struct {
	https, http string // host:port
	log         *wstest.SyncBuffer
	stop        func()
}

// freeAddrs returns n loopback addresses whose ports were free.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var as []string
	for range n {
		a, err := wstest.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	return as
}

// startACME runs a server with cfg (Addr and HTTPAddr set) until stop or
// the end of the test.
func startACME(t *testing.T, cfg server.Config) *acmeServer {
	t.Helper()
	logs := &wstest.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	a := &acmeServer{https: cfg.Addr, http: cfg.HTTPAddr, log: logs}
	a.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return a
}

// waitLog waits until the server's log holds want.
func (a *acmeServer) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(a.log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q", want)
		}
		<-tick.C
	}
}

// serverCert does a TLS handshake as acmeName, verifying against roots,
// and returns the server's leaf certificate.
func (a *acmeServer) serverCert(roots *x509.CertPool) (*x509.Certificate, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{ServerName: acmeName, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", a.https)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// echoOverWSS connects to wss://acmeName:port/ws, trusting only roots,
// and checks one echo.
func (a *acmeServer) echoOverWSS(t *testing.T, roots *x509.CertPool) {
	t.Helper()
	_, port, _ := net.SplitHostPort(a.https)
	ctx := wstest.Context(t, 30*time.Second)
	ch, err := wschan.Dial(ctx, "wss://"+acmeName+":"+port+"/ws", &wschan.DialOptions{
		TLSConfig: &tls.Config{RootCAs: roots},
		NetDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, network, a.https) // acmeName is this machine
		},
	})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer ch.Close(wschan.StatusNormalClosure, "")
	if err := ch.SendText(ctx, "over ACME"); err != nil {
		t.Fatal(err)
	}
	if m := wstest.Read(t, ch); string(m.Data) != "over ACME" {
		t.Fatalf("echo = %q", m.Data)
	}
}

func acmeConfig(ca *pebbletest.CA, https, http, dir string) server.Config {
	return server.Config{
		Addr: https, HTTPAddr: http, ACMEDomains: []string{acmeName},
		ACMECA: ca.Directory, ACMECARoot: ca.RootFile, ACMEDir: dir, DrainTimeout: 5 * time.Second,
	}
}

// TestACMEIssueAndRestart obtains a certificate by each challenge, serves
// wss with it, redirects plain HTTP, and after a restart with the CA gone
// serves the stored certificate.
func TestACMEIssueAndRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		challenge string // the one Pebble can reach; the other points at a closed port
	}{
		{"tls-alpn-01", "tls-alpn-01"},
		{"http-01", "http-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			as := freeAddrs(t, 3)
			https, plain, closed := as[0], as[1], as[2]
			opts := pebbletest.Options{HTTPPort: pebbletest.Port(t, closed), TLSPort: pebbletest.Port(t, https)}
			if tc.challenge == "http-01" {
				opts = pebbletest.Options{HTTPPort: pebbletest.Port(t, plain), TLSPort: pebbletest.Port(t, closed)}
			}
			ca := pebbletest.Start(t, opts)
			roots := ca.IssuerRoots(t)
			dir := t.TempDir()

			srv := startACME(t, acmeConfig(ca, https, plain, dir))
			srv.waitLog(t, "acme: obtained a certificate for "+acmeName)
			srv.echoOverWSS(t, roots)
			first, err := srv.serverCert(roots)
			if err != nil {
				t.Fatal(err)
			}

			// Plain HTTP: health checks answer, everything else goes to https.
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noRedirect.Get("http://" + plain + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /healthz on --http-addr: %v %v", resp, err)
			}
			resp.Body.Close()
			req, _ := http.NewRequest(http.MethodGet, "http://"+plain+"/ws?x=1", nil)
			req.Host = acmeName
			resp, err = noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			_, port, _ := net.SplitHostPort(https)
			if want := "https://" + acmeName + ":" + port + "/ws?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
				t.Fatalf("redirect = %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			srv.stop()

			// Restart with the CA gone: the stored certificate is served.
			ca.Stop()
			again := startACME(t, acmeConfig(ca, https, plain, dir))
			again.waitLog(t, "acme: serving a certificate for "+acmeName)
			again.echoOverWSS(t, roots)
			cert, err := again.serverCert(roots)
			if err != nil {
				t.Fatal(err)
			}
			if cert.SerialNumber.Cmp(first.SerialNumber) != 0 {
				t.Fatalf("after restart serial %x, want the stored %x", cert.SerialNumber, first.SerialNumber)
			}
			if strings.Contains(again.log.String(), "acme: obtained") || strings.Contains(again.log.String(), "acme: no certificate") {
				t.Fatalf("restart asked the CA:\n%s", again.log.String())
			}
		})
	}
}

// TestACMERenewal makes the stored certificate nearly expired and checks
// that the restarted server renews it from the CA.
func TestACMERenewal(t *testing.T) {
	t.Parallel()
	as := freeAddrs(t, 3)
	https, plain, closed := as[0], as[1], as[2]
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: pebbletest.Port(t, closed), TLSPort: pebbletest.Port(t, https)})
	roots := ca.IssuerRoots(t)
	dir := t.TempDir()
	srv := startACME(t, acmeConfig(ca, https, plain, dir))
	srv.waitLog(t, "acme: obtained a certificate for "+acmeName)
	srv.stop()

	nearExpiry(t, filepath.Join(dir, acmeName))
	again := startACME(t, acmeConfig(ca, https, plain, dir))
	again.waitLog(t, "acme: obtained a certificate for "+acmeName)
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		cert, err := again.serverCert(roots) // fails while the old one is served
		if err == nil {
			if time.Until(cert.NotAfter) < 24*time.Hour {
				t.Fatalf("renewed certificate expires at %v", cert.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was never served: %v", err)
		}
	}
	again.echoOverWSS(t, roots)
}

// TestACMERenewalFails makes the stored certificate nearly expired and
// the CA unreachable: the server keeps serving the old certificate and
// warns, in plain words, that it is not renewed.
func TestACMERenewalFails(t *testing.T) {
	t.Parallel()
	as := freeAddrs(t, 3)
	https, plain, closed := as[0], as[1], as[2]
	ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: pebbletest.Port(t, closed), TLSPort: pebbletest.Port(t, https)})
	dir := t.TempDir()
	srv := startACME(t, acmeConfig(ca, https, plain, dir))
	srv.waitLog(t, "acme: obtained a certificate for "+acmeName)
	srv.stop()
	ca.Stop()

	nearExpiry(t, filepath.Join(dir, acmeName))
	again := startACME(t, server.WithACMECheck(acmeConfig(ca, https, plain, dir), 50*time.Millisecond))
	again.waitLog(t, "acme: the certificate for "+acmeName+" is not renewed yet and expires at")
	again.waitLog(t, "the CA's last error: the CA at "+ca.Directory+" is unreachable")
	d := &tls.Dialer{Config: &tls.Config{ServerName: acmeName, InsecureSkipVerify: true}}
	c, err := d.DialContext(t.Context(), "tcp", https)
	if err != nil {
		t.Fatalf("the old certificate is not served: %v", err)
	}
	defer c.Close()
	if got := c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 99 {
		t.Fatalf("served serial %d, want the stored 99", got)
	}
}

// nearExpiry replaces the certificate autocert stored in file (PEM: the
// key, then the chain) with one for the same key and name that has an
// hour left of a 90-day life, signed by a throwaway CA.
func nearExpiry(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	keyBlock, _ := pem.Decode(data)
	if keyBlock == nil || !strings.Contains(keyBlock.Type, "PRIVATE KEY") {
		t.Fatalf("stored certificate file starts with %v, not a key", keyBlock)
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: acmeName}, DNSNames: []string{acmeName},
		NotBefore: time.Now().Add(-90*24*time.Hour + time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	issuer := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "throwaway"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	out := append(pem.EncodeToMemory(keyBlock), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestACMEErrors checks that what goes wrong with the CA reaches the log
// in plain words while the server keeps answering health checks.
func TestACMEErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ca   func(t *testing.T, https, plain string) (dir, root string)
		want string
	}{
		{"domain refused", func(t *testing.T, https, plain string) (string, string) {
			ca := pebbletest.Start(t, pebbletest.Options{HTTPPort: pebbletest.Port(t, plain), TLSPort: pebbletest.Port(t, https), Blocklist: []string{acmeName}})
			return ca.Directory, ca.RootFile
		}, "the CA will not issue a certificate for this name (check --acme-domain)"},
		{"CA unreachable", func(t *testing.T, _, _ string) (string, string) {
			return "https://" + freeAddrs(t, 1)[0] + "/dir", ""
		}, "is unreachable (check --acme-ca and this machine's network)"},
		{"rate limited", func(t *testing.T, _, _ string) (string, string) {
			return rateLimitedCA(t)
		}, "the CA's rate limit is reached, so it issues nothing for now: too many certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			as := freeAddrs(t, 2)
			https, plain := as[0], as[1]
			dir, root := tc.ca(t, https, plain)
			srv := startACME(t, server.Config{
				Addr: https, HTTPAddr: plain, ACMEDomains: []string{acmeName},
				ACMECA: dir, ACMECARoot: root, ACMEDir: t.TempDir(), DrainTimeout: 5 * time.Second,
			})
			srv.waitLog(t, tc.want)
			resp, err := http.Get("http://" + plain + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /healthz on --http-addr: %v %v", resp, err)
			}
			resp.Body.Close()
			// The handshake fails at once (waiting for the next attempt),
			// and the server goes on.
			if _, err := srv.serverCert(nil); err == nil {
				t.Fatal("TLS handshake succeeded without a certificate")
			}
			if n := strings.Count(srv.log.String(), "acme: no certificate for"); n != 1 {
				t.Fatalf("%d failures logged, want 1 (the next attempt waits):\n%s", n, srv.log.String())
			}
		})
	}
}

// rateLimitedCA is a fake ACME CA, since Pebble has no rate limits: it
// creates accounts and answers every new order with the rateLimited
// problem Let's Encrypt sends. It returns its directory URL and a file
// with its root.
func rateLimitedCA(t *testing.T) (dir, root string) {
	t.Helper()
	var base string
	mux := http.NewServeMux()
	mux.HandleFunc("/dir", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"newNonce": base + "/nonce", "newAccount": base + "/account", "newOrder": base + "/order"})
	})
	mux.HandleFunc("/nonce", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Replay-Nonce", fmt.Sprint(time.Now().UnixNano()))
	})
	mux.HandleFunc("/account", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Replay-Nonce", fmt.Sprint(time.Now().UnixNano()))
		w.Header().Set("Location", base+"/account/1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"status":"valid"}`)
	})
	mux.HandleFunc("/order", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Replay-Nonce", fmt.Sprint(time.Now().UnixNano()))
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s"}`)
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	base = srv.URL
	root = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/dir", root
}

// TestACMEConfigErrors checks each bad ACME setting gives ErrConfig that
// names the setting, before anything listens.
func TestACMEConfigErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	notPEM := filepath.Join(tmp, "notpem")
	for _, f := range []string{file, notPEM} {
		if err := os.WriteFile(f, []byte("not a certificate\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ok := func(c server.Config) server.Config {
		c.Addr = "127.0.0.1:0"
		if c.ACMEDomains == nil {
			c.ACMEDomains = []string{"ws.example.com"}
		}
		if c.ACMEDir == "" {
			c.ACMEDir = filepath.Join(tmp, "acme")
		}
		return c
	}
	cases := []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"IP address", ok(server.Config{ACMEDomains: []string{"192.0.2.1"}}), `ACMEDomains "192.0.2.1" is not a valid DNS name: it is an IP address`},
		{"no dot", ok(server.Config{ACMEDomains: []string{"localhost"}}), "it needs at least one dot"},
		{"underscore", ok(server.Config{ACMEDomains: []string{"my_host.example.com"}}), "is not a valid DNS name"},
		{"space", ok(server.Config{ACMEDomains: []string{"ws example.com"}}), "is not a valid DNS name"},
		{"wildcard", ok(server.Config{ACMEDomains: []string{"*.example.com"}}), "wildcard names need the DNS-01 challenge"},
		{"label too long", ok(server.Config{ACMEDomains: []string{strings.Repeat("a", 64) + ".example.com"}}), "1 to 63 characters"},
		{"leading hyphen", ok(server.Config{ACMEDomains: []string{"-ws.example.com"}}), `ACMEDomains "-ws.example.com" is not a valid DNS name`},
		{"empty", ok(server.Config{ACMEDomains: []string{""}}), "it is empty"},
		{"with tls-cert", ok(server.Config{TLSCert: "c.pem", TLSKey: "k.pem"}), "ACMEDomains and TLSCert exclude each other"},
		{"with tls-self-signed", ok(server.Config{TLSSelfSigned: true}), "ACMEDomains and TLSSelfSigned exclude each other"},
		{"email without domain", server.Config{ACMEEmail: "a@example.com"}, "ACMEEmail needs ACMEDomains"},
		{"http-addr without domain", server.Config{HTTPAddr: ":80"}, "HTTPAddr needs ACMEDomains"},
		{"bad email", ok(server.Config{ACMEEmail: "not an address"}), "ACMEEmail"},
		{"plain http CA", ok(server.Config{ACMECA: "http://ca.example.com/dir"}), "ACMECA \"http://ca.example.com/dir\" is not the https:// URL"},
		{"same ports", ok(server.Config{HTTPAddr: "127.0.0.1:0"}), "HTTPAddr and Addr are both"},
		{"dir is a file", ok(server.Config{ACMEDir: file}), "ACMEDir " + file + ": cannot create it"},
		{"dir under a file", ok(server.Config{ACMEDir: filepath.Join(file, "acme")}), "cannot create it"},
		{"CA root not PEM", ok(server.Config{ACMECARoot: notPEM}), "ACMECARoot " + notPEM + ": it holds no PEM certificate"},
		{"CA root missing", ok(server.Config{ACMECARoot: filepath.Join(tmp, "missing.pem")}), "ACMECARoot " + filepath.Join(tmp, "missing.pem") + ": cannot read it"},
	}
	if runtime.GOOS == "linux" {
		// Not writable even for root (the tests run as root in CI).
		cases = append(cases, struct {
			name string
			cfg  server.Config
			want string
		}{"dir not writable", ok(server.Config{ACMEDir: "/proc/self"}), "ACMEDir /proc/self: cannot write in it"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := server.New(tc.cfg)
			if !errors.Is(err, server.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v\nwant ErrConfig with %q", err, tc.want)
			}
		})
	}
}
