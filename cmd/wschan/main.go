// Command wschan is the wschan toolkit on the command line: for now its
// help, which lists what each later subcommand will do. It only wires
// packages together; the work lives in the library and feature packages.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// run is the whole program, testable in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "wschan: %v\n", err)
		fmt.Fprintln(stderr, "Run 'wschan --help' for usage.")
		return exitUsage
	}
	return exitOK
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "wschan",
		Short: "A WebSocket toolkit: echo server, demo client, pipe client and load tool",
		Long: `wschan is a WebSocket toolkit built on the wschan Go library.

It replaces the public echo servers that WebSocket tutorials point to
(ws://echo.websocket.org is gone) with one you run yourself, and gives you
the tutorial's demo app, a pipe-friendly client and a load generator.

Status: the library (github.com/wschan/wschan) is ready; the commands below
arrive in the next releases:

  wschan            the "Work with WebSockets" demo app in the terminal,
                    on an echo server started in-process (works offline)
  wschan serve      the echo server, with the demo page at /
  wschan connect    a client for scripts: stdin lines → messages → stdout
  wschan bench      measure any WebSocket server

Library documentation: go doc github.com/wschan/wschan`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetVersionTemplate("wschan {{.Version}}\n")
	return root
}
