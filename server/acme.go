package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// Retry waits after a failed attempt to obtain a certificate: doubling
// from acmeRetryMin to acmeRetryMax, or what the CA's Retry-After says if
// longer. Handshakes for a name in its wait fail at once instead of asking
// the CA again (autocert alone would ask on every handshake).
const (
	acmeRetryMin   = time.Minute
	acmeRetryMax   = time.Hour
	acmeCheckEvery = time.Hour // how often the server checks that renewal happened
)

// acmeTLS is automatic HTTPS: golang.org/x/crypto/acme/autocert obtains,
// stores and renews the certificates; acmeTLS adds what a public server
// needs around it: a wait between failed attempts, the CA's errors in the
// log in plain words, issuance at start instead of at the first
// handshake, and a check that renewal happens.
//
// Its lifetime is the Server's: close ends every request to the CA.
type acmeTLS struct {
	mgr       *autocert.Manager
	domains   []string
	ca        string
	dir       string
	httpsPort string // port in redirects; "" for 443
	log       *slog.Logger
	checks    time.Duration // renewal check interval

	ctx    context.Context // ends at close: every request to the CA ends with it
	cancel context.CancelFunc

	mu    sync.Mutex
	fails map[string]*acmeFailure // by domain, while it has no certificate
	last  error                   // the CA's last error, for the renewal check
}

type acmeFailure struct {
	n     int       // failed attempts in a row
	until time.Time // no new attempt before
	err   error
}

// newACME checks the storage directory and the CA root and builds the
// manager; nothing talks to the CA yet.
func newACME(c Config) (*acmeTLS, error) {
	dir := c.ACMEDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, newConfigError("{ACMEDir} has no default here (%v): set it", err)
		}
		dir = filepath.Join(base, "wschan", "acme")
	}
	if err := checkACMEDir(dir); err != nil {
		return nil, newConfigError("{ACMEDir} %s: %v", dir, err)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.ACMECARoot != "" {
		pool, err := loadRoots(c.ACMECARoot)
		if err != nil {
			return nil, newConfigError("{ACMECARoot} %s: %v", c.ACMECARoot, err)
		}
		tlsCfg.RootCAs = pool
	}
	_, port, _ := net.SplitHostPort(c.Addr)
	if port == "443" {
		port = ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &acmeTLS{
		domains:   c.ACMEDomains,
		ca:        c.ACMECA,
		dir:       dir,
		httpsPort: port,
		log:       c.Logger,
		checks:    cmp.Or(c.acmeCheckEvery, acmeCheckEvery),
		ctx:       ctx,
		cancel:    cancel,
		fails:     map[string]*acmeFailure{},
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true, // a few requests a month; no idle connections to own
	}
	a.mgr = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      acmeCache{autocert.DirCache(dir), a},
		HostPolicy: autocert.HostWhitelist(c.ACMEDomains...),
		Email:      c.ACMEEmail,
		Client: &acme.Client{
			DirectoryURL: c.ACMECA,
			HTTPClient:   &http.Client{Transport: &caTransport{base: base, a: a}},
			UserAgent:    "wschan",
			RetryBackoff: acmeBackoff,
		},
	}
	return a, nil
}

// checkACMEDir makes dir (0700) and checks that it can be listed and
// written, so that a bad --acme-dir is a configuration error at start,
// not a certificate lost after the CA issued it.
func checkACMEDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create it: %w", err)
	}
	if _, err := os.ReadDir(dir); err != nil {
		return fmt.Errorf("cannot read it: %w", err)
	}
	f, err := os.CreateTemp(dir, ".wschan-write-check-*")
	if err != nil {
		return fmt.Errorf("cannot write in it: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// loadRoots reads PEM certificates from file into a new pool.
func loadRoots(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("a certificate in it cannot be parsed: %w", err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}

// acmeBackoff retries a bad nonce and a CA's server errors a few times,
// and never a rate limit: that waits for the next attempt (see failed).
func acmeBackoff(n int, _ *http.Request, res *http.Response) time.Duration {
	if n > 3 || res != nil && res.StatusCode == http.StatusTooManyRequests {
		return 0
	}
	return time.Duration(n) * 500 * time.Millisecond
}

// tlsConfig serves the ACME certificates and answers TLS-ALPN-01.
func (a *acmeTLS) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: a.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProto},
		MinVersion:     tls.VersionTLS12,
	}
}

// getCertificate is tls.Config.GetCertificate. A client that sends no
// server name (it connected by IP address) gets the first domain's
// certificate.
func (a *acmeTLS) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		return a.mgr.GetCertificate(hello) // the CA, for a TLS-ALPN-01 challenge
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name == "" {
		h := *hello
		h.ServerName = a.domains[0]
		hello, name = &h, a.domains[0]
	}
	if !slices.Contains(a.domains, name) {
		return nil, fmt.Errorf("wschan: no certificate for %q: not an --acme-domain", name)
	}
	if err := a.waiting(name); err != nil {
		return nil, err
	}
	cert, err := a.mgr.GetCertificate(hello)
	if err != nil {
		a.failed(name, err)
		return nil, err
	}
	a.mu.Lock()
	delete(a.fails, name)
	a.mu.Unlock()
	return cert, nil
}

