package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what a run measured. Counts of messages exclude the warmup;
// Errors include it.
type Result struct {
	URL    string
	Mode   string // "echo" or "hold"
	Config Config // the run's settings, defaults filled in (Progress nil)

	Elapsed  time.Duration // from the first dial to the last reply, before closing
	Measured time.Duration // from the first measured send to the last measured reply

	Conns ConnStats

	Sent              int64   // measured messages sent
	Received          int64   // intact replies to them (room mode: deliveries to members)
	Expected          int64   // room mode: Sent × members in the room
	MessagesPerSecond float64 // Received over Measured
	BytesPerSecond    float64 // payload bytes received over Measured (one direction)
	RTT               Latency // round-trip times of the received replies (room mode: delay from publish to each member)

	Errors     Errors
	FirstError string // the first error seen, or ""

	// Limited is set when the server refused or closed a connection for
	// one of its limits (a handshake answered 429 or 503, a close with 1008
	// policy violation or 1013 try again later): the first such answer,
	// such as `closed with 1008 "message rate limit exceeded (1000/s)"`.
	// The measurement then shows the server's limits, not its speed.
	Limited string

	Server *ServerStats // with Config.ServerPID, else nil
	Client *ClientStats // this process, where /proc tells (Linux), else nil
}

// ClientStats describe the load client itself, so that a run shows when
// the client, not the server, was the limit.
type ClientStats struct {
	RSS        int64   // resident memory with every connection open, bytes
	RSSPerConn float64 // RSS per connection opened (the whole process's)
}

// ConnStats describe the connections of a run.
type ConnStats struct {
	Attempted   int64   // dials that ended (not interrupted)
	Opened      int64   // dials that succeeded
	Failed      int64   // dials that failed
	ClosedEarly int64   // connections the server closed, or that dropped, before the end
	PerSecond   float64 // connections opened per second, from the first dial to the last
	Connect     Latency // handshake times (TCP, TLS and the upgrade)
}

// Latency summarises a histogram of times.
type Latency struct {
	Count                    int64
	P50, P90, P99, P999, Max time.Duration
	Mean                     time.Duration
}

// Errors counts what went wrong, by kind; see the package doc.
type Errors struct {
	ConnectFailures int64
	Corrupted       int64
	Lost            int64
	OutOfOrder      int64
	Unexpected      int64
	ClosedEarly     int64
}

// ServerStats are the server's figures from /proc.
type ServerStats struct {
	PID           int
	CPU           time.Duration // user + system CPU time during the measured window
	CPUPerMessage float64       // CPU microseconds per received message
	RSSBefore     int64         // resident memory before the first dial, bytes
	RSSAfter      int64         // resident memory after the last reply, before closing
	RSSPerConn    float64       // (RSSAfter - RSSBefore) per connection opened
}

// Failed reports whether the server did not echo every message
// faithfully: a reply was corrupted, lost or unexpected, or a connection
// closed early (its remaining messages were never sent).
func (r *Result) Failed() bool {
	e := r.Errors
	return e.Corrupted > 0 || e.Lost > 0 || e.Unexpected > 0 || e.ClosedEarly > 0
}

