// Package xconnect turns on HTTP/2 extended CONNECT (RFC 8441) in
// net/http's server for a whole program, which WebSockets over HTTP/2
// need. Go 1.26 has no per-server setting for it (golang/go#53208 proposes
// http.HTTP2Config.EnableConnectProtocol): net/http reads
// GODEBUG=http2xconnect=1 from the environment once, when the program
// starts, and //go:debug cannot set it. So the only way for a program to
// turn it on for itself is to start again with it in its environment,
// which Reexec does.
//
// This is a process-wide switch: only main packages (cmd/wschan for
// `wschan serve`) and tests use it, never the library. Standard library
// only.
package xconnect

import (
	"os"
	"strings"
)

// Setting is the GODEBUG setting that turns extended CONNECT on.
const Setting = "http2xconnect=1"

// Enabled reports whether net/http's HTTP/2 server accepts extended
// CONNECT in this process: whether GODEBUG contains Setting, the test
// net/http makes at start-up.
func Enabled() bool { return strings.Contains(os.Getenv("GODEBUG"), Setting) }

// Decided reports whether GODEBUG names http2xconnect at all, on or off:
// an explicit choice Reexec leaves alone.
func Decided() bool { return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=") }

// env returns the environment with Setting added to GODEBUG.
func env() []string {
	out := make([]string, 0, len(os.Environ())+1)
	godebug := Setting
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if v != "" {
				godebug = v + "," + Setting
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "GODEBUG="+godebug)
}
