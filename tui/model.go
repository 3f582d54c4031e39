package tui

import (
	"context"
	"errors"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/wschan/wschan"
)

// Title is the title bar's text, as in the recipe.
const Title = "WebSocket Demo"

// Layout and limits.
const (
	defaultWidth  = 80 // until the first tea.WindowSizeMsg
	defaultHeight = 24
	maxEntries    = 1000 // log entries kept; older ones are dropped
	sendTimeout   = 10 * time.Second
	closeReason   = "bye"
	timeLayout    = "15:04:05"
)

// Config is what New needs to build a Model. The zero value of a field
// means its default.
type Config struct {
	// Channel is the connection the screen shows; required. The Model reads
	// from it, sends on it and closes it (with 1000 on Esc or Ctrl+C).
	Channel Channel

	// URL is the server URL shown in the status line.
	URL string

	// States delivers the channel's state changes (connecting, open,
	// reconnecting, closed): pass StateFeed.C and set
	// wschan.DialOptions.OnStateChange to the feed's OnStateChange.
	// Default nil: the status line shows the channel's state when the
	// Model is built and changes only when the channel ends.
	States <-chan StateMsg

	// Now stamps the log entries. Default time.Now.
	Now func() time.Time
}

// Model is the demo screen, a tea.Model. Build it with New.
//
// Goroutines: the commands it returns block on Channel.Read and on
// Config.States until a message or change arrives or the channel ends;
// they end with the channel. The Model closes the channel when the user
// quits, so a program that quits any other way should close it too.
type Model struct {
	ch     Channel
	url    string
	states <-chan StateMsg
	now    func() time.Time
	st     styles

	width, height int
	input         textinput.Model
	log           viewport.Model
	entries       []entry
	latest        *entry // latest message received; nil before the first

	state   wschan.State
	fed     wschan.State // the last state from Config.States; -1 before the first
	ended   bool         // the channel has ended
	endText string       // how it ended: "closed: 1000 (normal closure) bye"
	closing bool         // Esc or Ctrl+C: closing the channel, then quitting
}

var _ tea.Model = Model{}

// entry is one line of the log.
type entry struct {
	at   time.Time
	kind entryKind
	typ  wschan.MessageType
	data []byte // sent or received payload
	note string // for notes and failures
}

type entryKind int

const (
	entrySent entryKind = iota
	entryReceived
	entryNote
	entryFailure
)

// Messages the Model's commands produce.
type (
	// receivedMsg is a message read from the channel.
	receivedMsg struct{ m wschan.Message }
	// endedMsg says Read returned the error that ended the channel.
	endedMsg struct{ err error }
	// sentMsg reports a send that returned, err nil on success.
	sentMsg struct{ err error }
	// statesDoneMsg says the channel ended and no state change is left.
	statesDoneMsg struct{}
	// closedMsg reports Close's result; the Model quits on it.
	closedMsg struct{ err error }
)

// New builds the Model for cfg; it panics if cfg.Channel is nil. It does
// not start anything: Init returns the commands that read from the channel.
func New(cfg Config) Model {
	if cfg.Channel == nil {
		panic("tui: Config.Channel is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "Send a message"
	s := in.Styles()
	s.Cursor.Blink = false // a steady cursor: no timer, the same picture every time
	in.SetStyles(s)
	in.Focus()

	vp := viewport.New()
	vp.FillHeight = true
	vp.KeyMap = viewport.KeyMap{
		PageDown: key.NewBinding(key.WithKeys("pgdown")),
		PageUp:   key.NewBinding(key.WithKeys("pgup")),
		Down:     key.NewBinding(key.WithKeys("down")),
		Up:       key.NewBinding(key.WithKeys("up")),
	}

	m := Model{
		ch:     cfg.Channel,
		url:    cfg.URL,
		states: cfg.States,
		now:    cfg.Now,
		st:     defaultStyles(),
		width:  defaultWidth,
		height: defaultHeight,
		input:  in,
		log:    vp,
		state:  cfg.Channel.State(),
		fed:    -1,
	}
	m.layout()
	return m
}

// Init starts reading messages and state changes.
func (m Model) Init() tea.Cmd {
	return tea.Batch(m.readCmd(), m.statesCmd())
}

// readCmd blocks for the next message. It is issued once at the start and
// again after each message, so one Read is outstanding at a time.
func (m Model) readCmd() tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		msg, err := ch.Read(context.Background()) // returns when the channel ends
		if err != nil {
			return endedMsg{err}
		}
		return receivedMsg{msg}
	}
}

