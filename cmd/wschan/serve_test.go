package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/server"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"1MiB", 1 << 20, ""},
		{"1mib", 1 << 20, ""},
		{"1 MiB", 1 << 20, ""},
		{" 64KiB ", 64 << 10, ""},
		{"2GiB", 2 << 30, ""},
		{"512B", 512, ""},
		{"1kB", 1000, ""},
		{"1MB", 1_000_000, ""},
		{"1GB", 1_000_000_000, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"", 0, "want bytes"},
		{"abc", 0, "want bytes"},
		{"MiB", 0, "want bytes"},
		{"-1", 0, "want bytes"},
		{"1.5MiB", 0, "want bytes"},
		{"1TiB", 0, "want bytes"},
		{"1 M", 0, "want bytes"},
		{"9223372036854775808", 0, "too large"},
		{"8589934592GiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSize(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 1: "1", 1000: "1000", 1024: "1KiB", 1 << 20: "1MiB", 3 << 30: "3GiB", 1536: "1536"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzParseSize checks that parseSize never panics, never returns a
// negative size, and reads back what formatSize writes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1", "1048576", "1MiB", "64 kib", "2GiB", "1MB", "abc", "-1", "1.5MiB", "9223372036854775807", "8589934591GiB", "8589934592GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if back, err := parseSize(formatSize(n)); err != nil || back != n {
			t.Fatalf("parseSize(formatSize(%d) = %q) = %d, %v", n, formatSize(n), back, err)
		}
	})
}

