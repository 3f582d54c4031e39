// Package peers starts WebSocket peers written with other libraries, Node's
// ws and Python's websockets, as child processes on loopback, for interop
// tests. It uses the standard library only.
//
// Each peer is a script beside this file (node_peer.mjs, python_peer.py)
// that speaks JSON lines: it prints one [Event] per line on stdout and, as a
// client, reads commands on stdin. Start a server with [StartServer] and dial
// its URL, or point a client started with [StartClient] at a server of yours.
// Both are stopped (killed by PID and waited for) in t.Cleanup; their stderr
// goes to t.Log.
//
// Server peers echo every message with its type. A text message
// "close:<code>:<reason>" makes them close the connection with that code and
// reason instead ("close:" closes without a status code).
//
// Tests call [Require] (StartServer and StartClient do it themselves): a
// missing peer skips the test, unless WSCHAN_REQUIRE_PEERS=1, as in CI,
// where it fails it. The Node peer needs node and `npm ci` run in the module
// root (package.json pins ws); the Python peer needs /usr/bin/python3 with
// websockets 10.x to 13.x (Debian: apt-get install -y python3-websockets).
//
// The scripts are found from this file's path as recorded at build time, so
// tests built with -trimpath cannot use this package.
package peers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Kind names a peer implementation.
type Kind string

const (
	// Node is the Node.js peer on the npm package ws, pinned in package.json.
	Node Kind = "node"
	// Python is the Python peer on websockets (legacy asyncio API).
	Python Kind = "python"
)

// Options configures a peer. The zero value offers or accepts no
// subprotocol and disables compression.
type Options struct {
	// Protocols lists subprotocols. A client offers them in order; a server
	// selects the first protocol offered by the client that is in this list,
	// and none when the list is empty.
	Protocols []string
	// Compression enables permessage-deflate. The Node peer then compresses
	// every message, however small. The Python server answers with
	// server_max_window_bits=12 and, when the client offers it,
	// client_max_window_bits=12.
	Compression bool
}

