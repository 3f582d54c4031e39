// Package pipe connects a *wschan.Channel to a script's standard streams:
// records read from an io.Reader become messages, and every message
// received is written to an io.Writer. It is `wschan connect`.
//
// Start with Config and Run. The formats scripts rely on:
//
// Input. Each line of Config.In (without its "\n"), or each NUL-separated
// record with Config.NullSeparated, is sent as one message: text by
// default, binary with Config.Binary. Empty records are sent as empty
// messages; a final record without a separator is sent too. A record that
// is not UTF-8 cannot be a text message: it is skipped with a warning on
// Config.Err (send it with Binary).
//
// Output, plain. Every message received, text or binary, is written as its
// raw bytes followed by "\n" (or NUL with Config.NullSeparated). A message
// that contains the separator cannot be told from two; use JSONL when that
// matters.
//
// Output, JSONL (Config.JSONL). One JSON object per line per event, with
// these stable fields:
//
//	{"type":"open","time":"2006-01-02T15:04:05.999999999Z","protocol":"chat"}
//	{"type":"text","time":"…","data":"hello"}
//	{"type":"binary","time":"…","base64":"AAEC"}
//	{"type":"reconnecting","time":"…","error":"…"}
//	{"type":"close","time":"…","code":1000,"reason":"","error":"…"}
//
// time is UTC in RFC 3339 with nanoseconds; data is present (maybe empty)
// in every text event, base64 in every binary event, code and reason in
// every close event; protocol is left out when none was negotiated, error
// when the end was normal. "open" comes first and "close" last.
//
// Ending. After In ends, Run waits until as many messages were received as
// were sent (the count an echo server gives back), at most
// Config.DrainTimeout, then closes with 1000. With Config.CloseAfter set,
// the end of In does not close: Run keeps receiving and closes with 1000
// when that time has passed. The peer may close first. Run's error says
// how it ended; see Run.
//
// pipe imports only wschan and the standard library.
package pipe
