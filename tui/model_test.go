package tui

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/wschan/wschan"
)

func TestEchoBecomesLatest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		key  tea.KeyPressMsg
	}{
		{"enter", press(tea.KeyEnter)},
		{"ctrl+s", press('s', tea.ModCtrl)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			ch, _ := dial(t, srv.wsURL, false)
			m := newModel(t, ch, nil, 80, 24)

			m = typeText(t, m, "hello")
			m, cmd := updateCmd(t, m, tc.key)
			if got := m.input.Value(); got != "" {
				t.Errorf("input after send = %q, want it cleared", got)
			}
			if len(m.entries) != 1 || m.entries[0].kind != entrySent || string(m.entries[0].data) != "hello" {
				t.Fatalf("log after send = %+v, want one sent entry", m.entries)
			}
			if msg := run(t, cmd); msg != (sentMsg{}) {
				t.Fatalf("send: %#v", msg)
			}
			if m.latest != nil {
				t.Fatalf("latest before the echo = %+v", m.latest)
			}
			m = readOne(t, m)
			if m.latest == nil || string(m.latest.data) != "hello" || m.latest.typ != wschan.Text {
				t.Fatalf("latest = %+v, want the echo of hello", m.latest)
			}
			if v := plain(t, m); !strings.Contains(v, "\n hello") || !strings.Contains(v, "< hello") {
				t.Errorf("view does not show the echo as latest message and in the log:\n%s", v)
			}
			if n := srv.received.Load(); n != 1 {
				t.Errorf("server received %v messages, want 1", n)
			}
		})
	}
}

func TestEmptyInputSendsNothing(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 24)

	m, cmd := updateCmd(t, m, press(tea.KeyEnter))
	if cmd != nil {
		t.Fatalf("Enter on an empty input returned a command (%#v)", run(t, cmd))
	}
	m, cmd = updateCmd(t, m, press('s', tea.ModCtrl))
	if cmd != nil {
		t.Fatalf("Ctrl+S on an empty input returned a command (%#v)", run(t, cmd))
	}
	if len(m.entries) != 0 {
		t.Fatalf("log = %+v, want empty", m.entries)
	}
	// Messages arrive in order: if the empty input had been sent, its echo
	// would come before this one, and the server would count two.
	m = sendAndEcho(t, m, "after")
	if got := string(m.latest.data); got != "after" {
		t.Errorf("first echo = %q, want %q", got, "after")
	}
	if n := srv.received.Load(); n != 1 {
		t.Errorf("server received %v messages, want 1", n)
	}
	if len(m.entries) != 2 {
		t.Errorf("log = %+v, want one sent and one received entry", m.entries)
	}
}

func TestBinaryShownDistinctly(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 24)

	data := make([]byte, 20)
	for i := range data {
		data[i] = byte(i + 1)
	}
	if err := ch.Send(t.Context(), wschan.Binary, data); err != nil {
		t.Fatal(err)
	}
	m = readOne(t, m)
	want := "[binary 20 bytes] 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 …"
	if v := plain(t, m); !strings.Contains(v, "< "+want) || !strings.Contains(v, "\n "+want) {
		t.Errorf("view does not show %q as latest and in the log:\n%s", want, v)
	}
}

func TestQuitClosesWith1000(t *testing.T) {
	t.Parallel()
	for _, k := range []tea.KeyPressMsg{press(tea.KeyEscape), press('c', tea.ModCtrl)} {
		t.Run(k.String(), func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			ch, _ := dial(t, srv.wsURL, false)
			m := newModel(t, ch, nil, 80, 24)

			m, cmd := updateCmd(t, m, k)
			if !strings.Contains(plain(t, m), "closing…") {
				t.Errorf("status while closing:\n%s", plain(t, m))
			}
			// Keys while closing do nothing.
			if _, c := updateCmd(t, typeText(t, m, "x"), press(tea.KeyEnter)); c != nil {
				t.Error("Enter while closing returned a command")
			}
			m, cmd = updateCmd(t, m, run(t, cmd))
			if cmd == nil {
				t.Fatal("no quit after close")
			}
			if _, ok := cmd().(tea.QuitMsg); !ok {
				t.Fatal("command after close is not tea.Quit")
			}
			if ch.CloseCode() != wschan.StatusNormalClosure || !errors.Is(ch.Err(), wschan.ErrClosed) {
				t.Errorf("channel ended with %v, %v; want 1000 closed by us", ch.CloseCode(), ch.Err())
			}
			if v := plain(t, m); !strings.Contains(v, "closed: 1000 (normal closure) bye") {
				t.Errorf("view after close:\n%s", v)
			}
			// The read command, still outstanding in a real program, ends.
			if msg, ok := run(t, m.readCmd()).(endedMsg); !ok || !errors.Is(msg.err, wschan.ErrClosed) {
				t.Errorf("read after close: %#v", msg)
			}
		})
	}
}

func TestServerGone(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 24)
	m = sendAndEcho(t, m, "before")

	srv.stop()
	msg := run(t, m.readCmd())
	if _, ok := msg.(endedMsg); !ok {
		t.Fatalf("read after server stop: %#v", msg)
	}
	m, cmd := updateCmd(t, m, msg)
	if cmd != nil {
		t.Error("the model reads again after the channel ended")
	}
	if v := plain(t, m); !strings.Contains(v, "closed: 1001 (going away) server shutting down") {
		t.Errorf("view after the server stopped:\n%s", v)
	}
	// Sending now fails in the log, without a panic.
	m = typeText(t, m, "late")
	m, cmd = updateCmd(t, m, press(tea.KeyEnter))
	m = update(t, m, run(t, cmd))
	if v := plain(t, m); !strings.Contains(v, "! send failed:") {
		t.Errorf("view after a send on the ended channel:\n%s", v)
	}
	// Quitting still works.
	m, cmd = updateCmd(t, m, press(tea.KeyEscape))
	if _, cmd = updateCmd(t, m, run(t, cmd)); cmd == nil {
		t.Fatal("no quit")
	}
}

