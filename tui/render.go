package tui

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"charm.land/lipgloss/v2"
	"github.com/wschan/wschan"
)

// styles are the model's Lip Gloss styles. Colours are downsampled (or
// dropped) by Bubble Tea for the terminal at hand.
type styles struct {
	title, label, latest, empty   lipgloss.Style
	logHead, time, sent, received lipgloss.Style
	binary, note, failure, help   lipgloss.Style
	state                         map[wschan.State]lipgloss.Style
	url                           lipgloss.Style
}

func defaultStyles() styles {
	purple := lipgloss.Color("#7D56F4")
	green := lipgloss.Color("#04B575")
	yellow := lipgloss.Color("#E5C07B")
	red := lipgloss.Color("#E06C75")
	grey := lipgloss.Color("#7F7F7F")
	cyan := lipgloss.Color("#56B6C2")
	magenta := lipgloss.Color("#C678DD")
	return styles{
		title:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("#FAFAFA")).Background(purple).Padding(0, 1),
		label:    lipgloss.NewStyle().Bold(true),
		latest:   lipgloss.NewStyle().Bold(true),
		empty:    lipgloss.NewStyle().Faint(true),
		logHead:  lipgloss.NewStyle().Foreground(grey),
		time:     lipgloss.NewStyle().Foreground(grey),
		sent:     lipgloss.NewStyle().Foreground(cyan),
		received: lipgloss.NewStyle().Foreground(green),
		binary:   lipgloss.NewStyle().Foreground(magenta),
		note:     lipgloss.NewStyle().Foreground(grey).Italic(true),
		failure:  lipgloss.NewStyle().Foreground(red),
		help:     lipgloss.NewStyle().Foreground(grey),
		url:      lipgloss.NewStyle().Underline(true),
		state: map[wschan.State]lipgloss.Style{
			wschan.StateConnecting:   lipgloss.NewStyle().Bold(true).Foreground(yellow),
			wschan.StateOpen:         lipgloss.NewStyle().Bold(true).Foreground(green),
			wschan.StateReconnecting: lipgloss.NewStyle().Bold(true).Foreground(yellow),
			wschan.StateClosed:       lipgloss.NewStyle().Bold(true).Foreground(red),
		},
	}
}

// maxHexBytes is how many bytes of a binary message are shown in hex.
const maxHexBytes = 16

// describe renders a message's payload on one line: text with control
// characters escaped, binary as its size and first bytes in hex.
func describe(typ wschan.MessageType, data []byte) string {
	if typ == wschan.Binary {
		return describeBinary(data)
	}
	return escapeControls(string(data))
}

// describeBinary is "[binary 5 bytes] 01 02 03 04 05", ending in "…" after
// maxHexBytes bytes.
func describeBinary(data []byte) string {
	var b strings.Builder
	unit := "bytes"
	if len(data) == 1 {
		unit = "byte"
	}
	fmt.Fprintf(&b, "[binary %d %s]", len(data), unit)
	for i, c := range data {
		if i == maxHexBytes {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " %02x", c)
	}
	return b.String()
}

// escapeControls writes control characters (newlines, tabs, escape
// sequences) as Go escapes, so a message cannot break the layout or drive
// the terminal.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// stateText is the status line's word for a state.
func stateText(s wschan.State) string {
	switch s {
	case wschan.StateConnecting:
		return "connecting…"
	case wschan.StateOpen:
		return "open"
	case wschan.StateReconnecting:
		return "reconnecting…"
	default:
		return "closed"
	}
}

// reconnectNote is the log's line for a redial and its cause:
// "reconnecting: wschan: connection lost".
func reconnectNote(err error) string {
	if err == nil {
		return "reconnecting"
	}
	return "reconnecting: " + oneLine(err.Error())
}

// closedText is "closed: 1000 (normal closure) bye".
func closedText(code wschan.StatusCode, reason string) string {
	if code == 0 { // not ended: should not happen
		return "closed"
	}
	s := "closed: " + code.String()
	if reason != "" {
		s += " " + escapeControls(reason)
	}
	return s
}

func oneLine(s string) string { return escapeControls(s) }