// statesCmd blocks for the next state change; once the channel has ended
// it returns the changes still queued, then statesDoneMsg.
func (m Model) statesCmd() tea.Cmd {
	states, done := m.states, m.ch.Done()
	if states == nil {
		return nil
	}
	return func() tea.Msg {
		select {
		case s := <-states:
			return s
		case <-done:
		}
		select {
		case s := <-states:
			return s
		default:
			return statesDoneMsg{}
		}
	}
}

// sendCmd sends text; sends run off the update loop, so a slow peer or
// a full reconnect buffer never freezes the screen.
func (m Model) sendCmd(text string) tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
		defer cancel()
		return sentMsg{ch.Send(ctx, wschan.Text, []byte(text))}
	}
}

// closeCmd closes the channel with 1000, the recipe's sink.close().
func (m Model) closeCmd() tea.Cmd {
	ch := m.ch
	return func() tea.Msg {
		return closedMsg{ch.Close(wschan.StatusNormalClosure, closeReason)}
	}
}

// Update handles keys, window sizes and the results of the commands.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil

	case tea.KeyPressMsg:
		if m.closing {
			return m, nil
		}
		switch msg.String() {
		case "ctrl+c", "esc":
			return m.quit()
		case "enter", "ctrl+s":
			return m.send()
		case "pgup", "pgdown", "up", "down":
			var cmd tea.Cmd
			m.log, cmd = m.log.Update(msg)
			return m, cmd
		}

	case receivedMsg:
		e := entry{at: m.now(), kind: entryReceived, typ: msg.m.Type, data: msg.m.Data}
		m.latest = &e
		m.addEntry(e)
		return m, m.readCmd()

	case endedMsg:
		m.end(msg.err)
		return m, nil

	case sentMsg:
		if msg.err != nil {
			m.addEntry(entry{at: m.now(), kind: entryFailure, note: "send failed: " + oneLine(msg.err.Error())})
		}
		return m, nil

	case StateMsg:
		m.setState(msg)
		return m, m.statesCmd()

	case statesDoneMsg:
		return m, nil

	case closedMsg:
		if msg.err != nil { // such as messages still buffered for a reconnect
			m.addEntry(entry{at: m.now(), kind: entryFailure, note: oneLine(msg.err.Error())})
		}
		if !m.ended {
			m.end(m.ch.Err())
		}
		return m, tea.Quit
	}

	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// send sends the input's text, if any, and clears the input. The log shows
// the message at once, so it always comes before its echo.
func (m Model) send() (tea.Model, tea.Cmd) {
	text := m.input.Value()
	if text == "" {
		return m, nil
	}
	m.input.Reset()
	m.addEntry(entry{at: m.now(), kind: entrySent, typ: wschan.Text, data: []byte(text)})
	return m, m.sendCmd(text)
}

func (m Model) quit() (tea.Model, tea.Cmd) {
	m.closing = true
	m.input.Blur()
	return m, m.closeCmd()
}

func (m *Model) setState(s StateMsg) {
	if m.ended {
		return
	}
	if s.State == m.fed && s.State != wschan.StateReconnecting {
		return
	}
	m.fed, m.state = s.State, s.State
	switch s.State {
	case wschan.StateOpen:
		m.addEntry(entry{at: m.now(), kind: entryNote, note: "connected"})
	case wschan.StateReconnecting:
		// Each failed redial reports again: log the cause when it changes.
		note := reconnectNote(s.Err)
		if n := len(m.entries); n == 0 || m.entries[n-1].kind != entryNote || m.entries[n-1].note != note {
			m.addEntry(entry{at: m.now(), kind: entryNote, note: note})
		}
	case wschan.StateClosed:
		m.end(s.Err)
	}
}

// end records how the channel ended.
func (m *Model) end(err error) {
	if m.ended {
		return
	}
	m.ended = true
	m.state = wschan.StateClosed
	m.endText = closedText(m.ch.CloseCode(), m.ch.CloseReason())
	if err != nil && !errors.Is(err, wschan.ErrClosed) && !errors.As(err, new(*wschan.CloseError)) {
		m.endText += " (" + oneLine(err.Error()) + ")"
	}
	m.addEntry(entry{at: m.now(), kind: entryNote, note: m.endText})
}