func TestServerGoneReconnecting(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, feed := dial(t, srv.wsURL, true)
	m := newModel(t, ch, feed.C(), 80, 24)

	m = nextState(t, m, wschan.StateOpen)
	if v := plain(t, m); !strings.Contains(v, "open  ws://127.0.0.1:8080/ws") {
		t.Errorf("status when open:\n%s", v)
	}
	m = sendAndEcho(t, m, "before")

	srv.stop()
	m = nextState(t, m, wschan.StateReconnecting)
	v := plain(t, m)
	if !strings.Contains(v, "reconnecting…") {
		t.Errorf("status after the server stopped:\n%s", v)
	}
	// A message typed now waits in the channel's buffer.
	m = typeText(t, m, "buffered")
	m, cmd := updateCmd(t, m, press(tea.KeyEnter))
	m = update(t, m, run(t, cmd))

	m, cmd = updateCmd(t, m, press(tea.KeyEscape))
	m, cmd = updateCmd(t, m, run(t, cmd))
	if cmd == nil {
		t.Fatal("no quit")
	}
	v = plain(t, m)
	for _, want := range []string{"wschan: 1 buffered messages not delivered", "closed: 1000 (normal closure) bye"} {
		if !strings.Contains(v, want) {
			t.Errorf("view after quitting lacks %q:\n%s", want, v)
		}
	}
}

// nextState runs the model's state command until it reports want.
func nextState(t *testing.T, m Model, want wschan.State) Model {
	t.Helper()
	for {
		msg := run(t, m.statesCmd())
		s, ok := msg.(StateMsg)
		if !ok {
			t.Fatalf("waiting for %v: got %#v", want, msg)
		}
		m = update(t, m, s)
		if s.State == want {
			if m.state != want {
				t.Fatalf("model state = %v after %v", m.state, s)
			}
			return m
		}
	}
}

func TestScroll(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 60, 16) // 5 log lines
	for i := range 8 {
		m = sendAndEcho(t, m, "message "+string(rune('a'+i)))
	}
	if !m.log.AtBottom() {
		t.Fatal("the log does not follow new messages")
	}
	bottom := plain(t, m)
	m = update(t, m, press(tea.KeyPgUp))
	if m.log.AtBottom() || plain(t, m) == bottom {
		t.Fatal("pgup did not scroll the log")
	}
	// A message arriving while scrolled up does not move the view.
	top := m.log.YOffset()
	m = sendAndEcho(t, m, "new")
	if m.log.YOffset() != top {
		t.Errorf("log moved from line %d to %d while scrolled up", top, m.log.YOffset())
	}
	m = update(t, m, press(tea.KeyPgDown))
	m = update(t, m, press(tea.KeyPgDown))
	m = update(t, m, press(tea.KeyPgDown))
	if !m.log.AtBottom() {
		t.Error("pgdown did not get back to the bottom")
	}
}

// TestView pins the screen after an echo and a binary message.
func TestView(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 20)
	golden.RequireEqual(t, render(t, m))

	t.Run("echo", func(t *testing.T) {
		m := sendAndEcho(t, m, "Hello!")
		if err := ch.Send(t.Context(), wschan.Binary, []byte{1, 2, 3, 4, 5}); err != nil {
			t.Fatal(err)
		}
		m = readOne(t, m)
		m = typeText(t, m, "typing")
		golden.RequireEqual(t, render(t, m))
	})
}

// TestViewResize pins the layout at 40 and 100 columns: the same model,
// resized.
func TestViewResize(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 24)
	m = sendAndEcho(t, m, "a message long enough to wrap in a narrow window, which it should do")

	views := map[int]string{}
	for _, w := range []int{40, 100} {
		t.Run(strconv.Itoa(w), func(t *testing.T) {
			m := update(t, m, tea.WindowSizeMsg{Width: w, Height: 16})
			v := render(t, m)
			golden.RequireEqual(t, v)
			lines := strings.Split(plain(t, m), "\n")
			if len(lines) != 16 {
				t.Errorf("%d lines, want 16", len(lines))
			}
			for _, l := range lines {
				if n := len([]rune(l)); n > w {
					t.Errorf("line %q is %d wide, window %d", l, n, w)
				}
			}
			views[w] = v
		})
	}
	if views[40] == views[100] {
		t.Error("the layout did not change with the width")
	}
}

func TestTinyWindows(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	m := newModel(t, ch, nil, 80, 24)
	m = sendAndEcho(t, m, "hello there")
	for _, size := range [][2]int{{0, 0}, {1, 1}, {10, 3}, {20, 12}} {
		t.Run(strconv.Itoa(size[0])+"x"+strconv.Itoa(size[1]), func(t *testing.T) {
			m := update(t, m, tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			v := plain(t, m) // no panic, and the title as far as it fits
			if w := max(size[0]-2, 1); !strings.HasPrefix(v, " "+Title[:min(w-1, len(Title))]) {
				t.Errorf("no title in:\n%s", v)
			}
		})
	}
}