// waiting returns the last error for name while it waits for its next
// attempt.
func (a *acmeTLS) waiting(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.fails[name]; f != nil && time.Now().Before(f.until) {
		return fmt.Errorf("wschan: no certificate for %s yet, next attempt after %s: %w", name, f.until.Format(time.TimeOnly), f.err)
	}
	return nil
}

// failed records a failed attempt for name, sets the wait before the next
// and logs it once.
func (a *acmeTLS) failed(name string, err error) {
	if a.ctx.Err() != nil {
		return // shutting down: requests to the CA were cut short
	}
	a.mu.Lock()
	f := a.fails[name]
	if f == nil {
		f = &acmeFailure{}
		a.fails[name] = f
	}
	now := time.Now()
	if now.Before(f.until) {
		a.mu.Unlock()
		return // a handshake that waited on the same attempt
	}
	f.n++
	wait := min(acmeRetryMin<<min(f.n-1, 10), acmeRetryMax)
	if ra := retryAfter(err, now); ra > wait {
		wait = ra
	}
	f.until, f.err = now.Add(wait), err
	a.mu.Unlock()
	a.log.Error("acme: no certificate for "+name+": "+explainACME(err, a.ca), "domain", name, "next_attempt_in", wait.Round(time.Second), "err", err)
}

// retryAfter is the wait a CA's error asks for, or 0.
func retryAfter(err error, now time.Time) time.Duration {
	var ae *acme.Error
	if !errors.As(err, &ae) || ae.Header == nil {
		return 0
	}
	v := ae.Header.Get("Retry-After")
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}

// explainACME says in plain words what went wrong talking to the CA at ca
// and what to do about it.
func explainACME(err error, ca string) string {
	var ae *acme.Error
	var ue x509.UnknownAuthorityError
	var ce *tls.CertificateVerificationError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &ae):
		kind := ae.ProblemType[strings.LastIndex(ae.ProblemType, ":")+1:]
		switch kind {
		case "rateLimited":
			return "the CA's rate limit is reached, so it issues nothing for now: " + ae.Detail
		case "rejectedIdentifier", "unsupportedIdentifier", "caa", "malformed":
			return "the CA will not issue a certificate for this name (check --acme-domain): " + ae.Detail
		case "unauthorized", "connection", "dns", "incorrectResponse", "tls":
			return "the CA could not confirm that this server answers for the name: " + ae.Detail + unreachableHint
		case "accountDoesNotExist", "externalAccountRequired", "userActionRequired":
			return "the CA refused the account: " + ae.Detail
		}
		return "the CA refused (" + kind + "): " + ae.Detail
	case strings.Contains(err.Error(), "unable to satisfy"):
		return "the CA could not confirm that this server answers for the name by TLS-ALPN-01 (on --addr) or HTTP-01 (on --http-addr)" + unreachableHint
	case errors.As(err, &ue), errors.As(err, &ce):
		return "the CA's HTTPS certificate at " + ca + " is not trusted; for a private CA, give its root with --acme-ca-root"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "the CA at " + ca + " did not answer in time"
	case errors.As(err, &oe):
		return "the CA at " + ca + " is unreachable (check --acme-ca and this machine's network)"
	}
	return "asking the CA at " + ca + " failed"
}

const unreachableHint = "; the name's DNS must point at this server, and port 443 (--addr) or 80 (--http-addr) must be reachable from the internet"

// httpHandler serves the plain-HTTP listener: HTTP-01 challenges,
// /healthz and /readyz (so health checks work before a certificate
// exists), and a redirect to https for everything else.
func (a *acmeTLS) httpHandler(health http.Handler) http.Handler {
	h := a.mgr.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			health.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !slices.Contains(a.domains, strings.ToLower(host)) {
			host = a.domains[0] // never redirect to a name the client made up
		}
		if a.httpsPort != "" {
			host = net.JoinHostPort(host, a.httpsPort)
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert checks the Host against the domains as it is; a CA
		// that validates on a port other than 80 sends it with the port.
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = h
		}
		h.ServeHTTP(w, r)
	})
}

// run obtains a certificate for every domain that has none (from the
// directory or the CA), retrying after each failure's wait, then checks
// every a.checks that renewal keeps them from expiring. It returns when
// ctx ends.
func (a *acmeTLS) run(ctx context.Context) {
	pending := slices.Clone(a.domains)
	for len(pending) > 0 {
		next := acmeRetryMax
		var left []string
		for _, d := range pending {
			cert, err := a.getCertificate(acmeHello(d))
			if err == nil {
				a.log.Info("acme: serving a certificate for "+d, "domain", d, "not_after", cert.Leaf.NotAfter, "issuer", cert.Leaf.Issuer.CommonName)
				continue
			}
			left = append(left, d)
			a.mu.Lock()
			if f := a.fails[d]; f != nil {
				next = min(next, time.Until(f.until))
			}
			a.mu.Unlock()
		}
		pending = left
		if len(pending) == 0 {
			break
		}
		if !sleep(ctx, max(next, time.Second)) {
			return
		}
	}
	for sleep(ctx, a.checks) {
		a.checkRenewal()
	}
}

