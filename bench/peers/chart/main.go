// Command chart draws scripts/bench-peers' results as an SVG: server CPU per
// echoed message as a multiple of the raw TCP echo's, one group of bars per
// workload and one bar per server (wschan's highlighted), beside VmRSS per
// idle connection.
//
//	chart [-o OUT.svg] REPORT.json
//
// REPORT.json is what scripts/bench-peers keeps of a run
// (docs/bench-peers.json); OUT defaults to REPORT with .svg for .json.
// From the repository root, to redraw docs/bench-peers.svg alone:
//
//	go -C bench/peers/chart run . "$PWD/docs/bench-peers.json"
//
// A module of its own, so that neither the main module nor the echo servers
// in bench/peers (whose dependency versions are part of what is measured)
// depend on gonum.org/v1/plot.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the program: exit status 0 on success, 1 when the report cannot
// be read or the chart written, 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the SVG to write (default: REPORT with .svg for .json; - for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chart [-o OUT.svg] REPORT.json")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	in := fs.Arg(0)
	if *out == "" {
		*out = strings.TrimSuffix(in, ".json") + ".svg"
	}
	if err := chart(in, *out, stdout); err != nil {
		fmt.Fprintf(stderr, "chart: %v\n", err)
		return 1
	}
	return 0
}

func chart(in, out string, stdout io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := readReport(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	var buf bytes.Buffer
	if err := render(rep, &buf); err != nil {
		return err
	}
	if out == "-" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
