package tui

import (
	"bytes"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"
	"github.com/wschan/wschan"
)

// TestProgram runs the whole program on teatest's virtual terminal against
// the real server: connect, type, Enter, see the echo, Esc, exit with 1000.
func TestProgram(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, feed := dial(t, srv.wsURL, true)
	m := New(Config{Channel: ch, URL: srv.wsURL, States: feed.C(), Now: clock()})

	tm := teatest.NewTestModel(t, m,
		teatest.WithInitialTermSize(80, 24),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)),
	)
	out := tm.Output()
	waitFor(t, out, "connected")

	tm.Type("hello")
	tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
	waitFor(t, out, "12:00:03 < hello")

	tm.Send(tea.KeyPressMsg{Code: tea.KeyEscape})
	tm.WaitFinished(t, teatest.WithFinalTimeout(waitTimeout))
	final, ok := tm.FinalModel(t).(Model)
	if !ok {
		t.Fatalf("final model is %T", tm.FinalModel(t))
	}
	if !final.ended || final.endText != "closed: 1000 (normal closure) bye" {
		t.Errorf("final model: ended %v, %q", final.ended, final.endText)
	}
	if ch.CloseCode() != wschan.StatusNormalClosure {
		t.Errorf("channel closed with %v, want 1000", ch.CloseCode())
	}
	if n := srv.received.Load(); n != 1 {
		t.Errorf("server received %v messages, want 1", n)
	}
}

// waitFor waits until the program has written s: a condition on output,
// checked as output arrives, bounded by waitTimeout.
func waitFor(t *testing.T, out interface{ Read([]byte) (int, error) }, s string) {
	t.Helper()
	teatest.WaitFor(t, out, func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
		teatest.WithDuration(waitTimeout))
}
