package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script/*.txtar from the actual output")

// TestMain makes this test binary the wschan command for the scripts (run
// as "wschan", it is main), and checks for leaked goroutines after the
// in-process tests.
func TestMain(m *testing.M) {
	testscript.Main(leakChecked{m}, map[string]func(){"wschan": main})
}

// leakChecked runs the tests, then fails the run if goroutines are left,
// as goleak.VerifyTestMain does; that one calls os.Exit itself, which would
// skip testscript's own cleanup.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
		return 1
	}
	return 0
}

// TestScripts runs the end-to-end scripts in testdata/script, each with
// its own loopback ports in $PORT and $PORT2. Commands beyond testscript's
// own:
//
//	waitready [-insecure] URL
//	                      poll GET URL until it answers 200 (10s at most); -insecure skips TLS verification
//	httpget URL           GET URL: body to stdout, status line to stderr; fails unless 200 (! expects another status)
//	wsecho [-wait] URL TEXT
//	                      dial URL with wschan, send TEXT, print every message received until its echo, close 1000;
//	                      -wait first reads and prints one message (a greeting) before sending
//	exitcode N PROG ARGS  run PROG like exec and require exit status N (stdout and stderr kept for checks)
//	silentlisten ADDR     listen on ADDR and accept connections, never answering, until the script ends
//	waitmetric URL LINE   poll GET URL (a /metrics page) until a line of it is exactly LINE's words, e.g. "wschan_rooms 1" (10s at most)
//	unescape IN OUT       write OUT with the bytes IN spells: \xHH, \n, \t and \\ escapes; IN's own newlines are dropped
//
// go test -run TestScripts -update rewrites expected files (cmp's second
// argument) inside the scripts; -testwork keeps each script's $WORK.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:   "testdata/script",
		Setup: setupScript,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready":    cmdWaitReady,
			"waitmetric":   cmdWaitMetric,
			"httpget":      cmdHTTPGet,
			"wsecho":       cmdWSEcho,
			"exitcode":     cmdExitCode,
			"unescape":     cmdUnescape,
			"silentlisten": cmdSilentListen,
		},
		UpdateScripts:      *update,
		RequireUniqueNames: true,
	})
}

// setupScript picks two free loopback ports, from below the kernel's
// ephemeral range (see wstest.ListenBelowEphemeral). Both are held until
// both are known, so they differ.
func setupScript(e *testscript.Env) error {
	// The scripts run over each engine in turn: scripts/test sets
	// WSCHAN_TEST_ENGINE for the second pass, and `wschan serve` takes
	// its engine from WSCHAN_ENGINE (a flag in a script still wins).
	if eng := os.Getenv("WSCHAN_TEST_ENGINE"); eng != "" {
		e.Setenv("WSCHAN_ENGINE", eng)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, name := range []string{"PORT", "PORT2"} {
		ln, err := wstest.ListenBelowEphemeral()
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		e.Setenv(name, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return nil
}

// cmdTimeout bounds each custom command.
const cmdTimeout = 10 * time.Second

// httpClient makes one request per connection, so no idle connection
// (and its goroutines) outlives a command.
func httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

func cmdWaitMetric(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitmetric URL NAME VALUE")
	}
	want := strings.Join(args[1:], " ")
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	client := httpClient()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
		ts.Check(err)
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for line := range strings.Lines(string(body)) {
				if strings.TrimSpace(line) == want {
					return
				}
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			ts.Fatalf("waitmetric: no line %q at %s within %v", want, args[0], cmdTimeout)
		}
	}
}

func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	insecure := len(args) > 0 && args[0] == "-insecure"
	if insecure {
		args = args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitready [-insecure] URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	client := httpClient()
	if insecure {
		client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
		ts.Check(err)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			ts.Fatalf("%s not ready after %v: %s", args[0], cmdTimeout, last)
		}
	}
}

func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: httpget URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	ts.Check(err)
	resp, err := httpClient().Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	_, err = io.Copy(ts.Stdout(), resp.Body)
	ts.Check(err)
	fmt.Fprintln(ts.Stderr(), resp.Status)
	if ok := resp.StatusCode == http.StatusOK; ok == neg {
		ts.Fatalf("GET %s: %s", args[0], resp.Status)
	}
}

func cmdWSEcho(ts *testscript.TestScript, neg bool, args []string) {
	wait := len(args) > 0 && args[0] == "-wait"
	if wait {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: wsecho [-wait] URL TEXT")
	}
	url, text := args[0], args[1]
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	ch, err := wschan.Dial(ctx, url, nil)
	ts.Check(err)
	defer ch.Close(wschan.StatusNormalClosure, "") // after a failure; a no-op after the Close below
	if wait {
		m, err := ch.Read(ctx)
		if err != nil {
			ts.Fatalf("waiting for a first message: %v", err)
		}
		fmt.Fprintf(ts.Stdout(), "%s\n", m.Data)
	}
	ts.Check(ch.SendText(ctx, text))
	for {
		m, err := ch.Read(ctx)
		if err != nil {
			ts.Fatalf("waiting for the echo of %q: %v", text, err)
		}
		fmt.Fprintf(ts.Stdout(), "%s\n", m.Data)
		if m.Type == wschan.Text && string(m.Data) == text {
			break
		}
	}
	ts.Check(ch.Close(wschan.StatusNormalClosure, ""))
}

func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

func cmdUnescape(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: unescape IN OUT")
	}
	in := strings.ReplaceAll(ts.ReadFile(args[0]), "\n", "")
	var out []byte
	for i := 0; i < len(in); i++ {
		if in[i] != '\\' {
			out = append(out, in[i])
			continue
		}
		if i+1 == len(in) {
			ts.Fatalf("%s: \\ at the end", args[0])
		}
		i++
		switch in[i] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(in) {
				ts.Fatalf("%s: short \\x escape", args[0])
			}
			b, err := strconv.ParseUint(in[i+1:i+3], 16, 8)
			ts.Check(err)
			out = append(out, byte(b))
			i += 2
		default:
			ts.Fatalf("%s: unknown escape \\%c", args[0], in[i])
		}
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), out, 0o666))
}

func cmdSilentListen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: silentlisten ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	ts.Check(err)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	ts.Defer(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
}
