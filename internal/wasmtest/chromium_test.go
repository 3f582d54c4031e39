//go:build !js

package wasmtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireEnv turns a missing browser, node or npm package from a skip into
// a failure, as for the page's browser tests (server/web).
const requireEnv = "WSCHAN_REQUIRE_PEERS"

// requirements returns why the browser tests cannot run here, or "".
func requirements(root string) string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node is not installed"
	}
	chromium := chromiumPath()
	if _, err := os.Stat(chromium); err != nil {
		return chromium + " is missing (apt-get install -y chromium)"
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "playwright-core", "package.json")); err != nil {
		return "the npm package playwright-core is not installed (run npm ci in " + root + ")"
	}
	return ""
}

func chromiumPath() string {
	if p := os.Getenv("WSCHAN_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// page loads Go's wasm_exec.js, runs test.wasm with the test flags and
// environment, and sets window.goExit to its exit code.
const page = `<!doctype html>
<meta charset="utf-8">
<title>wschan wasm tests</title>
<script src="wasm_exec.js"></script>
<script>
const go = new Go();
go.argv = ['test.wasm'].concat(%s);
go.env = %s;
go.exit = (code) => { window.goExit = code; };
WebAssembly.instantiateStreaming(fetch('test.wasm'), go.importObject)
  .then((r) => go.run(r.instance))
  .catch((e) => { console.log('wasm: ' + e); window.goExit = 2; });
</script>
`

// TestWasmInChromium compiles this package's GOOS=js tests
// (dial_js_test.go) to WebAssembly and runs them in Chromium against a
// real server: Dial over the browser's WebSocket, the same Channel.
func TestWasmInChromium(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if why := requirements(root); why != "" {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("browser tests required (%s=1): %s", requireEnv, why)
		}
		t.Skipf("wasm browser tests skipped: %s (set %s=1 to make this a failure)", why, requireEnv)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	dir := t.TempDir()
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", filepath.Join(dir, "test.wasm"), ".")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm tests: %v\n%s", err, out)
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	execJS := filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js")
	if _, err := os.Stat(execJS); err != nil {
		t.Fatalf("Go's wasm_exec.js: %v", err)
	}

	// The WebSocket server: `wschan serve` as a library, on loopback.
	s, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()

	args := `["-test.v"]`
	if r := os.Getenv("WSCHAN_WASM_RUN"); r != "" {
		args = fmt.Sprintf(`["-test.v", "-test.run", %q]`, r)
	}
	// A loopback port with nothing on it, for the refused dial.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	env := fmt.Sprintf(`{"WSCHAN_WASM_SERVER": "ws://%s", "WSCHAN_WASM_CLOSED": "ws://%s"}`, ln.Addr(), closed.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, args, env)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, execJS) })
	mux.HandleFunc("GET /test.wasm", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/wasm")
		http.ServeFile(w, r, filepath.Join(dir, "test.wasm"))
	})
	host := httptest.NewServer(mux)
	defer host.Close()

	home := t.TempDir()
	cmd := exec.CommandContext(ctx, "node", "run.mjs")
	cmd.Env = append(os.Environ(), "WSCHAN_WASM_PAGE="+host.URL+"/", "WSCHAN_CHROMIUM="+chromiumPath(),
		"HOME="+home, "TMPDIR="+home, "XDG_CONFIG_HOME="+home, "XDG_CACHE_HOME="+home)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.Log(line)
	}
	if ctx.Err() != nil {
		t.Fatal("the wasm tests did not finish in time")
	}
	if err != nil {
		t.Fatalf("the wasm tests failed in Chromium: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestRecipe") {
		t.Fatal("the wasm tests did not run (no PASS for TestRecipe)")
	}
}