// Event is one line printed by a peer.
//
// Event is "listening" (Port), "open" (Protocol, the selected subprotocol,
// and Extensions, the Sec-WebSocket-Extensions response header; both "" when
// absent), "message" (Type "text" or "binary", and Data), "close" (Code and
// Reason received from the other side: 1005 when the close frame had no
// status code, 1006 when no close frame arrived) or "error" (Message).
type Event struct {
	Event      string `json:"event"`
	Port       int    `json:"port,omitempty"`
	Protocol   string `json:"protocol,omitempty"`
	Extensions string `json:"extensions,omitempty"`
	Type       string `json:"type,omitempty"`
	Data       []byte `json:"data,omitempty"` // base64 on the wire
	Code       int    `json:"code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
}

// String returns the event for test messages, with Data abbreviated.
func (e Event) String() string {
	if len(e.Data) > 32 {
		e.Data = append(e.Data[:32:32], "..."...)
	}
	b, _ := json.Marshal(struct {
		Event
		Data string `json:"data,omitempty"`
	}{e, string(e.Data)})
	return string(b)
}

// requireEnv is the environment variable that turns a missing peer from a
// skip into a failure.
const requireEnv = "WSCHAN_REQUIRE_PEERS"

// startTimeout bounds how long a server peer may take to start listening.
const startTimeout = 30 * time.Second

const pythonBin = "/usr/bin/python3"

// Available reports whether the peer's runtime and library are installed,
// and if not, why not. It runs the runtime briefly for Python.
func Available(k Kind) (ok bool, why string) {
	dir, err := scriptDir()
	if err != nil {
		return false, err.Error()
	}
	switch k {
	case Node:
		if _, err := exec.LookPath("node"); err != nil {
			return false, "node is not installed"
		}
		root, err := moduleRoot(dir)
		if err != nil {
			return false, err.Error()
		}
		if _, err := os.Stat(filepath.Join(root, "node_modules", "ws", "package.json")); err != nil {
			return false, "the npm package ws is not installed in " + root
		}
		return true, ""
	case Python:
		if _, err := os.Stat(pythonBin); err != nil {
			return false, pythonBin + " is not installed"
		}
		out, err := exec.Command(pythonBin, "-c", "import websockets; print(websockets.__version__)").Output()
		if err != nil {
			return false, "python websockets is not importable: " + err.Error()
		}
		v := strings.TrimSpace(string(out))
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err != nil || n < 10 || n > 13 {
			return false, "python websockets " + v + " found; the peer needs 10.x to 13.x (legacy asyncio API)"
		}
		return true, ""
	default:
		return false, fmt.Sprintf("unknown peer kind %q", k)
	}
}

// Require skips the test when the peer k is not available, giving the
// reason. When the environment variable WSCHAN_REQUIRE_PEERS is "1" it fails
// the test instead, with the reason and the command that installs the peer.
func Require(t testing.TB, k Kind) {
	t.Helper()
	ok, why := Available(k)
	if ok {
		return
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s peer unavailable: %s; %s=1 requires it: install with %s", k, why, requireEnv, installHint(k))
	}
	t.Skipf("%s peer unavailable: %s (install with %s; set %s=1 to fail instead)", k, why, installHint(k), requireEnv)
}

func installHint(k Kind) string {
	switch k {
	case Node:
		root := "the module root"
		if dir, err := scriptDir(); err == nil {
			if r, err := moduleRoot(dir); err == nil {
				root = r
			}
		}
		return "`apt-get install -y nodejs npm` and `npm ci` in " + root
	case Python:
		return "`apt-get install -y python3-websockets`"
	}
	return "nothing: unknown kind"
}

// scriptDir returns the directory of this source file, which holds the
// peer scripts.
func scriptDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("peers: cannot locate the peer scripts (built with -trimpath?)")
	}
	return filepath.Dir(file), nil
}

// moduleRoot walks up from dir to the directory holding package.json.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "package.json")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no package.json above " + dir)
		}
		d = parent
	}
}

func (o Options) args() []string {
	var args []string
	if len(o.Protocols) > 0 {
		args = append(args, "--protocols", strings.Join(o.Protocols, ","))
	}
	if o.Compression {
		args = append(args, "--compression")
	}
	return args
}

// proc is a running peer process and the goroutine reading its stdout.
type proc struct {
	kind   Kind
	events chan Event    // closed after the last event
	done   chan struct{} // closed when the reader has returned
	stop   chan struct{} // closed to make the reader drop events
	err    error         // why events was closed; read after done

	mu    sync.Mutex // serializes writes to stdin
	stdin io.WriteCloser
}

// start runs the peer script for k with args, and registers its cleanup.
func start(t testing.TB, k Kind, args ...string) *proc {
	t.Helper()
	Require(t, k)
	dir, err := scriptDir()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch k {
	case Node:
		cmd = exec.CommandContext(t.Context(), "node", append([]string{filepath.Join(dir, "node_peer.mjs")}, args...)...)
	case Python:
		cmd = exec.CommandContext(t.Context(), pythonBin, append([]string{filepath.Join(dir, "python_peer.py")}, args...)...)
	}
	cmd.Dir = dir
	cmd.Stderr = &logWriter{t: t, prefix: fmt.Sprintf("%s peer stderr: ", k)}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s peer: %v", k, err)
	}
	p := &proc{
		kind:   k,
		events: make(chan Event),
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
		stdin:  stdin,
	}
	go p.read(stdout)
	t.Cleanup(func() {
		// Kill by PID, then let the reader see EOF before Wait closes the pipe.
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill %s peer (pid %d): %v", k, cmd.Process.Pid, err)
		}
		close(p.stop)
		<-p.done
		_ = cmd.Wait() // killed: the exit status says so and means nothing
		cmd.Stderr.(*logWriter).flush()
	})
	return p
}

// read delivers the events on r until EOF or stop.
func (p *proc) read(r io.Reader) {
	defer close(p.done)
	defer close(p.events)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var ev Event
			if jerr := json.Unmarshal(line, &ev); jerr != nil {
				p.err = fmt.Errorf("%s peer printed a bad event line %.80q: %w", p.kind, line, jerr)
				return
			}
			select {
			case p.events <- ev:
			case <-p.stop:
				p.err = errors.New(string(p.kind) + " peer stopped")
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("end of output")
			}
			p.err = fmt.Errorf("%s peer exited: %w", p.kind, err)
			return
		}
	}
}

// next returns the next event, or an error once ctx is done or the peer's
// output has ended.
func (p *proc) next(ctx context.Context) (Event, error) {
	select {
	case ev, ok := <-p.events:
		if !ok {
			<-p.done
			return Event{}, p.err
		}
		return ev, nil
	case <-ctx.Done():
		return Event{}, fmt.Errorf("waiting for %s peer event: %w", p.kind, context.Cause(ctx))
	}
}

// Server is a peer process serving WebSocket connections on loopback.
// Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's address, ws://127.0.0.1:port.
	URL string
	p   *proc
}

// StartServer starts a server peer of kind k and waits until it listens. It
// calls Require first. The process is killed when the test ends.
func StartServer(t testing.TB, k Kind, o Options) *Server {
	t.Helper()
	p := start(t, k, append([]string{"server"}, o.args()...)...)
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	ev, err := p.next(ctx)
	if err != nil {
		t.Fatalf("start %s server: %v", k, err)
	}
	if ev.Event != "listening" || ev.Port == 0 {
		t.Fatalf("start %s server: got %v, want a listening event", k, ev)
	}
	return &Server{URL: "ws://127.0.0.1:" + strconv.Itoa(ev.Port), p: p}
}

// Next returns the server's next event: "open", "close" or "error", for
// connections in the order the peer saw them. It blocks until an event
// arrives, ctx is done or the peer exits.
func (s *Server) Next(ctx context.Context) (Event, error) {
	return s.p.next(ctx)
}

// Client is a peer process connected, or connecting, to a WebSocket server.
// Its methods are safe for concurrent use.
type Client struct {
	p *proc
}

// StartClient starts a client peer of kind k that dials url. It calls
// Require first and does not wait for the handshake: the first event from
// Next is "open", or "error" when the connection failed (the process then
// exits). The process is killed when the test ends.
func StartClient(t testing.TB, k Kind, url string, o Options) *Client {
	t.Helper()
	return &Client{p: start(t, k, append([]string{"client", "--url", url}, o.args()...)...)}
}

// Send asks the client to send a message of type typ, "text" or "binary".
// The Node client sends commands given before the handshake completes once
// it does; the Python client reads them only after. Send does not wait for
// the message to be sent.
func (c *Client) Send(typ string, data []byte) error {
	if typ != "text" && typ != "binary" {
		return fmt.Errorf("send: type %q is neither text nor binary", typ)
	}
	if data == nil {
		data = []byte{} // marshal as "", not null
	}
	return c.command(struct {
		Op   string `json:"op"`
		Type string `json:"type"`
		Data []byte `json:"data"`
	}{"send", typ, data})
}

// Close asks the client to start the closing handshake with code and
// reason; code 0 sends a close frame without a status code. The client
// reports the close with a "close" event and exits. Close does not wait.
func (c *Client) Close(code int, reason string) error {
	return c.command(struct {
		Op     string `json:"op"`
		Code   int    `json:"code,omitempty"`
		Reason string `json:"reason,omitempty"`
	}{"close", code, reason})
}

func (c *Client) command(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	if _, err := c.p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("command %s peer: %w", c.p.kind, err)
	}
	return nil
}

// Next returns the client's next event: "open", "message", "close" or
// "error". It blocks until an event arrives, ctx is done or the peer exits;
// after the "close" event it returns an error.
func (c *Client) Next(ctx context.Context) (Event, error) {
	return c.p.next(ctx)
}

// logWriter sends a peer's stderr to t.Log a line at a time.
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// flush logs a last line that had no newline. Call it after cmd.Wait.
func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(w.prefix + string(w.buf))
		w.buf = nil
	}
}
