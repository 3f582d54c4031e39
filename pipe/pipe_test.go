package pipe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/pipe"
)

// testTimeout bounds each Run; no test waits on time otherwise.
const testTimeout = 10 * time.Second

// fixedNow stamps JSONL events in tests.
var fixedNow = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)) }

const fixedTime = "2026-01-02T02:04:05.000000006Z"

// echoServer starts wstest's echo server and returns its URL and the
// channels it accepts, to check how they were closed.
func echoServer(t testing.TB, opts *wschan.AcceptOptions) (string, <-chan *wschan.Channel) {
	t.Helper()
	accepted := make(chan *wschan.Channel, 1)
	u, _ := wstest.Server(t, &wstest.Echo{Options: opts, Accepted: accepted})
	return u, accepted
}

// scripted starts a server that runs serve on every accepted channel and
// closes the channel with 1000 afterwards (a no-op if serve closed it).
func scripted(t testing.TB, opts *wschan.AcceptOptions, serve func(ctx context.Context, ch *wschan.Channel)) string {
	t.Helper()
	u, _ := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, opts)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		serve(ctx, ch)
		_ = ch.Close(wschan.StatusNormalClosure, "")
	}))
	return u
}

// run dials url and runs pipe.Run with cfg under a deadline.
func run(t testing.TB, url string, opts *wschan.DialOptions, cfg pipe.Config) (*wschan.Channel, error) {
	t.Helper()
	ch := wstest.Dial(t, url, opts)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	return ch, pipe.Run(ctx, ch, cfg)
}

// openInput is an In that stays open until the test ends, so that only
// the server or a timer can end a run.
func openInput(t testing.TB) io.Reader {
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	return pr
}

// wantServerClosed waits for the server's channel to end and checks that
// the client closed it with 1000.
func wantServerClosed(t testing.TB, accepted <-chan *wschan.Channel) {
	t.Helper()
	var sch *wschan.Channel
	select {
	case sch = <-accepted:
	case <-t.Context().Done():
		t.Fatal("server accepted no connection")
	}
	wstest.WaitDone(t, sch)
	var ce *wschan.CloseError
	if !errors.As(sch.Err(), &ce) || !ce.Remote || ce.Code != wschan.StatusNormalClosure {
		t.Errorf("server side ended with %v, want the client's 1000", sch.Err())
	}
}

// lines is an Out that tests can wait on: each Write is also sent on C.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	C   chan string
}

