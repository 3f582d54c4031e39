package tui

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
)

// waitTimeout bounds every wait for the real server; no test waits for time.
const waitTimeout = 10 * time.Second

// echoServer is an echo server on a loopback port (internal/wstest): it
// echoes every message, counts what it receives, and on stop closes every
// connection with 1001 "server shutting down", as wschan serve drains.
type echoServer struct {
	wsURL    string
	received atomic.Int64
	stop     func() // closes every connection, stops the server and waits; idempotent

	mu    sync.Mutex
	chans []*wschan.Channel
	wg    sync.WaitGroup
}

func startServer(t testing.TB) *echoServer {
	t.Helper()
	s := &echoServer{}
	u, srv := wstest.Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.chans = append(s.chans, ch)
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		ctx := context.Background()
		for m := range ch.Messages(ctx) {
			s.received.Add(1)
			if ch.Send(ctx, m.Type, m.Data) != nil {
				return
			}
		}
	}))
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			s.mu.Lock()
			chans := s.chans
			s.mu.Unlock()
			for _, ch := range chans {
				_ = ch.Close(wschan.StatusGoingAway, "server shutting down")
			}
			srv.Close()
			s.wg.Wait()
		})
	}
	t.Cleanup(s.stop)
	s.wsURL = u + "/ws"
	return s
}

// dial connects to url with a StateFeed hooked in and closes the channel
// at cleanup.
func dial(t testing.TB, url string, reconnect bool) (*wschan.Channel, *StateFeed) {
	t.Helper()
	feed := NewStateFeed()
	opts := &wschan.DialOptions{OnStateChange: feed.OnStateChange}
	if reconnect {
		opts.Reconnect = &wschan.ReconnectOptions{MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	ch, err := wschan.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close(wschan.StatusNormalClosure, "") })
	return ch, feed
}

// clock is a Config.Now that starts at 12:00:00 and moves one second per
// call, so log times are the same on every run.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// newModel builds a Model on ch showing the fixed URL (the real one has a
// random port) with a fixed clock, sized w×h.
func newModel(t testing.TB, ch Channel, states <-chan StateMsg, w, h int) Model {
	t.Helper()
	m := New(Config{Channel: ch, URL: "ws://127.0.0.1:8080/ws", States: states, Now: clock()})
	return update(t, m, tea.WindowSizeMsg{Width: w, Height: h})
}

func update(t testing.TB, m Model, msg tea.Msg) Model {
	t.Helper()
	m2, _ := updateCmd(t, m, msg)
	return m2
}

func updateCmd(t testing.TB, m Model, msg tea.Msg) (Model, tea.Cmd) {
	t.Helper()
	tm, cmd := m.Update(msg)
	nm, ok := tm.(Model)
	if !ok {
		t.Fatalf("Update returned %T", tm)
	}
	return nm, cmd
}

func typeText(t testing.TB, m Model, s string) Model {
	t.Helper()
	for _, r := range s {
		m = update(t, m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	return m
}

func press(code rune, mod ...tea.KeyMod) tea.KeyPressMsg {
	k := tea.KeyPressMsg{Code: code}
	for _, md := range mod {
		k.Mod |= md
	}
	return k
}

// run runs cmd, as Bubble Tea would on a goroutine, and returns its
// message; it fails the test if cmd does not return within waitTimeout.
func run(t testing.TB, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	c := make(chan tea.Msg, 1)
	go func() { c <- cmd() }()
	select {
	case msg := <-c:
		return msg
	case <-time.After(waitTimeout):
		t.Fatal("command did not return")
		return nil
	}
}

// sendAndEcho presses Enter on the typed text, runs the send, then reads
// the echo with the model's read command and feeds it to Update.
func sendAndEcho(t testing.TB, m Model, text string) Model {
	t.Helper()
	m = typeText(t, m, text)
	m, cmd := updateCmd(t, m, press(tea.KeyEnter))
	if msg, ok := run(t, cmd).(sentMsg); !ok || msg.err != nil {
		t.Fatalf("send: got %#v", msg)
	}
	return readOne(t, m)
}

// readOne runs the model's read command and feeds its message to Update.
func readOne(t testing.TB, m Model) Model {
	t.Helper()
	msg := run(t, m.readCmd())
	if _, ok := msg.(receivedMsg); !ok {
		t.Fatalf("read: got %#v", msg)
	}
	return update(t, m, msg)
}

// render is the view as the golden files hold it: colours dropped (ASCII
// profile), bold and such kept.
func render(t testing.TB, m Model) string {
	t.Helper()
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.Ascii}
	if _, err := w.WriteString(m.View().Content); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// plain is the view without any styling, for substring checks.
func plain(t testing.TB, m Model) string {
	t.Helper()
	var b strings.Builder
	w := &colorprofile.Writer{Forward: &b, Profile: colorprofile.NoTTY}
	if _, err := w.WriteString(m.View().Content); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
