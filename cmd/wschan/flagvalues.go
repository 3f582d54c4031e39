package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Flag value types shared by the subcommands, and the names of the flags
// that set server.Config's fields.

// value is a flag value: parse reads it, format shows it (in --help for
// the default), and parse's errors say what to write instead, for flags
// and WSCHAN_* variables alike.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
	typ    string
}

func (v value[T]) String() string {
	if v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

func (v value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v value[T]) Type() string { return v.typ }

func boolValue(p *bool) value[bool] {
	return value[bool]{p, func(s string) (bool, error) {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, errors.New("want true or false")
		}
		return b, nil
	}, strconv.FormatBool, "bool"}
}

func intValue(p *int) value[int] {
	return value[int]{p, func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, errors.New("want a whole number, such as 100")
		}
		return n, nil
	}, strconv.Itoa, "int"}
}

func floatValue(p *float64) value[float64] {
	return value[float64]{p, func(s string) (float64, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("want a number, such as 100 or 0.5")
		}
		return f, nil
	}, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }, "float"}
}

// prefixesValue reads comma-separated IP addresses (one address each) and
// CIDR ranges.
func prefixesValue(p *[]netip.Prefix) value[[]netip.Prefix] {
	return value[[]netip.Prefix]{p, func(s string) ([]netip.Prefix, error) {
		var ps []netip.Prefix
		for _, f := range strings.Split(s, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			if pr, err := netip.ParsePrefix(f); err == nil {
				ps = append(ps, pr)
			} else if ip, err := netip.ParseAddr(f); err == nil && ip.Zone() == "" {
				ps = append(ps, netip.PrefixFrom(ip, ip.BitLen()))
			} else {
				return nil, fmt.Errorf("%q is not an IP address or CIDR range: want addresses and ranges such as 10.0.0.0/8,192.168.1.5,::1", f)
			}
		}
		return ps, nil
	}, func(ps []netip.Prefix) string {
		var ss []string
		for _, p := range ps {
			if p.IsSingleIP() {
				ss = append(ss, p.Addr().String())
			} else {
				ss = append(ss, p.String())
			}
		}
		return strings.Join(ss, ",")
	}, "cidrs"}
}

func sizeValue(p *int64) value[int64] { return value[int64]{p, parseSize, formatSize, "size"} }

// durationValue reads a duration; with off, also "off" (and -1), stored as -1.
func durationValue(p *time.Duration, off bool) value[time.Duration] {
	hint := "want a duration, such as 10s, 1m30s or 500ms"
	if off {
		hint += ", or off"
	}
	return value[time.Duration]{p, func(s string) (time.Duration, error) {
		if t := strings.ToLower(strings.TrimSpace(s)); off && (t == "off" || t == "-1") {
			return -1, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New(hint)
		}
		return d, nil
	}, func(d time.Duration) string {
		if off && d < 0 {
			return "off"
		}
		return d.String()
	}, "duration"}
}

func logFormatValue(p *string) value[string] {
	return value[string]{p, func(s string) (string, error) {
		if s != "text" && s != "json" {
			return "", errors.New("want text or json")
		}
		return s, nil
	}, func(s string) string { return s }, "format"}
}

func levelValue(p *slog.Level) value[slog.Level] {
	return value[slog.Level]{p, func(s string) (slog.Level, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(s)); err != nil {
			return 0, errors.New("want debug, info, warn or error")
		}
		return l, nil
	}, func(l slog.Level) string { return strings.ToLower(l.String()) }, "level"}
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"b", 1}, {"", 1},
}

// parseSize reads a byte count: digits, then optionally (in any case, after
// optional spaces) B, KiB, MiB, GiB (powers of 1024) or kB, MB, GB (powers
// of 1000). "1MiB" is 1048576.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	bad := errors.New("want bytes (1048576) or a size with a KiB, MiB or GiB suffix (1MiB)")
	if i == 0 {
		return 0, bad
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	for _, u := range sizeUnits {
		if unit != u.suffix {
			continue
		}
		n, err := strconv.ParseInt(t[:i], 10, 64)
		if err != nil || n > math.MaxInt64/u.mult {
			return 0, errors.New("too large: at most 8EiB")
		}
		return n * u.mult, nil
	}
	return 0, bad
}

// formatSize writes n with the largest binary suffix that divides it:
// 1048576 is "1MiB", 1000 is "1000".
func formatSize(n int64) string {
	for _, u := range sizeUnits[:3] {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + strings.ToUpper(u.suffix[:1]) + "iB"
		}
	}
	return strconv.FormatInt(n, 10)
}

// configFlags names the serve flag that sets each server.Config field, so
// that a refused configuration is worded as the command line
// (serveOptions.configError). TestConfigFlags checks it against both.
var configFlags = map[string]string{
	"Addr": "addr", "Greeting": "greeting", "MaxMessageSize": "max-message-size",
	"MaxConns": "max-conns", "MaxConnsPerIP": "max-conns-per-ip",
	"MessageRate": "message-rate", "MessageBurst": "message-burst",
	"TrustedProxies": "trusted-proxies", "ProxyProtocol": "proxy-protocol", "LimitLoopback": "limit-loopback",
	"MaxRoomMembers": "max-room-members", "MaxRooms": "max-rooms", "RoomQueue": "room-queue",
	"RoomHistory": "room-history", "RoomHistoryTTL": "room-history-ttl", "RoomPresenceInterval": "room-presence-interval",
	"HandshakeTimeout": "handshake-timeout", "IdleTimeout": "idle-timeout",
	"PingInterval": "ping-interval", "PingTimeout": "ping-timeout", "WriteTimeout": "write-timeout",
	"AllowedOrigins": "allowed-origins", "TLSCert": "tls-cert", "TLSKey": "tls-key", "TLSSelfSigned": "tls-self-signed",
	"ACMEDomains": "acme-domain", "ACMEEmail": "acme-email", "ACMECA": "acme-ca", "ACMECARoot": "acme-ca-root",
	"ACMEDir": "acme-dir", "HTTPAddr": "http-addr", "DrainTimeout": "drain-timeout",
	"Compression": "compression", "NoScenarios": "no-scenarios", "Engine": "engine",
}
