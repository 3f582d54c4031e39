// Package server is `wschan serve`: the echo server that replaces the
// public echo services WebSocket tutorials point to.
//
// On one listener it serves /ws (and / for WebSocket upgrades), which
// echoes every message unchanged; /ws/room/{name}, which sends every
// message a member sends to every member of the room; test scenarios for client developers
// (/ws/close/{code}, /ws/delay/{duration}, /ws/silent, /ws/drop); /healthz,
// /readyz and /metrics (Prometheus); and a page at /. Every connection is
// bounded: message size (1009), rate (1008), connections in all and per IP
// (HTTP 503 with Retry-After before the upgrade), handshake, idle, ping and
// write timeouts. Shutdown drains: not ready, 1001 to every client, a
// bounded wait. Clients on this machine (loopback) are exempt from the
// per-IP and rate limits unless Config.LimitLoopback is set or a loopback
// address is a trusted proxy, so local tools measure the server, not its
// limits.
//
// Behind proxies, Config.TrustedProxies says whose Forwarded,
// X-Forwarded-For and X-Real-IP headers to believe, and
// Config.ProxyProtocol reads PROXY protocol v1/v2 headers from them; limits,
// logs and metrics then use the real client's address.
//
// Automatic HTTPS: with Config.ACMEDomains the server obtains and renews
// its certificates from an ACME CA (Let's Encrypt by default), answering
// TLS-ALPN-01 on Addr and HTTP-01 on a plain-HTTP listener (HTTPAddr) that
// also serves /healthz and redirects the rest to https. It uses
// golang.org/x/crypto/acme/autocert rather than caddyserver/certmagic:
// two small modules instead of a dozen (zap, acmez, libdns, miekg/dns),
// and no package-level state; acme.go adds what autocert lacks for a
// public server: a wait between failed attempts, the CA's errors in the
// log in plain words, issuance at start, and a check that renewal happens.
//
// It accepts any Origin by default: it holds no credentials or per-user
// state, so a page on another site gains nothing by using a visitor's
// browser against it. Restrict it with Config.AllowedOrigins when it does.
//
// Rooms come from the rooms package, a library one level above wschan (it
// imports only wschan), not a feature package: server uses it as it uses
// wschan. Config.RoomBroker takes any rooms.Broker, so cmd/wschan can
// hand in a NATS broker without server importing NATS.
//
// Start with Config, New and Server.Run. Dependencies:
// github.com/prometheus/client_golang for /metrics (the standard exporter,
// with Go and process collectors), golang.org/x/time/rate for the
// per-connection token bucket, and github.com/pires/go-proxyproto for the
// PROXY protocol (v1 and v2, with per-peer policies, a header timeout and
// bounded header sizes; the library Caddy and Traefik use), and
// golang.org/x/crypto/acme/autocert for ACME (see above).
package server