// WriteText writes the result as a table for people.
func (r *Result) WriteText(w io.Writer) error {
	c := &r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "wschan bench %s\n", r.URL)
	switch r.Mode {
	case "hold":
		fmt.Fprintf(&b, "  %d connections held idle for %v\n\n", c.Conns, c.Duration)
	case "room":
		what := "for " + c.Duration.String()
		if c.Messages > 0 {
			what = fmt.Sprintf("%d each", c.Messages)
		}
		fmt.Fprintf(&b, "  room %s: %d members publishing %g msg/s in all, %s %s messages, %s\n\n", c.Room, c.Conns, c.Rate, formatBytes(float64(max(c.Size, roomHeaderLen))), c.messageType(), what)
	default:
		what := "for " + c.Duration.String()
		if c.Messages > 0 {
			what = fmt.Sprintf("%d each", c.Messages)
		}
		load := fmt.Sprintf("pipeline %d", c.Pipeline)
		if c.Rate > 0 {
			load += fmt.Sprintf(", open loop at %g msg/s", c.Rate)
		}
		if c.Compression {
			load += ", compression"
		}
		if c.Warmup > 0 {
			load += fmt.Sprintf(", after %v warmup", c.Warmup)
		}
		fmt.Fprintf(&b, "  %d connections, %s %s messages %s, %s\n\n", c.Conns, formatBytes(float64(c.Size)), c.messageType(), what, load)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	switch r.Mode {
	case "room":
		fmt.Fprintf(tw, "Fan-out\t%.0f deliveries/s, %s/s over %v\n", r.MessagesPerSecond, formatBytes(r.BytesPerSecond), r.Measured.Round(time.Millisecond))
		fmt.Fprintf(tw, "Messages\t%d published, %d delivered of %d expected\n", r.Sent, r.Received, r.Expected)
		fmt.Fprintf(tw, "Delay\t%s\n", formatLatency(r.RTT))
	case "echo":
		fmt.Fprintf(tw, "Throughput\t%.0f msg/s, %s/s over %v\n", r.MessagesPerSecond, formatBytes(r.BytesPerSecond), r.Measured.Round(time.Millisecond))
		fmt.Fprintf(tw, "Messages\t%d sent, %d received\n", r.Sent, r.Received)
		fmt.Fprintf(tw, "RTT\t%s\n", formatLatency(r.RTT))
	}
	fmt.Fprintf(tw, "Connections\t%d opened, %d failed, %.0f/s\n", r.Conns.Opened, r.Conns.Failed, r.Conns.PerSecond)
	fmt.Fprintf(tw, "Connect\t%s\n", formatLatency(r.Conns.Connect))
	e := r.Errors
	fmt.Fprintf(tw, "Errors\tconnect failures %d, corrupted %d, lost %d, out of order %d, unexpected %d, closed early %d\n",
		e.ConnectFailures, e.Corrupted, e.Lost, e.OutOfOrder, e.Unexpected, e.ClosedEarly)
	if s := r.Server; s != nil {
		line := fmt.Sprintf("pid %d, RSS %s → %s", s.PID, formatBytes(float64(s.RSSBefore)), formatBytes(float64(s.RSSAfter)))
		if r.Conns.Opened > 0 {
			sign := "+"
			if s.RSSPerConn < 0 {
				sign = "-"
			}
			line += fmt.Sprintf(" (%s%s per connection)", sign, formatBytes(math.Abs(s.RSSPerConn)))
		}
		if r.Mode != "hold" {
			line += fmt.Sprintf(", CPU %v, %.2f CPU-µs/msg", s.CPU, s.CPUPerMessage)
		}
		fmt.Fprintf(tw, "Server\t%s\n", line)
	}
	if c := r.Client; c != nil {
		line := "RSS " + formatBytes(float64(c.RSS))
		if r.Conns.Opened > 0 {
			line += fmt.Sprintf(" (%s per connection)", formatBytes(c.RSSPerConn))
		}
		fmt.Fprintf(tw, "Client\t%s (this process)\n", line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "First error: %s\n", r.FirstError)
	}
	if r.Limited != "" {
		fmt.Fprintf(&b, "Limited: the server %s\n", r.Limited)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the result as the JSON document described in the
// package doc, indented, with a final newline.
func (r *Result) WriteJSON(w io.Writer) error {
	c := &r.Config
	doc := jsonResult{
		Version: 1,
		URL:     r.URL,
		Mode:    r.Mode,
		Config: jsonConfig{
			Conns: c.Conns, Ramp: c.Ramp, Size: c.Size, Pipeline: c.Pipeline, Rate: c.Rate,
			Duration: seconds(c.Duration), Messages: c.Messages, Warmup: seconds(c.Warmup),
			Type: c.messageType().String(), Compression: c.Compression, ReplyTimeout: seconds(c.ReplyTimeout),
		},
		Elapsed:  seconds(r.Elapsed),
		Measured: seconds(r.Measured),
		Conns: jsonConns{
			Attempted: r.Conns.Attempted, Opened: r.Conns.Opened, Failed: r.Conns.Failed,
			ClosedEarly: r.Conns.ClosedEarly, PerSecond: r.Conns.PerSecond,
		},
		Connect:    jsonLatencyOf(r.Conns.Connect),
		Messages:   jsonMessages{Sent: r.Sent, Received: r.Received, Expected: r.Expected},
		Throughput: jsonThroughput{MessagesPerSecond: r.MessagesPerSecond, BytesPerSecond: r.BytesPerSecond},
		RTT:        jsonLatencyOf(r.RTT),
		Errors: jsonErrors{
			ConnectFailures: r.Errors.ConnectFailures, Corrupted: r.Errors.Corrupted, Lost: r.Errors.Lost,
			OutOfOrder: r.Errors.OutOfOrder, Unexpected: r.Errors.Unexpected, ClosedEarly: r.Errors.ClosedEarly,
		},
		FirstError: r.FirstError,
		Limited:    r.Limited,
	}
	if c := r.Client; c != nil {
		doc.Client = &jsonClient{RSS: c.RSS, RSSPerConn: c.RSSPerConn}
	}
	if s := r.Server; s != nil {
		doc.Server = &jsonServer{
			PID: s.PID, CPU: micros(s.CPU), CPUPerMessage: s.CPUPerMessage,
			RSSBefore: s.RSSBefore, RSSAfter: s.RSSAfter, RSSPerConn: s.RSSPerConn,
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// The JSON document; field names are part of the interface.
type (
	jsonResult struct {
		Version    int            `json:"version"`
		URL        string         `json:"url"`
		Mode       string         `json:"mode"`
		Config     jsonConfig     `json:"config"`
		Elapsed    float64        `json:"elapsed_s"`
		Measured   float64        `json:"measured_s"`
		Conns      jsonConns      `json:"conns"`
		Connect    jsonLatency    `json:"connect_us"`
		Messages   jsonMessages   `json:"messages"`
		Throughput jsonThroughput `json:"throughput"`
		RTT        jsonLatency    `json:"rtt_us"`
		Errors     jsonErrors     `json:"errors"`
		FirstError string         `json:"first_error"`
		Limited    string         `json:"limited"`
		Server     *jsonServer    `json:"server"`
		Client     *jsonClient    `json:"client,omitempty"`
	}
	jsonClient struct {
		RSS        int64   `json:"rss_bytes"`
		RSSPerConn float64 `json:"rss_per_conn_bytes"`
	}
	jsonConfig struct {
		Conns        int     `json:"conns"`
		Ramp         float64 `json:"ramp"`
		Size         int     `json:"size"`
		Pipeline     int     `json:"pipeline"`
		Rate         float64 `json:"rate"`
		Duration     float64 `json:"duration_s"`
		Messages     int     `json:"messages"`
		Warmup       float64 `json:"warmup_s"`
		Type         string  `json:"type"`
		Compression  bool    `json:"compression"`
		ReplyTimeout float64 `json:"reply_timeout_s"`
	}
	jsonConns struct {
		Attempted   int64   `json:"attempted"`
		Opened      int64   `json:"opened"`
		Failed      int64   `json:"failed"`
		ClosedEarly int64   `json:"closed_early"`
		PerSecond   float64 `json:"per_s"`
	}
	jsonLatency struct {
		Count int64   `json:"count"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
		P99   float64 `json:"p99"`
		P999  float64 `json:"p999"`
		Max   float64 `json:"max"`
		Mean  float64 `json:"mean"`
	}
	jsonMessages struct {
		Sent     int64 `json:"sent"`
		Received int64 `json:"received"`
		Expected int64 `json:"expected,omitempty"` // room mode
	}
	jsonThroughput struct {
		MessagesPerSecond float64 `json:"msgs_per_s"`
		BytesPerSecond    float64 `json:"bytes_per_s"`
	}
	jsonErrors struct {
		ConnectFailures int64 `json:"connect_failures"`
		Corrupted       int64 `json:"corrupted"`
		Lost            int64 `json:"lost"`
		OutOfOrder      int64 `json:"out_of_order"`
		Unexpected      int64 `json:"unexpected"`
		ClosedEarly     int64 `json:"closed_early"`
	}
	jsonServer struct {
		PID           int     `json:"pid"`
		CPU           float64 `json:"cpu_us"`
		CPUPerMessage float64 `json:"cpu_us_per_msg"`
		RSSBefore     int64   `json:"rss_before_bytes"`
		RSSAfter      int64   `json:"rss_after_bytes"`
		RSSPerConn    float64 `json:"rss_per_conn_bytes"`
	}
)

func jsonLatencyOf(l Latency) jsonLatency {
	return jsonLatency{
		Count: l.Count, P50: micros(l.P50), P90: micros(l.P90), P99: micros(l.P99),
		P999: micros(l.P999), Max: micros(l.Max), Mean: micros(l.Mean),
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func formatLatency(l Latency) string {
	if l.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s",
		formatDuration(l.P50), formatDuration(l.P90), formatDuration(l.P99), formatDuration(l.P999), formatDuration(l.Max))
}

// formatDuration writes d with three significant digits: 45.2µs, 1.23ms.
func formatDuration(d time.Duration) string {
	f := float64(d)
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return strconv.FormatFloat(f/1e3, 'f', decimals(f/1e3), 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(f/1e6, 'f', decimals(f/1e6), 64) + "ms"
	}
	return strconv.FormatFloat(f/1e9, 'f', decimals(f/1e9), 64) + "s"
}

func decimals(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	}
	return 2
}

// formatBytes writes n bytes with a binary suffix: 1KiB, 12.3MiB.
func formatBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if n == float64(int64(n)) {
		return strconv.FormatInt(int64(n), 10) + units[i]
	}
	return strconv.FormatFloat(n, 'f', decimals(n), 64) + units[i]
}