func (m *Model) addEntry(e entry) {
	if len(m.entries) >= maxEntries {
		m.entries = append(m.entries[:0:0], m.entries[len(m.entries)-maxEntries+1:]...)
	}
	m.entries = append(m.entries, e)
	atBottom := m.log.AtBottom()
	m.log.SetContentLines(m.logLines())
	if atBottom {
		m.log.GotoBottom()
	}
}

// Fixed rows around the log: title, blank, label, input, blank, latest
// label, latest, blank, log heading, (log), status, help.
const chromeRows = 11

// layout sizes the input and the log for the window.
func (m *Model) layout() {
	inner := max(m.width-2, 1)
	m.input.SetWidth(max(inner-lipgloss.Width(m.input.Prompt)-1, 1))
	m.log.SetWidth(inner)
	m.log.SetHeight(max(m.height-chromeRows, 1))
	m.log.SetContentLines(m.logLines())
	m.log.GotoBottom()
}

// logLines renders the log for the viewport's width: each entry starts
// with its time and direction, and wraps under its text.
func (m Model) logLines() []string {
	width := m.log.Width()
	lines := make([]string, 0, len(m.entries))
	for _, e := range m.entries {
		lines = append(lines, m.renderEntry(e, width)...)
	}
	return lines
}

// prefixWidth is the width of "15:04:05 > ".
const prefixWidth = len(timeLayout) + 3

func (m Model) renderEntry(e entry, width int) []string {
	var mark string
	var text string
	style := lipgloss.NewStyle()
	switch e.kind {
	case entrySent:
		mark, text = m.st.sent.Render(">"), describe(e.typ, e.data)
	case entryReceived:
		mark, text = m.st.received.Render("<"), describe(e.typ, e.data)
	case entryFailure:
		mark, text, style = m.st.failure.Render("!"), e.note, m.st.failure
	default:
		mark, text, style = m.st.note.Render("·"), e.note, m.st.note
	}
	if e.typ == wschan.Binary && (e.kind == entrySent || e.kind == entryReceived) {
		style = m.st.binary
	}
	wrapped := strings.Split(ansi.Wrap(text, max(width-prefixWidth, 8), ""), "\n")
	out := make([]string, len(wrapped))
	indent := strings.Repeat(" ", prefixWidth)
	for i, l := range wrapped {
		if i == 0 {
			out[i] = m.st.time.Render(e.at.Format(timeLayout)) + " " + mark + " " + style.Render(l)
		} else {
			out[i] = indent + style.Render(l)
		}
	}
	return out
}

// View draws the screen: the recipe's title bar, form and latest message,
// then the log and the status line.
func (m Model) View() tea.View {
	w := max(m.width, 1)
	inner := max(w-2, 1)
	pad := func(s string) string { return " " + ansi.Truncate(s, inner, "…") }

	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }

	line(m.st.title.Width(w).Render(ansi.Truncate(Title, max(w-2, 1), "…")))
	line("")
	line(pad(m.st.label.Render("Send a message")))
	line(" " + m.input.View())
	line("")
	line(pad(m.st.empty.Render("Latest message")))
	if m.latest != nil {
		s := describe(m.latest.typ, m.latest.data)
		if m.latest.typ == wschan.Binary {
			line(pad(m.st.binary.Bold(true).Render(ansi.Truncate(s, inner, "…"))))
		} else {
			line(pad(m.st.latest.Render(ansi.Truncate(s, inner, "…"))))
		}
	} else {
		line(pad(m.st.empty.Render("(nothing yet)")))
	}
	line("")
	heading := "Log "
	line(pad(m.st.logHead.Render(heading + strings.Repeat("─", max(inner-len(heading), 0)))))
	for l := range strings.SplitSeq(m.log.View(), "\n") {
		line(" " + l)
	}
	line(pad(m.statusLine()))
	b.WriteString(pad(m.st.help.Render(m.helpText())))

	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = Title
	return v
}

func (m Model) statusLine() string {
	text := stateText(m.state)
	switch {
	case m.closing && !m.ended:
		text = "closing…"
	case m.ended:
		text = m.endText
	}
	s := m.st.state[m.state].Render(text)
	if m.url != "" {
		s += "  " + m.st.url.Render(m.url)
	}
	return s
}

func (m Model) helpText() string {
	if m.ended {
		return "esc quit · ↑/↓ pgup/pgdn scroll"
	}
	return "enter send · ↑/↓ pgup/pgdn scroll · esc quit"
}