// mapEnv looks variables up in m, standing in for os.LookupEnv.
func mapEnv(m map[string]string) lookupEnvFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestServeConfig checks flags and WSCHAN_* variables map field by field
// onto server.Config and the logger's settings.
func TestServeConfig(t *testing.T) {
	t.Parallel()
	defaults := server.Config{
		Addr:             server.DefaultAddr,
		Engine:           server.DefaultEngine,
		MaxMessageSize:   server.DefaultMaxMessageSize,
		MaxConns:         server.DefaultMaxConns,
		MaxConnsPerIP:    server.DefaultMaxConnsPerIP,
		MessageRate:      server.DefaultMessageRate,
		HandshakeTimeout: server.DefaultHandshakeTimeout,
		IdleTimeout:      server.DefaultIdleTimeout,
		PingInterval:     server.DefaultPingInterval,
		PingTimeout:      server.DefaultPingTimeout,
		WriteTimeout:     server.DefaultWriteTimeout,
		DrainTimeout:     server.DefaultDrainTimeout,
		MaxRoomMembers:   server.DefaultMaxRoomMembers,
		MaxRooms:         server.DefaultMaxRooms,
		RoomQueue:        server.DefaultRoomQueue,
		RoomHistory:      server.DefaultRoomHistory,
		RoomHistoryTTL:   server.DefaultRoomHistoryTTL,

		RoomPresenceInterval: server.DefaultRoomPresence,
	}
	every := server.Config{
		Addr:             "0.0.0.0:9000",
		Compression:      true,
		Engine:           wschan.EnginePoll,
		Greeting:         "hi there",
		NoScenarios:      true,
		MaxMessageSize:   64 << 10,
		MaxConns:         -1,
		MaxConnsPerIP:    7,
		MessageRate:      2.5,
		MessageBurst:     9,
		LimitLoopback:    true,
		TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.5/32"), netip.MustParsePrefix("::1/128")},
		ProxyProtocol:    true,
		HandshakeTimeout: 3 * time.Second,
		IdleTimeout:      -1,
		PingInterval:     -1,
		PingTimeout:      2 * time.Second,
		WriteTimeout:     4 * time.Second,
		AllowedOrigins:   []string{"example.com", "*.example.org"},
		TLSCert:          "cert.pem",
		TLSKey:           "key.pem",
		TLSSelfSigned:    true,
		DrainTimeout:     time.Minute,
		MaxRoomMembers:   50,
		MaxRooms:         -1,
		RoomQueue:        32,
		ACMEDomains:      []string{"ws.example.com", "www.example.com"},
		ACMEEmail:        "admin@example.com",
		ACMECA:           "https://ca.example.com/dir",
		ACMECARoot:       "ca.pem",
		ACMEDir:          "/var/lib/wschan/acme",
		HTTPAddr:         ":8081",
		RoomHistory:      -1,
		RoomHistoryTTL:   time.Hour,

		RoomPresenceInterval: 2 * time.Second,
	}
	everyArgs := []string{
		"--addr", "0.0.0.0:9000", "--compression", "--engine", "poll", "--greeting", "hi there", "--no-scenarios",
		"--max-message-size", "64KiB", "--max-conns", "-1", "--max-conns-per-ip", "7",
		"--message-rate", "2.5", "--message-burst", "9", "--limit-loopback",
		"--trusted-proxies", "10.0.0.0/8, 192.168.1.5,::1", "--proxy-protocol", "--handshake-timeout", "3s",
		"--idle-timeout", "off", "--ping-interval=-1", "--ping-timeout", "2s", "--write-timeout", "4s",
		"--allowed-origins", "example.com,*.example.org", "--tls-cert", "cert.pem", "--tls-key", "key.pem",
		"--tls-self-signed", "--drain-timeout", "1m", "--log-format", "json", "--log-level", "debug",
		"--max-room-members", "50", "--max-rooms", "-1", "--room-queue", "32",
		"--acme-domain", "ws.example.com", "--acme-domain", "www.example.com", "--acme-email", "admin@example.com",
		"--acme-ca", "https://ca.example.com/dir", "--acme-ca-root", "ca.pem", "--acme-dir", "/var/lib/wschan/acme",
		"--http-addr", ":8081",
		"--room-history", "-1", "--room-history-ttl", "1h", "--room-presence-interval", "2s",
	}
	everyEnv := map[string]string{
		"WSCHAN_ADDR": "0.0.0.0:9000", "WSCHAN_COMPRESSION": "true", "WSCHAN_ENGINE": "poll", "WSCHAN_GREETING": "hi there",
		"WSCHAN_NO_SCENARIOS": "1", "WSCHAN_MAX_MESSAGE_SIZE": "64KiB", "WSCHAN_MAX_CONNS": "-1",
		"WSCHAN_MAX_CONNS_PER_IP": "7", "WSCHAN_MESSAGE_RATE": "2.5", "WSCHAN_MESSAGE_BURST": "9",
		"WSCHAN_LIMIT_LOOPBACK": "true", "WSCHAN_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.5,::1", "WSCHAN_PROXY_PROTOCOL": "1",
		"WSCHAN_HANDSHAKE_TIMEOUT": "3s", "WSCHAN_IDLE_TIMEOUT": "OFF", "WSCHAN_PING_INTERVAL": "-1",
		"WSCHAN_PING_TIMEOUT": "2s", "WSCHAN_WRITE_TIMEOUT": "4s",
		"WSCHAN_ALLOWED_ORIGINS": "example.com,*.example.org", "WSCHAN_TLS_CERT": "cert.pem",
		"WSCHAN_TLS_KEY": "key.pem", "WSCHAN_TLS_SELF_SIGNED": "true", "WSCHAN_DRAIN_TIMEOUT": "1m",
		"WSCHAN_LOG_FORMAT": "json", "WSCHAN_LOG_LEVEL": "debug",
		"WSCHAN_MAX_ROOM_MEMBERS": "50", "WSCHAN_MAX_ROOMS": "-1", "WSCHAN_ROOM_QUEUE": "32",
		"WSCHAN_ACME_DOMAIN": "ws.example.com,www.example.com", "WSCHAN_ACME_EMAIL": "admin@example.com",
		"WSCHAN_ACME_CA": "https://ca.example.com/dir", "WSCHAN_ACME_CA_ROOT": "ca.pem",
		"WSCHAN_ACME_DIR": "/var/lib/wschan/acme", "WSCHAN_HTTP_ADDR": ":8081",
		"WSCHAN_ROOM_HISTORY": "-1", "WSCHAN_ROOM_HISTORY_TTL": "1h", "WSCHAN_ROOM_PRESENCE_INTERVAL": "2s",
	}
	with := func(c server.Config, f func(*server.Config)) server.Config { f(&c); return c }

	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		want      server.Config
		wantLog   string // format/level
		wantErrIn string
	}{
		{name: "defaults", want: defaults, wantLog: "text/INFO"},
		{name: "every flag", args: everyArgs, want: every, wantLog: "json/DEBUG"},
		{name: "every variable", env: everyEnv, want: every, wantLog: "json/DEBUG"},
		{name: "flags win over variables", args: []string{"--addr", ":1", "--max-conns=5", "--compression=false"},
			env:  map[string]string{"WSCHAN_ADDR": ":2", "WSCHAN_MAX_CONNS": "6", "WSCHAN_COMPRESSION": "true", "WSCHAN_GREETING": "g"},
			want: with(defaults, func(c *server.Config) { c.Addr, c.MaxConns, c.Greeting = ":1", 5, "g" }), wantLog: "text/INFO"},
		{name: "empty variable is unset", env: map[string]string{"WSCHAN_ADDR": "", "WSCHAN_MAX_CONNS": ""},
			want: defaults, wantLog: "text/INFO"},
		{name: "sizes in bytes and decimal units", args: []string{"--max-message-size=1000"}, env: map[string]string{},
			want: with(defaults, func(c *server.Config) { c.MaxMessageSize = 1000 }), wantLog: "text/INFO"},
		{name: "zero means the default", args: []string{"--idle-timeout=0", "--max-conns=0"},
			want: with(defaults, func(c *server.Config) { c.IdleTimeout, c.MaxConns = 0, 0 }), wantLog: "text/INFO"},
		{name: "bad variable is named", env: map[string]string{"WSCHAN_MAX_CONNS": "abc"},
			wantErrIn: `environment variable WSCHAN_MAX_CONNS="abc" (for --max-conns): want a whole number`},
		{name: "bad duration variable", env: map[string]string{"WSCHAN_PING_TIMEOUT": "soon"},
			wantErrIn: "WSCHAN_PING_TIMEOUT"},
		{name: "bad bool variable", env: map[string]string{"WSCHAN_COMPRESSION": "maybe"},
			wantErrIn: "WSCHAN_COMPRESSION=\"maybe\" (for --compression): want true or false"},
		{name: "bad level variable", env: map[string]string{"WSCHAN_LOG_LEVEL": "loud"},
			wantErrIn: "WSCHAN_LOG_LEVEL"},
		{name: "bad flag value", args: []string{"--message-rate=fast"}, wantErrIn: `invalid argument "fast" for "--message-rate"`},
		{name: "bad trusted proxy", args: []string{"--trusted-proxies", "10.0.0.0/8,proxy.example"},
			wantErrIn: `"proxy.example" is not an IP address or CIDR range`},
		{name: "bad trusted proxy range", args: []string{"--trusted-proxies", "10.0.0.0/33"}, wantErrIn: `"10.0.0.0/33" is not an IP address or CIDR range`},
		{name: "bad trusted proxies variable", env: map[string]string{"WSCHAN_TRUSTED_PROXIES": "fe80::1%eth0"},
			wantErrIn: `WSCHAN_TRUSTED_PROXIES="fe80::1%eth0" (for --trusted-proxies): "fe80::1%eth0" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := &serveOptions{}
			cmd := o.command()
			err := cmd.ParseFlags(tt.args)
			if err == nil {
				err = o.applyEnv(cmd, mapEnv(tt.env))
			}
			if tt.wantErrIn != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrIn) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErrIn)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(o.cfg, tt.want) {
				t.Errorf("config\n got %+v\nwant %+v", o.cfg, tt.want)
			}
			if got := o.logFormat + "/" + o.logLevel.String(); got != tt.wantLog {
				t.Errorf("log %s, want %s", got, tt.wantLog)
			}
		})
	}
}

// TestServeFlagsHaveVariables checks every flag in --help is read from
// the environment too.
func TestServeFlagsHaveVariables(t *testing.T) {
	t.Parallel()
	o := &serveOptions{}
	cmd := o.command()
	names := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([\w-]+)`).FindAllStringSubmatch(cmd.LocalFlags().FlagUsages(), -1)
	if len(names) < 20 {
		t.Fatalf("found %d flags in the usage text", len(names))
	}
	for _, m := range names {
		if m[1] != "help" && !slices.Contains(o.flagNames, m[1]) {
			t.Errorf("--%s has no %s variable", m[1], envName(m[1]))
		}
	}
}

func TestMentionsFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg, flag string
		want      bool
	}{
		{`--addr "x" is not host:port`, "addr", true},
		{"--max-conns-per-ip must be positive", "max-conns", false},
		{"--max-conns-per-ip and --max-conns must be positive", "max-conns", true},
		{"--tls-cert and --tls-key go together", "tls-key", true},
		{"end --ping-timeout", "ping-timeout", true},
		{"no flag here", "addr", false},
	}
	for _, tt := range tests {
		if got := mentionsFlag(tt.msg, tt.flag); got != tt.want {
			t.Errorf("mentionsFlag(%q, %q) = %v, want %v", tt.msg, tt.flag, got, tt.want)
		}
	}
}

func TestURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr     string
		tls      bool
		ws, page string
	}{
		{"127.0.0.1:8080", false, "ws://127.0.0.1:8080/ws", "http://127.0.0.1:8080/"},
		{"0.0.0.0:8080", false, "ws://localhost:8080/ws", "http://localhost:8080/"},
		{"[::]:8080", true, "wss://localhost:8080/ws", "https://localhost:8080/"},
		{"[::1]:9", false, "ws://[::1]:9/ws", "http://[::1]:9/"},
	}
	for _, tt := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if ws, page := urls(addr, tt.tls); ws != tt.ws || page != tt.page {
			t.Errorf("urls(%s, %v) = %s, %s; want %s, %s", tt.addr, tt.tls, ws, page, tt.ws, tt.page)
		}
	}
}

