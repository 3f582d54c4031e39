//go:build unix

package xconnect

import (
	"fmt"
	"os"
	"syscall"
)

// Reexec replaces the running program with itself, same arguments, with
// Setting added to GODEBUG, unless GODEBUG already decides http2xconnect
// (then it returns nil at once). It returns only on failure; the process
// keeps its ID, so service managers see no change. Call it first thing in
// main (or TestMain), before any goroutine does work.
func Reexec() error {
	if Decided() {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("xconnect: %w", err)
	}
	return fmt.Errorf("xconnect: exec %s: %w", exe, syscall.Exec(exe, os.Args, env()))
}
