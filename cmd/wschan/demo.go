package main

import (
	"context"
	"errors"
	"fmt"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/server"
	"github.com/wschan/wschan/tui"
)

// newDemoCmd is `wschan demo`: the recipe's app in the terminal. `wschan`
// without arguments does the same through runDemo.
func newDemoCmd() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: `Run the "Work with WebSockets" demo app in the terminal, on an in-process echo server`,
		Long: `Run the "Work with WebSockets" demo app in the terminal: type a message,
press Enter (or Ctrl+S) to send it, and see the server's answer under the
form and in the log below, with the connection's state and the server URL.
Esc or Ctrl+C closes the connection with 1000 and quits.

By default it starts the echo server (the one 'wschan serve' runs) inside
the process on a free loopback port, so it works offline; --url connects
to any other server instead. The connection redials if it drops.

When standard input or output is not a terminal, it runs without a screen:
each input line is sent, and each message received is printed as "< text".`,
		Example: `  wschan demo
  wschan demo --url ws://localhost:8080/ws
  printf 'hello\n' | wschan demo     # prints "< hello"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, url) },
	}
	cmd.Flags().StringVar(&url, "url", "",
		"connect to this `ws:// or wss:// URL` instead of starting the echo server in-process")
	return cmd
}

// runDemo runs the demo on cmd's input and output: against url, or, when
// url is empty, against an echo server it starts on loopback and stops
// before returning. Errors after the command line was understood are
// runtimeErrors.
func runDemo(cmd *cobra.Command, url string) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	in, out := cmd.InOrStdin(), cmd.OutOrStdout()

	if url == "" {
		u, stop, err := startDemoServer(ctx)
		if err != nil {
			return runtimeError{err}
		}
		defer stop()
		url = u
	}

	// The first state after connecting says whether the server is there;
	// every state also goes to the screen.
	feed := tui.NewStateFeed()
	first := make(chan tui.StateMsg, 1)
	opts := &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{},
		OnStateChange: func(s wschan.State, err error) {
			feed.OnStateChange(s, err)
			if s != wschan.StateConnecting {
				select {
				case first <- tui.StateMsg{State: s, Err: err}:
				default:
				}
			}
		},
	}
	ch, err := wschan.Dial(ctx, url, opts)
	if err != nil {
		if errors.Is(err, wschan.ErrInvalidURL) {
			return fmt.Errorf("--url %q: %w; give a URL such as ws://localhost:8080/ws", url, err)
		}
		return runtimeError{connectError(url, err)}
	}
	defer ch.Close(wschan.StatusNormalClosure, "bye") // nothing if the screen closed it already

	select {
	case s := <-first: // bounded by the handshake timeout
		if s.State != wschan.StateOpen {
			return runtimeError{connectError(url, s.Err)}
		}
	case <-ctx.Done():
		return nil
	}

	if !isTerminal(in) || !isTerminal(out) {
		if err := tui.RunPlain(ctx, ch, in, out); err != nil {
			return runtimeError{err}
		}
		return nil
	}
	m := tui.New(tui.Config{Channel: ch, URL: url, States: feed.C()})
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrInterrupted) && ctx.Err() == nil {
		return runtimeError{fmt.Errorf("terminal: %w", err)}
	}
	return nil
}

// connectError is the one line for a server that cannot be reached.
func connectError(url string, err error) error {
	if err == nil {
		err = errors.New("connection closed")
	}
	return fmt.Errorf("cannot connect to %s: %w; check the URL, or start a server with 'wschan serve' and try again", url, err)
}

// startDemoServer starts the echo server on a free loopback port and
// returns its WebSocket URL and a stop function that drains it and waits
// for it to end.
func startDemoServer(ctx context.Context) (url string, stop func(), err error) {
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return "", nil, fmt.Errorf("echo server: %w", err)
	}
	ln, err := srv.Listen()
	if err != nil {
		return "", nil, fmt.Errorf("echo server: %w", err)
	}
	// Not ctx's cancel: on Ctrl+C the demo first closes its connection,
	// then stops the server, so the close is 1000, not the server's 1001.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln) // errors end the demo's connection, which shows them
	}()
	stop = func() {
		cancel()
		<-done
	}
	return "ws://" + ln.Addr().String() + "/ws", stop, nil
}

// isTerminal reports whether f is a terminal (an *os.File on a tty).
func isTerminal(f any) bool {
	fd, ok := f.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(fd.Fd())
}
