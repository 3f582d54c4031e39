// Package soak holds the long-running soak test of the wschan echo server.
// It has no code of its own: the test sits behind the soak build tag, so
// neither go test ./... nor CI's default run compiles it.
//
// The soak builds ./cmd/wschan, starts `wschan serve` on a free loopback
// port with every limit off, and drives it with the wschan library as
// client: WSCHAN_SOAK_CONNS connections (default 10000), dialled at
// WSCHAN_SOAK_RAMP per second (default 500), then held for
// WSCHAN_SOAK_DURATION (default 10m, a time.ParseDuration value) once all
// are open. Each connection sends a message every 3 to 8 seconds (about
// 1,800 messages/s in all at 10,000 connections), text or binary, of mixed
// size: log-uniform 16 B to 4 KiB mostly, 4 to 64 KiB sometimes, 64 to
// 256 KiB rarely. Every payload starts with the worker id and a sequence
// number, and the echo must come back within 30 seconds with the same type
// and bytes. After one exchange in a hundred, the client disconnects (half
// with a clean close 1000, half by resetting its TCP socket without a close
// frame) and dials again: about 18 reconnects a second at 10,000
// connections.
//
// It fails on any corrupted echo (type or bytes differ), any lost echo (no
// answer within the timeout, or the connection ended under an outstanding
// echo), any failed dial, any connection the client did not end itself,
// server counters (messages, bytes, handshakes, close codes) that disagree
// with the client's, and a leak: once every client has gone, the server's
// goroutines must come back to within 5 of their baseline, its open files
// to within 5, and its resident memory to at most max(2 × baseline,
// baseline + 48 MiB) within WSCHAN_SOAK_SETTLE (default 6m), and the test
// process's goroutines to their starting count. Memory takes minutes to
// come back, which is not a leak: an idle Go process collects garbage only
// every two minutes, the engine's pooled buffers survive one collection,
// and the pages go back to the system after the second, up to just over
// 4 minutes after the last client left (3m31s and 4m2s measured at 10,000
// connections).
//
// Server figures come from its /metrics endpoint (parsed with expfmt),
// with /proc/PID/status VmRSS as a cross-check. A progress line is logged
// every 30 seconds and a summary block, ready for BENCHMARKS.md, is printed
// to stdout at the end, before the verdict (run with -v to see both).
//
// The full soak (about 15 to 17 minutes end to end: build, 20 s ramp,
// 10 minutes, 4 to 6 minutes of settling):
//
//	go test -tags soak -run Soak -v -timeout 40m ./internal/soak
//
// On the poll engine (`wschan serve` takes --engine from WSCHAN_ENGINE,
// which the server process inherits):
//
//	WSCHAN_ENGINE=poll go test -tags soak -run Soak -v -timeout 40m ./internal/soak
//
// Mostly idle, as a public server is (WSCHAN_SOAK_IDLE more connections
// that only hold and answer pings, opened after the busy ones at the same
// pace and closed with 1000 at the end; the server runs with
// --idle-timeout off; one that ends early is an unexpected end):
//
//	WSCHAN_ENGINE=poll WSCHAN_SOAK_CONNS=1000 WSCHAN_SOAK_IDLE=18000 go test -tags soak -run Soak -v -timeout 50m ./internal/soak
//
// A quick check of the harness:
//
//	WSCHAN_SOAK_CONNS=500 WSCHAN_SOAK_DURATION=1m go test -tags soak -run Soak -v ./internal/soak
//
// The machine needs an open-file limit above the connection count plus a
// few hundred (Go raises the soft limit to the hard one by itself) and a
// local port range wider than the connection count; the test checks both
// before it starts. It runs on Linux only (it reads /proc).
package soak