func newLines() *lines { return &lines{C: make(chan string, 100)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	select {
	case l.C <- string(p):
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// next waits for the next Write.
func (l *lines) next(t testing.TB) string {
	t.Helper()
	select {
	case s := <-l.C:
		return s
	case <-t.Context().Done():
		t.Fatalf("no output; so far: %q", l.String())
		return ""
	}
}

func TestRunRoundTrip(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789", 10_000)
	tests := []struct {
		name      string
		binary    bool
		null      bool
		in, want  string
		wantWarns string
	}{
		{name: "lines", in: "one\ntwo\n\nthree\n", want: "one\ntwo\n\nthree\n"},
		{name: "last line without newline", in: "a\nb", want: "a\nb\n"},
		{name: "CRLF kept", in: "a\r\nb\r\n", want: "a\r\nb\r\n"},
		{name: "UTF-8 and a long line", in: "héllo 🌍\n" + long + "\n", want: "héllo 🌍\n" + long + "\n"},
		{name: "empty input", in: "", want: ""},
		{name: "NUL separated", null: true, in: "a\nb\x00c\x00\x00", want: "a\nb\x00c\x00\x00"},
		{name: "NUL separated, last without NUL", null: true, in: "a\x00b", want: "a\x00b\x00"},
		{name: "binary", binary: true, in: "\x00\xff\x80\n\x01\n", want: "\x00\xff\x80\n\x01\n"},
		{name: "binary NUL separated", binary: true, null: true, in: "x\ny\x00\xff\x00", want: "x\ny\x00\xff\x00"},
		{
			name: "line not UTF-8 is skipped", in: "ok\n\xff\xfe\nalso\n", want: "ok\nalso\n",
			wantWarns: "skipped line 2: not valid UTF-8, so it cannot be a text message (send bytes as binary)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, accepted := echoServer(t, nil)
			var out, warns bytes.Buffer
			_, err := run(t, url, nil, pipe.Config{
				In: strings.NewReader(tt.in), Out: &out, Err: &warns,
				Binary: tt.binary, NullSeparated: tt.null,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("output %q, want %q", trim(got), trim(tt.want))
			}
			if got := warns.String(); got != tt.wantWarns {
				t.Errorf("warnings %q, want %q", got, tt.wantWarns)
			}
			wantServerClosed(t, accepted)
		})
	}
}

func trim(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func TestRunJSONL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		binary bool
		in     string
		want   []string
	}{
		{"text", false, "hi\n<&>\n\n", []string{
			`{"type":"open","time":"` + fixedTime + `"}`,
			`{"type":"text","time":"` + fixedTime + `","data":"hi"}`,
			`{"type":"text","time":"` + fixedTime + `","data":"<&>"}`,
			`{"type":"text","time":"` + fixedTime + `","data":""}`,
			`{"type":"close","time":"` + fixedTime + `","code":1000,"reason":""}`,
		}},
		{"binary", true, "\x00\xff\n\n", []string{
			`{"type":"open","time":"` + fixedTime + `"}`,
			`{"type":"binary","time":"` + fixedTime + `","base64":"AP8="}`,
			`{"type":"binary","time":"` + fixedTime + `","base64":""}`,
			`{"type":"close","time":"` + fixedTime + `","code":1000,"reason":""}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := echoServer(t, nil)
			var out bytes.Buffer
			_, err := run(t, url, nil, pipe.Config{
				In: strings.NewReader(tt.in), Out: &out, JSONL: true, Binary: tt.binary, Now: fixedNow,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if !slices.Equal(got, tt.want) {
				t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestRunJSONLShape decodes every event of a session with a subprotocol,
// text and binary messages and an abnormal close, and checks each event
// has exactly its documented fields.
func TestRunJSONLShape(t *testing.T) {
	t.Parallel()
	url := scripted(t, &wschan.AcceptOptions{Subprotocols: []string{"chat"}}, func(ctx context.Context, ch *wschan.Channel) {
		_ = ch.SendText(ctx, "hello")
		_ = ch.Send(ctx, wschan.Binary, []byte{0, 1, 2, 255})
		_ = ch.Close(4000, "done")
	})
	out := newLines()
	ch, err := run(t, url, &wschan.DialOptions{Subprotocols: []string{"chat"}},
		pipe.Config{In: openInput(t), Out: out, JSONL: true})
	var end *pipe.EndError
	if !errors.As(err, &end) || end.Code != 4000 || end.Reason != "done" {
		t.Fatalf("Run: %v, want an *EndError with 4000 \"done\"", err)
	}
	if ch.CloseCode() != 4000 {
		t.Errorf("CloseCode %v, want 4000", ch.CloseCode())
	}

	want := []map[string]any{
		{"type": "open", "protocol": "chat"},
		{"type": "text", "data": "hello"},
		{"type": "binary", "base64": "AAEC/w=="},
		{"type": "close", "code": 4000.0, "reason": "done", "error": "wschan: peer closed with 4000: \"done\""},
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for i, w := range want {
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("event %d: %v in %q", i, err, out.String())
		}
		ts, ok := got["time"].(string)
		if !ok {
			t.Errorf("event %d %v: no time", i, got)
		} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("event %d: time %q is not RFC 3339 in UTC", i, ts)
		}
		delete(got, "time")
		if len(got) != len(w) {
			t.Errorf("event %d: %v, want %v", i, got, w)
			continue
		}
		for k, v := range w {
			if got[k] != v {
				t.Errorf("event %d: %s = %#v, want %#v", i, k, got[k], v)
			}
		}
	}
	if dec.More() {
		t.Errorf("more events than expected in %q", out.String())
	}
}

// TestRunEnd checks how the way a channel ends maps to Run's result; the
// input stays open, so the server ends each run.
func TestRunEnd(t *testing.T) {
	t.Parallel()
	closeWith := func(code wschan.StatusCode, reason string) string {
		return scripted(t, nil, func(ctx context.Context, ch *wschan.Channel) {
			_ = ch.Close(code, reason)
		})
	}
	tests := []struct {
		name     string
		url      string
		wantCode wschan.StatusCode // 0: Run returns nil
		wantIs   error
	}{
		{name: "peer closes with 1000", url: closeWith(1000, "bye")},
		{name: "peer closes with 1001", url: closeWith(1001, "")},
		{name: "peer closes with 1011", url: closeWith(1011, "boom"), wantCode: 1011},
		{name: "peer closes with 4000", url: closeWith(4000, ""), wantCode: 4000},
		{
			name: "connection dropped", wantCode: 1006, wantIs: wschan.ErrConnectionLost,
			url: wstest.RawServer(t, func(*wstest.Raw) {}),
		},
		{
			name: "peer breaks the protocol", wantCode: wschan.StatusProtocolError, wantIs: wschan.ErrProtocol,
			url: wstest.RawServer(t, func(r *wstest.Raw) {
				_ = r.WriteFrame(wstest.Frame{Fin: true, RSV: 4, Opcode: 1, Payload: []byte("x")})
				r.ReadClose()
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := run(t, tt.url, nil, pipe.Config{In: openInput(t)})
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Run: %v, want nil", err)
				}
				return
			}
			var end *pipe.EndError
			if !errors.As(err, &end) {
				t.Fatalf("Run: %v, want an *EndError", err)
			}
			if end.Code != tt.wantCode {
				t.Errorf("code %v, want %v", end.Code, tt.wantCode)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run: %v, want it to match %v", err, tt.wantIs)
			}
			if wschan.CloseStatus(err) == 1011 && end.Reason != "boom" {
				t.Errorf("reason %q, want boom", end.Reason)
			}
		})
	}
}

// TestRunDrain: the server echoes only once it has all three messages, so
// the echoes arrive after the input has ended.
func TestRunDrain(t *testing.T) {
	t.Parallel()
	url := scripted(t, nil, func(ctx context.Context, ch *wschan.Channel) {
		var got []wschan.Message
		for len(got) < 3 {
			m, err := ch.Read(ctx)
			if err != nil {
				return
			}
			got = append(got, m)
		}
		for _, m := range got {
			_ = ch.Send(ctx, m.Type, m.Data)
		}
		_, _ = ch.Read(ctx) // until the client closes
	})
	var out bytes.Buffer
	ch, err := run(t, url, nil, pipe.Config{In: strings.NewReader("a\nb\nc\n"), Out: &out})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := out.String(); got != "a\nb\nc\n" {
		t.Errorf("output %q, want every echo", got)
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) {
		t.Errorf("channel ended with %v, want closed by Run", ch.Err())
	}
}

// TestRunDrainTimeout: a server that never answers gets a close after the
// drain timeout, and Run succeeds.
func TestRunDrainTimeout(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	url := scripted(t, nil, func(ctx context.Context, ch *wschan.Channel) {
		for range ch.Messages(ctx) {
			got.Add(1)
		}
	})
	var out bytes.Buffer
	ch, err := run(t, url, nil, pipe.Config{In: strings.NewReader("a\nb\n"), Out: &out, DrainTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("output %q, want none", out.String())
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) || ch.CloseCode() != 1000 {
		t.Errorf("channel ended with %v (%v), want closed by Run with 1000", ch.Err(), ch.CloseCode())
	}
}

func TestRunCloseAfter(t *testing.T) {
	t.Parallel()
	accepted := make(chan *wschan.Channel, 1)
	url := scripted(t, nil, func(ctx context.Context, ch *wschan.Channel) {
		accepted <- ch
		_ = ch.SendText(ctx, "greeting")
		for m := range ch.Messages(ctx) {
			_ = ch.Send(ctx, m.Type, m.Data)
		}
	})
	var out bytes.Buffer
	_, err := run(t, url, nil, pipe.Config{In: openInput(t), Out: &out, CloseAfter: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := out.String(); got != "greeting\n" {
		t.Errorf("output %q, want the greeting", got)
	}
	wantServerClosed(t, accepted)
}

// TestRunCloseAfterKeepsListening: with CloseAfter, the end of the input
// does not close; here the server closes first, once the test has seen
// the echo.
func TestRunCloseAfterKeepsListening(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	url := scripted(t, nil, func(ctx context.Context, ch *wschan.Channel) {
		m, err := ch.Read(ctx)
		if err != nil {
			return
		}
		_ = ch.Send(ctx, m.Type, m.Data)
		select {
		case <-release:
		case <-ch.Done():
			return
		}
		_ = ch.SendText(ctx, "late")
		_ = ch.Close(wschan.StatusNormalClosure, "bye")
	})
	out := newLines()
	done := make(chan struct{})
	var (
		ch  *wschan.Channel
		err error
	)
	go func() {
		defer close(done)
		ch, err = run(t, url, nil, pipe.Config{In: strings.NewReader("a\n"), Out: out, CloseAfter: time.Hour})
	}()
	if got := out.next(t); got != "a\n" {
		t.Errorf("first output %q, want the echo", got)
	}
	close(release)
	<-done
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := out.String(); got != "a\nlate\n" {
		t.Errorf("output %q, want the echo and the late message", got)
	}
	var ce *wschan.CloseError
	if !errors.As(ch.Err(), &ce) || !ce.Remote || ce.Reason != "bye" {
		t.Errorf("channel ended with %v, want the server's close", ch.Err())
	}
}

func TestRunContextCancelled(t *testing.T) {
	t.Parallel()
	url, accepted := echoServer(t, nil)
	ch := wstest.Dial(t, url, nil)
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	defer pw.Close()
	out := newLines()
	errc := make(chan error, 1)
	go func() { errc <- pipe.Run(ctx, ch, pipe.Config{In: pr, Out: out}) }()
	if _, err := io.WriteString(pw, "x\n"); err != nil {
		t.Fatal(err)
	}
	if got := out.next(t); got != "x\n" {
		t.Errorf("output %q, want the echo", got)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	wantServerClosed(t, accepted)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("device gone") }

func TestRunIOErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    pipe.Config
		wantIs error
	}{
		{"input fails", pipe.Config{In: failingReader{}}, pipe.ErrInput},
		{"output fails", pipe.Config{In: strings.NewReader("x\n"), Out: failingWriter{}}, pipe.ErrOutput},
		{"output fails in JSONL", pipe.Config{In: strings.NewReader("x\n"), Out: failingWriter{}, JSONL: true}, pipe.ErrOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, accepted := echoServer(t, nil)
			_, err := run(t, url, nil, tt.cfg)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Run: %v, want %v", err, tt.wantIs)
			}
			wantServerClosed(t, accepted)
		})
	}
}

// TestRunStates checks the events written for state changes of a
// reconnecting channel, fed by hand.
func TestRunStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		jsonl     bool
		want      []string
		wantWarns string
	}{
		{"jsonl", true, []string{
			`{"type":"open","time":"` + fixedTime + `"}` + "\n",
			`{"type":"reconnecting","time":"` + fixedTime + `","error":"lost"}` + "\n",
			`{"type":"open","time":"` + fixedTime + `"}` + "\n",
		}, ""},
		{"plain", false, nil, "no connection (lost); reconnecting\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, _ := echoServer(t, nil)
			ch := wstest.Dial(t, url, nil)
			states := make(chan pipe.StateChange, 3)
			states <- pipe.StateChange{State: wschan.StateOpen}
			states <- pipe.StateChange{State: wschan.StateReconnecting, Err: errors.New("lost")}
			states <- pipe.StateChange{State: wschan.StateOpen}
			close(states)
			ctx, cancel := context.WithCancel(t.Context())
			out, warns := newLines(), newLines()
			errc := make(chan error, 1)
			go func() {
				errc <- pipe.Run(ctx, ch, pipe.Config{In: openInput(t), Out: out, Err: warns, JSONL: tt.jsonl, States: states, Now: fixedNow})
			}()
			for i, w := range tt.want {
				if got := out.next(t); got != w {
					t.Errorf("event %d: %q, want %q", i, got, w)
				}
			}
			if tt.wantWarns != "" {
				if got := warns.next(t); got != tt.wantWarns {
					t.Errorf("warning %q, want %q", got, tt.wantWarns)
				}
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// TestRunReconnect runs a real reconnecting channel: the first connection
// drops at once, the second echoes.
func TestRunReconnect(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	url := wstest.RawServer(t, func(r *wstest.Raw) {
		if conns.Add(1) == 1 {
			return // drop
		}
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if f.Opcode == 0x8 {
				_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x8, Payload: f.Payload})
				return
			}
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: f.Opcode, Payload: f.Payload})
		}
	})
	// The input is written once the second connection is open: a message
	// sent just before the drop could be lost, as wschan documents.
	states := make(chan pipe.StateChange, 16)
	pr, pw := io.Pipe()
	var opens atomic.Int64
	opts := &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{MinDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
		OnStateChange: func(s wschan.State, err error) {
			states <- pipe.StateChange{State: s, Err: err}
			if s == wschan.StateOpen && opens.Add(1) == 2 {
				go func() {
					_, _ = io.WriteString(pw, "hi\n")
					_ = pw.Close()
				}()
			}
		},
	}
	t.Cleanup(func() { _ = pw.Close() })
	var out bytes.Buffer
	ch, err := run(t, url, opts, pipe.Config{In: pr, Out: &out, JSONL: true, States: states})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var types []string
	dec := json.NewDecoder(&out)
	for dec.More() {
		var e struct{ Type, Data string }
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if e.Type == "text" && e.Data != "hi" {
			t.Errorf("text %q, want hi", e.Data)
		}
		types = append(types, e.Type)
	}
	// The echo may be written just before the second "open" is.
	lifecycle := slices.DeleteFunc(slices.Clone(types), func(s string) bool { return s == "text" })
	if want := []string{"open", "reconnecting", "open", "close"}; !slices.Equal(lifecycle, want) || !slices.Contains(types, "text") {
		t.Errorf("events %v, want %v with one text", types, want)
	}
	if !errors.Is(ch.Err(), wschan.ErrClosed) {
		t.Errorf("channel ended with %v, want closed by Run", ch.Err())
	}
}
