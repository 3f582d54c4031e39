package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Report is what scripts/bench-peers keeps of a run (docs/bench-peers.json):
// the run's settings and machine, what was measured, and every server's
// medians and ratios. The script writes it; this program only reads it.
type Report struct {
	// Command is the command line that produced the run.
	Command string `json:"command"`
	// Date is the run's date, YYYY-MM-DD (UTC).
	Date string `json:"date"`
	// TookS is how long the run took, in seconds.
	TookS int `json:"took_s"`
	// Machine names the CPUs and kernel.
	Machine string `json:"machine"`
	// Versions holds the Go, Node and library versions, and wschan's commit.
	Versions map[string]string `json:"versions"`
	// Dirty lists the files of the wschan build with uncommitted changes.
	Dirty string `json:"dirty"`
	// Rounds, Conns, IdleConns, SettleS, ServerCPU and ClientCPU are the
	// script's settings; the CPUs are taskset lists ("0", "2-3").
	Rounds    int     `json:"rounds"`
	Conns     int     `json:"conns"`
	IdleConns int     `json:"idle_conns"`
	SettleS   float64 `json:"settle_s"`
	ServerCPU string  `json:"server_cpu"`
	ClientCPU string  `json:"client_cpu"`
	// Measures lists what was measured, in the report's order.
	Measures []Measure `json:"measures"`
	// Servers lists the servers measured, in the report's order.
	Servers []Server `json:"servers"`
	// LeftOut says which servers or runs are missing, and why.
	LeftOut []string `json:"left_out"`
}

// Measure is one thing measured on every server.
type Measure struct {
	// ID keys Server.Results: "cpu:TYPE:SIZE" or "rss".
	ID string `json:"id"`
	// Kind is "cpu" (server CPU µs per echoed message) or "rss" (VmRSS KiB
	// per idle connection).
	Kind string `json:"kind"`
	// Label is short, for a chart: "binary 1 KiB".
	Label string `json:"label"`
	// Title is the table's heading.
	Title string `json:"title"`
	// Unit of the medians: "µs/msg" or "KiB/conn".
	Unit string `json:"unit"`
	// BestPeer is the name of the WebSocket peer with the lowest median.
	BestPeer string `json:"best_peer"`
}

// Server is one server measured, with its results by Measure.ID.
type Server struct {
	// Name is the script's name for it: wschan, wschan-poll, gws, rawtcp...
	Name string `json:"name"`
	// Label is how the report names it: "wschan serve", "gorilla/websocket".
	Label string `json:"label"`
	// Role is "wschan" (a wschan server, highlighted), "peer" (a
	// WebSocket server competing for best peer) or "baseline" (raw TCP).
	Role string `json:"role"`
	// Results by Measure.ID; a measure missing here failed for this server.
	Results map[string]Result `json:"results"`
}

// Result is one server's figures for one measure.
type Result struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`
	// BusyPct and MsgPerS are medians of how busy the server's core was and
	// of the client's throughput (CPU measures only).
	BusyPct float64 `json:"busy_pct,omitempty"`
	MsgPerS float64 `json:"msg_per_s,omitempty"`
	// Ratios of Median to gws's, the best peer's and raw TCP's medians; nil
	// when that server has no result.
	PerGWS      *float64 `json:"per_gws"`
	PerBestPeer *float64 `json:"per_best_peer"`
	PerRawTCP   *float64 `json:"per_rawtcp"`
	// PerRawTCPSameRate is the median, over the runs, of Median's run
	// divided by a run of the raw TCP echo driven right after it at the
	// rate that run reached, and RawTCPSameRateUS the median of those raw
	// runs' µs per message (CPU measures of the servers in SAME_RATE only;
	// nil otherwise). PerRawTCP compares the server at its client's rate
	// with the raw echo at rawload's, a higher one.
	PerRawTCPSameRate *float64 `json:"per_rawtcp_same_rate,omitempty"`
	RawTCPSameRateUS  *float64 `json:"rawtcp_same_rate_us,omitempty"`
}

// readReport decodes and checks a report.
func readReport(r io.Reader) (*Report, error) {
	var rep Report
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if err := rep.check(); err != nil {
		return nil, err
	}
	return &rep, nil
}

func (r *Report) check() error {
	var errs []error
	if len(r.Servers) == 0 {
		errs = append(errs, errors.New("no servers"))
	}
	if len(r.Measures) == 0 {
		errs = append(errs, errors.New("no measures"))
	}
	ids := map[string]bool{}
	for _, m := range r.Measures {
		switch m.Kind {
		case "cpu", "rss":
		default:
			errs = append(errs, fmt.Errorf("measure %q: unknown kind %q", m.ID, m.Kind))
		}
		if ids[m.ID] {
			errs = append(errs, fmt.Errorf("measure %q listed twice", m.ID))
		}
		ids[m.ID] = true
	}
	names := map[string]bool{}
	for _, s := range r.Servers {
		if s.Name == "" {
			errs = append(errs, errors.New("a server without a name"))
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("server %q listed twice", s.Name))
		}
		names[s.Name] = true
		for id := range s.Results {
			if !ids[id] {
				errs = append(errs, fmt.Errorf("server %q: result for unknown measure %q", s.Name, id))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// label is how a chart names a server.
func (s Server) label() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Name
}

// measures returns the report's measures of one kind.
func (r *Report) measures(kind string) []Measure {
	var ms []Measure
	for _, m := range r.Measures {
		if m.Kind == kind {
			ms = append(ms, m)
		}
	}
	return ms
}

// server returns the server named name, if the report has it.
func (r *Report) server(name string) (Server, bool) {
	for _, s := range r.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// command is the run's command line, for a title.
func (r *Report) command() string {
	c := strings.TrimSpace(r.Command)
	if c == "" {
		return "scripts/bench-peers"
	}
	return c
}