// TestServeExitCodes runs `wschan serve` in-process up to the point where
// it fails: a usage error exits 2 with a pointer to the help, a runtime
// error exits 1 without it.
func TestServeExitCodes(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	acmeDir := t.TempDir()
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		code      int
		stderrHas string
	}{
		{"port in use", []string{"serve", "--addr", busy.Addr().String()}, nil, exitError, "the address is already in use: stop the other server or pick another port with --addr"},
		{"config error", []string{"serve", "--tls-key", "k.pem"}, nil, exitUsage, "wschan serve: invalid server configuration: --tls-cert and --tls-key go together\nRun 'wschan serve --help' for usage.\n"},
		{"config error from a variable", []string{"serve"}, map[string]string{"WSCHAN_TLS_CERT": "c.pem"}, exitUsage, "(set by WSCHAN_TLS_CERT)"},
		{"bad variable", []string{"serve"}, map[string]string{"WSCHAN_MAX_MESSAGE_SIZE": "huge"}, exitUsage, "WSCHAN_MAX_MESSAGE_SIZE"},
		{"unknown flag", []string{"serve", "--nope"}, nil, exitUsage, "wschan serve: unknown flag: --nope\n"},
		{"argument", []string{"serve", "x"}, nil, exitUsage, "Run 'wschan serve --help' for usage."},
		{"ACME with a certificate", []string{"serve", "--acme-domain", "ws.example.com", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, nil, exitUsage,
			"wschan serve: invalid server configuration: --acme-domain and --tls-cert exclude each other"},
		{"ACME domain not a name", []string{"serve"}, map[string]string{"WSCHAN_ACME_DOMAIN": "ws_1.example.com"}, exitUsage,
			`--acme-domain "ws_1.example.com" is not a valid DNS name`},
		{"ACME dir not a directory", []string{"serve", "--acme-domain", "ws.example.com", "--acme-dir", "/dev/null"}, nil, exitUsage,
			"--acme-dir /dev/null: cannot create it"},
		{"ACME CA root not PEM", []string{"serve", "--acme-domain", "ws.example.com", "--acme-dir", acmeDir, "--acme-ca-root", "/dev/null"}, nil, exitUsage,
			"--acme-ca-root /dev/null: it holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errb strings.Builder
			code := execute(t.Context(), newRootCmd(mapEnv(tt.env)), tt.args, strings.NewReader(""), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderrHas) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderrHas)
			}
			if tt.code == exitError && strings.Contains(errb.String(), "--help") {
				t.Errorf("runtime error points to --help: %q", errb.String())
			}
			if n := strings.Count(errb.String(), "\n"); tt.code == exitError && n != 1 {
				t.Errorf("stderr has %d lines, want 1: %q", n, errb.String())
			}
		})
	}
}

