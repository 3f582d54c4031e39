// Package wschan is a WebSocket channel for Go: a stream of incoming
// messages, a sink for outgoing ones, and a clean close, on the client and
// the server side alike.
//
// It follows the steps of the "Work with WebSockets" recipe:
//
//  1. Connect: Dial a ws:// or wss:// URL (or Accept an HTTP request on a
//     server) to get a *Channel.
//  2. Listen: range over Channel.Messages, or call Channel.Read.
//  3. Send: Channel.Send and Channel.SendText, safe from many goroutines.
//  4. Close: Channel.Close(code, reason) completes the closing handshake,
//     after every message already accepted by Send has been written.
//
// After the end, Channel.CloseCode, Channel.CloseReason and Channel.Err say
// how it ended: the peer's close frame (*CloseError), this side's Close
// (ErrClosed), a peer that broke the protocol (ErrProtocol,
// ErrMessageTooBig), stopped answering pings (ErrTimeout) or vanished
// (ErrConnectionLost). Transport loss reports 1006, never 1005; a close frame
// without status reports 1005.
//
// # Stream or callback
//
// Messages is a Go iterator rather than a receive-only Go channel: see
// Channel.Messages for why. Servers that want no hand-off between goroutines
// set OnMessage in the options instead: the same read loop calls it
// directly, and a reply sent from inside it costs no extra allocation.
//
// # Reconnecting
//
// DialOptions.Reconnect makes a client channel redial after an abnormal end,
// with capped exponential backoff and jitter, buffer sends while
// disconnected, run a hook on every connect, and report its State; see
// ReconnectOptions for exactly what can and cannot be lost.
//
// # Other protocols and JSON
//
// NetConn presents a channel as a net.Conn: binary (or text) messages as
// a byte stream, deadlines, and Close as a 1000 close frame, so TLS, HTTP
// or any protocol written against net.Conn can run through a WebSocket.
// SendJSON and ReadJSON send and read JSON values, one per message; a
// message that does not decode is an error (ErrInvalidJSON) that leaves
// the channel open.
//
// # HTTP/2
//
// Accept takes WebSockets over HTTP/2 (RFC 8441) as well as HTTP/1.1, so a
// browser can carry a page's socket on the page's HTTP/2 connection. In Go
// 1.26 that needs GODEBUG=http2xconnect=1 in the process's environment at
// start-up, a process-wide switch this package leaves to the program;
// over HTTP/2 a handler must also wait for the channel's end. See Accept.
// Dial speaks HTTP/1.1.
//
// # In the browser
//
// Built with GOOS=js GOARCH=wasm, Dial opens the browser's WebSocket and
// returns the same *Channel (Read, Messages, Send, Close, reconnect...);
// the browser does the handshake, TLS and framing. Options it cannot
// honour are refused by name (ErrUnsupportedOption); see Dial. Accept is
// for servers and has no browser counterpart.
//
// # Conformance
//
// Channels are conformant by default, with no option to remember: text
// messages and close reasons are checked for UTF-8 (1007), protocol
// violations close with 1002, messages over the read limit with 1009, pings
// are answered with the same payload, control frames may arrive between the
// fragments of a message, and close codes that may not be sent are refused
// in both directions. Invalid UTF-8 fails the connection as soon as the bad
// bytes arrive, even in the middle of a fragmented message or of a frame
// still being received (what Autobahn cases 6.4.x check; gws alone checks
// only complete messages). A stream is as strict as a callback: a
// violation right behind messages not yet read fails the connection only
// after they have been read and could be answered (see Channel).
//
// # Engine
//
// The wire protocol is github.com/lxzan/gws, the fastest
// goroutine-per-connection engine measured for this project, with client
// and server, permessage-deflate with context takeover, concurrent-safe
// writes and Autobahn passes in both roles. wschan wraps it and keeps it out
// of the exported API so it can change: the channel's logic talks to one
// small internal interface (engine.go), and gws sits behind it in gws.go
// and gws_transport.go. Around gws, wschan checks UTF-8 itself (once per
// message, early for text that spans reads), answers pings, keeps the
// socket open until the peer answers a close frame (gws closes at once),
// follows incoming frames to stop at a violation, recovers from a gws
// panic on a 64-bit frame length with the top bit set, keeps frames a
// client sends right behind its handshake request, and lets the server
// pick a subprotocol per request. It is the only dependency of this
// package.
package wschan
