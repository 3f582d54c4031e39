package server

import (
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/wschan/wschan"
)

func init() {
	// The package's tests run on each engine in turn: scripts/test sets
	// WSCHAN_TEST_ENGINE for the second run.
	if e := os.Getenv("WSCHAN_TEST_ENGINE"); e != "" {
		defaultEngine = wschan.Engine(e)
	}
}

// WithACMECheck returns c checking every d that ACME renewal happened.
func WithACMECheck(c Config, d time.Duration) Config {
	c.acmeCheckEvery = d
	return c
}

// ParseXFF, ParseForwarded and ParseXRealIP export the forwarding header
// parsers to the tests.
var (
	ParseXFF       = parseXFF
	ParseForwarded = parseForwarded
	ParseXRealIP   = parseXRealIP
	ErrForwarded   = errForwarded
)

// Client is who the server takes r to come from.
type Client struct {
	IP     netip.Addr
	Port   uint16
	Via    string // peer, proxy-protocol, forwarded, x-forwarded-for, x-real-ip
	Local  bool   // exempt from the per-IP and rate limits
	ErrMsg string // a forwarding header ignored, and why
}

// ClientOf works out r's client with s's configuration.
func ClientOf(s *Server, r *http.Request) Client {
	c := s.clientOf(r)
	return Client{IP: c.ip, Port: c.port, Via: c.via, Local: c.local, ErrMsg: c.errMsg}
}