// TestServeRun runs `wschan serve` in-process on a free port: the start
// line names the URL, a client gets the greeting and its echo, and ending
// the context drains and exits 0.
func TestServeRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	lines := make(chan string, 64)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody is reading any more
			}
		}
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	wg.Go(func() {
		env := mapEnv(map[string]string{"WSCHAN_GREETING": "welcome"})
		done <- execute(runCtx, newRootCmd(env), []string{"serve", "--addr", "127.0.0.1:0", "--log-level", "warn"}, strings.NewReader(""), io.Discard, pw)
		pw.Close()
	})
	t.Cleanup(func() { stop(); wg.Wait() })

	var url string
	urlRE := regexp.MustCompile(`^wschan serve: echo server on (ws://127\.0\.0\.1:\d+/ws), page at http://127\.0\.0\.1:\d+/ \(Ctrl\+C to stop\)$`)
	for url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve ended before its start line: exit %d", <-done)
			}
			m := urlRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("first stderr line %q, want the start line", l)
			}
			url = m[1]
		case <-ctx.Done():
			t.Fatal("no start line")
		}
	}

	ch, err := wschan.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close(wschan.StatusNormalClosure, "")
	for _, want := range []string{"welcome", "hello"} {
		if want == "hello" {
			if err := ch.SendText(ctx, "hello"); err != nil {
				t.Fatal(err)
			}
		}
		m, err := ch.Read(ctx)
		if err != nil || m.Type != wschan.Text || string(m.Data) != want {
			t.Fatalf("read %v %q, %v; want text %q", m.Type, m.Data, err, want)
		}
	}

	// Draining sends 1001 to the open connection, then serve exits 0.
	stop()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d after the context ended, want 0", code)
		}
	case <-ctx.Done():
		t.Fatal("serve did not return after its context ended")
	}
	<-ch.Done()
	if got := ch.CloseCode(); got != wschan.StatusGoingAway {
		t.Errorf("client closed with %d, want 1001", got)
	}
	for l := range lines {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("stderr: %s", l)
		}
	}
}

// TestConfigFlags checks configFlags against both ends: every key is a
// server.Config field and every value a flag of wschan serve, so that a
// refused configuration always names the flag to change.
func TestConfigFlags(t *testing.T) {
	cmd := newServeCmd(func(string) (string, bool) { return "", false })
	cfg := reflect.TypeFor[server.Config]()
	for field, flag := range configFlags {
		if _, ok := cfg.FieldByName(field); !ok {
			t.Errorf("configFlags[%q]: server.Config has no such field", field)
		}
		if cmd.Flags().Lookup(flag) == nil {
			t.Errorf("configFlags[%q] = %q: wschan serve has no such flag", field, flag)
		}
	}
	// A ConfigError from the server is worded with the flags.
	_, err := server.New(server.Config{TLSCert: "c.pem"})
	ce, ok := errors.AsType[*server.ConfigError](err)
	if !ok {
		t.Fatalf("server.New = %v, want a *ConfigError", err)
	}
	o := &serveOptions{fromEnv: []string{"tls-key"}}
	got := o.configError(ce).Error()
	want := "invalid server configuration: --tls-cert and --tls-key go together (set by WSCHAN_TLS_KEY)"
	if got != want || !errors.Is(o.configError(ce), server.ErrConfig) {
		t.Errorf("worded as %q, want %q (matching ErrConfig)", got, want)
	}
}
