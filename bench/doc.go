// Package bench is the load generator behind `wschan bench`: it opens
// connections to any WebSocket echo server, sends messages at a chosen size,
// concurrency and rate, checks every echo byte for byte, and reports
// throughput, round-trip times from an HDR histogram, connect times and
// errors, as a text table (Result.WriteText) or a JSON document
// (Result.WriteJSON).
//
// Start with Config and Run. Run is the whole benchmark: it returns when the
// run is over, or soon after its context ends (with what was measured so
// far).
//
// # Modes
//
// Echo mode (the default) sends messages on every connection and waits for
// each to come back. Closed loop (Config.Rate 0): each connection keeps
// Config.Pipeline messages in flight, sending the next as soon as a reply
// frees a slot (Pipeline 1 is ping-pong). Open loop (Config.Rate > 0): the
// messages are scheduled at a fixed rate spread over the connections, and
// each round-trip time is measured from the message's scheduled time, not
// from when it could be sent, so a server that falls behind shows it in the
// latencies instead of quietly slowing the client down (coordinated
// omission). Pipeline still caps the messages in flight per connection in
// open loop; raise it so the cap does not bind. On Linux the connections
// wait for their scheduled times on a kernel timer (a timerfd on Go's
// poller) and send within tens of microseconds of them. Go's own timers,
// used elsewhere, fire up to a millisecond late in a process with nothing
// else to do, so every send due in that millisecond goes out at once.
// Room mode's publishers wait the same way.
//
// Hold mode (Config.Hold) opens the connections and holds them, idle, for
// Config.Duration, then reports how fast they opened, how many failed and
// how many the server closed; with Config.ServerPID it gives the server's
// memory per idle connection.
//
// # Verification
//
// Every message starts with a 16-byte header, lower-case hex: 6 digits of
// connection number and 10 of sequence number; the rest is a pseudo-random
// pattern of ASCII letters fixed per connection, so text messages are valid
// UTF-8. Each reply is matched to the message in flight with its sequence
// number and compared whole. A reply is
//   - corrupted when its type, length or bytes differ from what was sent. A
//     reply whose header is damaged cannot be matched to its message, which
//     is then also counted lost;
//   - unexpected when it matches no message in flight: a duplicate, a reply
//     that came after its message was counted lost, or a message the server
//     made up (such as a greeting);
//   - out of order when a later message's reply came first (still received).
//
// A message is lost when no reply came within Config.ReplyTimeout, or when
// its connection ended before the reply. At the end, sending stops and each
// connection waits for its last replies, at most ReplyTimeout. A connection
// the server closed, or that dropped, before the end is counted closed early.
// Result.Failed reports corrupted, lost or unexpected replies and
// connections closed early. Error counts
// include the warmup; every other figure excludes it.
//
// # What is measured
//
// The run's clock starts at the first dial. Messages scheduled before
// Config.Warmup are sent and verified but are not in the throughput or the
// round-trip times. With Config.Messages, each connection then sends that
// many measured messages; otherwise it sends until Warmup + Duration. The
// measured window runs from the first measured send to the last measured
// reply; throughput is received messages (and payload bytes, one direction)
// over that window. Connections ramp up at Config.Ramp per second and start
// sending as soon as they are open, so set Warmup at least as long as the
// ramp to measure the steady state.
//
// With Config.ServerPID, Run reads the server's /proc/PID/stat (user plus
// system CPU time, in clock ticks of 10ms) when the measured window starts
// (at the warmup's end, or before the first dial without warmup, which then
// counts the handshakes) and after the last replies, and /proc/PID/status
// (VmRSS) before the first dial and after the last replies, before closing.
// CPU time per message is the most noise-robust figure on a shared machine.
// Linux only.
//
// # JSON document
//
// Result.WriteJSON writes one object, indented, whose fields are stable
// (version 1; fields may be added, none removed or changed). Times are in
// microseconds (suffix _us) or seconds (_s), as floats:
//
//	version          1
//	url              the URL benchmarked
//	mode             "echo" or "hold"
//	config           {conns, ramp, size, pipeline, rate, duration_s, messages,
//	                 warmup_s, type ("text" or "binary"), compression,
//	                 reply_timeout_s}: the run's settings after defaults
//	elapsed_s        from the first dial to the last reply, before closing
//	measured_s       the measured window (0 when nothing was measured)
//	conns            {attempted, opened, failed, closed_early, per_s}: per_s is
//	                 connections opened per second, first dial to last
//	connect_us       {count, p50, p90, p99, p999, max, mean}: handshake times
//	messages         {sent, received}: measured messages sent, and their intact
//	                 replies (sent = received + corrupted + lost when every
//	                 header survived)
//	throughput       {msgs_per_s, bytes_per_s}
//	rtt_us           {count, p50, p90, p99, p999, max, mean}: round-trip times
//	errors           {connect_failures, corrupted, lost, out_of_order,
//	                 unexpected, closed_early}
//	first_error      the first error seen, or ""
//	limited          the first refusal or close for a server limit (429 or
//	                 503 to a handshake, a close with 1008 or 1013), or ""
//	server           null, or with Config.ServerPID: {pid, cpu_us,
//	                 cpu_us_per_msg, rss_before_bytes, rss_after_bytes,
//	                 rss_per_conn_bytes}
//
// # Dependencies
//
// github.com/HdrHistogram/hdrhistogram-go records the latencies: an HDR
// histogram keeps every percentile to three significant digits in fixed
// memory, which a sorted sample or a home-made histogram would not.
package bench
