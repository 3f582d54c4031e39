package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wschan/wschan/server"
)

// unitPath is the systemd unit shipped in the repository.
const unitPath = "../../deploy/systemd/wschan.service"

// unitSettings reads a unit file: every "Key=value" line, by key, in order.
func unitSettings(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not Key=value: %q", path, line)
		}
		m[k] = append(m[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestServiceUnitSettings: the unit keeps what running as a service needs.
func TestServiceUnitSettings(t *testing.T) {
	t.Parallel()
	u := unitSettings(t, unitPath)
	for _, tt := range []struct{ key, want string }{
		{"ExecStart", "/usr/local/bin/wschan serve"},
		{"DynamicUser", "yes"},
		{"Restart", "on-failure"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"KillSignal", "SIGTERM"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			if got := u[tt.key]; len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s=%q, want %q", tt.key, got, tt.want)
			}
		})
	}
	t.Run("LimitNOFILE", func(t *testing.T) {
		t.Parallel()
		if n, err := strconv.Atoi(strings.Join(u["LimitNOFILE"], "")); err != nil || n < 2*server.DefaultMaxConns {
			t.Errorf("LimitNOFILE=%q, want room for --max-conns (%d) and more", u["LimitNOFILE"], server.DefaultMaxConns)
		}
	})
	t.Run("TimeoutStopSec covers the drain", func(t *testing.T) {
		t.Parallel()
		d, err := strconv.Atoi(strings.TrimSuffix(strings.Join(u["TimeoutStopSec"], ""), "s"))
		if err != nil || d <= int(server.DefaultDrainTimeout.Seconds()) {
			t.Errorf("TimeoutStopSec=%q, want more than --drain-timeout (%v)", u["TimeoutStopSec"], server.DefaultDrainTimeout)
		}
	})
	// Its WSCHAN_* settings and command line make a configuration that
	// wschan serve accepts.
	t.Run("configuration", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{}
		for _, e := range u["Environment"] {
			k, v, _ := strings.Cut(e, "=")
			if !strings.HasPrefix(k, envPrefix) {
				t.Errorf("Environment=%s: want WSCHAN_* variables only", e)
			}
			env[k] = v
		}
		args := strings.Fields(u["ExecStart"][0])[2:]
		o := &serveOptions{}
		cmd := o.command()
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := o.applyEnv(cmd, mapEnv(env)); err != nil {
			t.Fatal(err)
		}
		if len(o.fromEnv) != len(env) {
			t.Errorf("variables used %v, want all of %v", o.fromEnv, env)
		}
		if err := o.cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if o.cfg.Addr != ":8080" || o.logFormat != "json" {
			t.Errorf("addr %q, log format %q: want :8080 on every interface, and json for the journal", o.cfg.Addr, o.logFormat)
		}
	})
}

// systemdAnalyze returns the path of systemd-analyze, or skips the test
// (fails it under WSCHAN_REQUIRE_PEERS=1) when it is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err == nil {
		return p
	}
	if os.Getenv("WSCHAN_REQUIRE_PEERS") == "1" {
		t.Fatal("systemd-analyze is not installed and WSCHAN_REQUIRE_PEERS=1 requires it: apt-get install -y systemd (./scripts/test does it when run as root)")
	}
	t.Skip("systemd-analyze is not installed: apt-get install -y systemd (set WSCHAN_REQUIRE_PEERS=1 to fail instead)")
	return ""
}

// TestServiceUnitVerify runs systemd-analyze on the unit: verify finds no
// error or warning, and the sandbox rates "OK" (exposure 2.5 or less of
// 10). ExecStart must name an executable file: the test binary stands in
// for /usr/local/bin/wschan.
func TestServiceUnitVerify(t *testing.T) {
	t.Parallel()
	sa := systemdAnalyze(t)
	unit, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(string) string
		wantOut string // "" for a clean verify
	}{
		{"the unit", func(s string) string { return s }, ""},
		// The check can fail: the same unit with an unknown key.
		{"with a typo", func(s string) string { return strings.Replace(s, "DynamicUser=", "DynamicUsr=", 1) }, "Unknown key 'DynamicUsr'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "wschan.service")
			text := tt.edit(strings.Replace(string(unit), "ExecStart=/usr/local/bin/wschan ", "ExecStart="+self+" ", 1))
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), sa, "verify", "--man=no", path).CombinedOutput()
			if tt.wantOut == "" {
				if err != nil || len(out) > 0 {
					t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
				}
				out, err = exec.CommandContext(t.Context(), sa, "security", "--offline=true", "--threshold=25", path).CombinedOutput()
				if err != nil {
					t.Fatalf("systemd-analyze security: %v, want exposure 2.5 or less\n%s", err, out)
				}
				return
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Fatalf("systemd-analyze verify said %q (%v), want %q", out, err, tt.wantOut)
			}
		})
	}
}