// checkRenewal warns about a certificate that autocert should have renewed
// (less than a third of its lifetime left, less a margin for its jitter)
// and has not.
func (a *acmeTLS) checkRenewal() {
	for _, d := range a.domains {
		cert, err := a.getCertificate(acmeHello(d))
		if err != nil {
			continue // logged by failed
		}
		leaf := cert.Leaf
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		threshold := min(life/3, 30*24*time.Hour) - min(life/30, time.Hour) - a.checks
		if left := time.Until(leaf.NotAfter); left < threshold {
			a.mu.Lock()
			last := a.last
			a.mu.Unlock()
			why := "no error from the CA was seen"
			if last != nil {
				why = "the CA's last error: " + explainACME(last, a.ca)
			}
			a.log.Warn("acme: the certificate for "+d+" is not renewed yet and expires at "+leaf.NotAfter.Format(time.RFC3339)+"; "+why,
				"domain", d, "not_after", leaf.NotAfter, "err", last)
		}
	}
}

// acmeHello is the ClientHello of a modern client for domain: autocert
// picks an ECDSA certificate for it, as for browsers (an empty hello
// would get RSA).
func acmeHello(domain string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        domain,
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// sleep waits d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// close ends every request to the CA, now and later. Renewal timers set
// by autocert stay, harmless: they fail at once.
func (a *acmeTLS) close() { a.cancel() }

// caTransport ties requests to the CA to a.ctx, remembers the CA's last
// error for the renewal check, and adds the order's Location to a
// finalize response that lacks it: RFC 8555 does not require it and
// Pebble leaves it out, but x/crypto/acme then polls an empty URL while
// the order is processing (see golang/go#73504).
type caTransport struct {
	base http.RoundTripper
	a    *acmeTLS

	mu     sync.Mutex
	orders map[string]string // finalize URL → order URL, from new-order responses
}

func (t *caTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.a.ctx.Err(); err != nil {
		return nil, fmt.Errorf("wschan: server stopped: %w", err)
	}
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.a.ctx, cancel)
	res, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		cancel()
		t.a.note(&net.OpError{Op: "dial", Net: "tcp", Err: err})
		return nil, err
	}
	if res.StatusCode >= 400 && res.Header.Get("Content-Type") == "application/problem+json" {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		var pe struct{ Type, Detail string }
		_ = json.Unmarshal(body, &pe)
		if !strings.HasSuffix(pe.Type, ":badNonce") {
			t.a.note(&acme.Error{StatusCode: res.StatusCode, ProblemType: pe.Type, Detail: pe.Detail, Header: res.Header})
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		stop()
		cancel()
		return res, nil
	}
	if res.StatusCode == http.StatusCreated && res.Header.Get("Location") != "" && req.Method == http.MethodPost {
		// Perhaps a new order: read its finalize URL.
		body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		stop()
		cancel()
		if err != nil {
			return nil, err
		}
		var o struct{ Finalize string }
		if json.Unmarshal(body, &o) == nil && o.Finalize != "" {
			t.mu.Lock()
			if t.orders == nil || len(t.orders) > 100 {
				t.orders = map[string]string{}
			}
			t.orders[o.Finalize] = res.Header.Get("Location")
			t.mu.Unlock()
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		return res, nil
	}
	if res.StatusCode == http.StatusOK && req.Method == http.MethodPost && res.Header.Get("Location") == "" {
		t.mu.Lock()
		if u, ok := t.orders[req.URL.String()]; ok {
			res.Header.Set("Location", u)
		}
		t.mu.Unlock()
	}
	res.Body = &cancelBody{ReadCloser: res.Body, done: func() { stop(); cancel() }}
	return res, nil
}

// note remembers the CA's last error.
func (a *acmeTLS) note(err error) {
	a.mu.Lock()
	a.last = err
	a.mu.Unlock()
}

type cancelBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// acmeCache is autocert's directory cache that logs each certificate it
// stores (obtained or renewed) and each failure to store one.
type acmeCache struct {
	autocert.Cache
	a *acmeTLS
}

func (c acmeCache) Put(ctx context.Context, key string, data []byte) error {
	err := c.Cache.Put(ctx, key, data)
	domain := strings.TrimSuffix(key, "+rsa")
	if !slices.Contains(c.a.domains, domain) {
		return err // the account key, challenge tokens
	}
	if err != nil {
		c.a.log.Error("acme: cannot store the certificate for "+domain+" in --acme-dir "+c.a.dir+": it is served until the server stops, then asked for again", "domain", domain, "err", err)
		return err
	}
	attrs := []any{"domain", domain, "dir", c.a.dir}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if leaf, err := x509.ParseCertificate(b.Bytes); err == nil {
				attrs = append(attrs, "not_after", leaf.NotAfter, "issuer", leaf.Issuer.CommonName)
			}
			break
		}
	}
	c.a.log.Info("acme: obtained a certificate for "+domain, attrs...)
	return nil
}
