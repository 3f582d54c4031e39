// Command wschan is the wschan toolkit on the command line: `wschan serve`
// (the echo server, package server), `wschan connect` (the pipe client,
// package pipe), shell completion, and help that lists what each later
// subcommand will do. It only wires packages together: flags and
// environment into each package's Config, signals into a context, errors
// into exit codes. The work lives in the library and feature packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/wschan/wschan/internal/xconnect"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// WebSockets over HTTP/2 (RFC 8441) need extended CONNECT, which
		// Go 1.26's net/http offers only when GODEBUG=http2xconnect=1 is
		// in the environment at start-up: start again with it (same
		// process ID), unless GODEBUG already decides http2xconnect.
		if err := xconnect.Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, "wschan: WebSockets over HTTP/2 stay off:", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling: the command
	// drains, and a second Ctrl+C ends the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1 // the command ran and failed: a runtimeError
	exitUsage     = 2 // any other error: the command line or environment is wrong
	exitHandshake = 3 // connect: could not connect (refused, DNS, TLS, timeout, no upgrade)
	exitAbnormal  = 4 // connect: the connection ended abnormally (close code other than 1000/1001, 1006, protocol error)
)

// runtimeError marks an error that happened after the command line was
// understood (such as a port in use); it exits 1 without the usage hint.
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

// exitCodeError is an error after the command line was understood that
// exits with its own code, without the usage hint.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// run is the whole program, testable in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return execute(ctx, newRootCmd(os.LookupEnv), args, stdin, stdout, stderr)
}

// execute runs root with args and maps its error to an exit code and one
// line on stderr (plus a pointer to the help for usage errors).
func execute(ctx context.Context, root *cobra.Command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	name := root.Name()
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if ce := (exitCodeError{}); errors.As(err, &ce) {
		return ce.code
	}
	if errors.As(err, new(runtimeError)) {
		return exitError
	}
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", name)
	return exitUsage
}

// newRootCmd builds the command tree; lookupEnv reads the WSCHAN_*
// variables that stand in for flags.
func newRootCmd(lookupEnv lookupEnvFunc) *cobra.Command {
	var demoURL string
	root := &cobra.Command{
		Use:   "wschan",
		Short: "A WebSocket toolkit: echo server, demo client, pipe client and load tool",
		Long: `wschan is a WebSocket toolkit built on the wschan Go library.

It replaces the public echo servers that WebSocket tutorials point to
(ws://echo.websocket.org is gone) with one you run yourself, and gives you
the tutorial's demo app, a pipe-friendly client and a load generator.

Ready now:

  wschan            the "Work with WebSockets" demo app in the terminal, on an
  wschan demo       echo server started in-process (works offline); --url
                    connects to any server instead (wschan demo --help)
  wschan serve      the echo server: /ws echoes every message, test scenarios
                    for clients, /healthz, /readyz, /metrics and a page at /
                    (wschan serve --help lists its flags and endpoints)
  wschan connect    a client for scripts: stdin lines → messages → stdout,
                    with JSON Lines output and exit codes that say what failed
                    (wschan connect --help)
  wschan bench      measure any WebSocket echo server: throughput, latency
                    percentiles, verified echoes (wschan bench --help)
  wschan completion shell completion for bash, zsh, fish and PowerShell

Library documentation: go doc github.com/wschan/wschan`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, demoURL)
		},
	}
	root.Flags().StringVar(&demoURL, "url", "",
		"run the demo against this `ws:// or wss:// URL` instead of an in-process echo server")
	root.SetVersionTemplate("wschan {{.Version}}\n")
	root.AddCommand(newDemoCmd(), newServeCmd(lookupEnv), newConnectCmd(lookupEnv), newBenchCmd(lookupEnv))
	// cobra adds `completion bash|zsh|fish|powershell` when the tree has
	// subcommands; keep it listed in the help.
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// oneURLArg is the argument check of the commands that take one URL.
func oneURLArg(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want one URL, such as ws://localhost:8080/ws (got %d arguments)", len(args))
	}
	return nil
}

// noFileCompletion offers no file names where a URL is expected.
func noFileCompletion(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// flagsFromEnv sets each named flag of cmd that was not given on the
// command line from the variable prefix+NAME (max-conns → PREFIXMAX_CONNS),
// if that is set and not empty, and returns the names it set.
func flagsFromEnv(cmd *cobra.Command, names []string, prefix string, lookupEnv lookupEnvFunc) ([]string, error) {
	var set []string
	for _, name := range names {
		f := cmd.Flags().Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		key := prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		v, ok := lookupEnv(key)
		if !ok || v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return set, fmt.Errorf("environment variable %s=%q (for --%s): %w", key, v, name, err)
		}
		f.Changed = true
		set = append(set, name)
	}
	return set, nil
}
