// Package tui is the "Work with WebSockets" recipe's app in the terminal:
// a Bubble Tea v2 program over a wschan channel, with a title bar
// "WebSocket Demo", an input "Send a message", the latest message received
// shown under the form, a scrollable log of everything sent and received,
// and a status line with the connection state and the server URL.
//
// Start with New and Config; hand the Model to tea.NewProgram. Messages
// arrive through a command that blocks on Channel.Read and is issued again
// for each message; state changes arrive the same way from a StateFeed
// wired to wschan.DialOptions.OnStateChange. Esc or Ctrl+C closes the
// channel with 1000 and quits, as the recipe closes its sink in dispose.
//
// RunPlain is the same client without a screen, for when standard input
// or output is not a terminal: each input line is sent, each message
// received is printed as "< text".
//
// The package owns no server and no dialling: cmd/wschan starts the echo
// server, dials it and runs the program. Dependencies: Bubble Tea, Bubbles
// and Lip Gloss v2 (the terminal UI), and x/ansi from the same authors for
// width-aware truncation.
package tui
