package wschan

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// streamBuffer is how many received messages wait for the consumer before
// the channel stops reading from the socket (back-pressure to the peer).
const streamBuffer = 16

// Channel is a WebSocket connection seen as a stream of incoming messages
// (Read, Messages) and a sink for outgoing ones (Send, SendText), on the
// client (Dial) and server (Accept) side alike.
//
// All methods are safe for concurrent use. Messages are delivered in the
// order they arrived, to one reader at a time; sends from many goroutines
// are written whole, one after another, in the order they take the write
// lock.
//
// A Channel reads from its socket on a goroutine of its own, which also
// answers pings and the peer's close frame. The goroutine ends when the
// channel does; Close waits for it.
//
// A stream is as strict as a synchronous reader: when the peer sends
// something that fails the connection (a protocol violation, invalid
// UTF-8, a message over the read limit) right behind messages still in the
// stream, reading from the socket stops there, those messages are handed
// out, and the connection is failed (1002, 1007 or 1009) only when the
// consumer asks for the next message, calls Close, or the close timeout
// passes; answers sent meanwhile go out first.
type Channel struct {
	set    settings
	client bool

	msgs    lazyChan[Message] // the stream (see stream); closed after the last message
	done    signal            // the channel has ended
	closing signal            // Close (or CloseNow) has started

	cur atomic.Pointer[wsconn] // the connection in use (nil while reconnecting)
	rtt atomic.Int64
	rc  *reconnector // nil unless the channel reconnects

	mu       sync.Mutex
	state    State
	protocol string
	code     StatusCode
	reason   string
	err      error
}

func newChannel(set settings, client bool) *Channel {
	return &Channel{set: set, client: client}
}

// stream returns the channel's message stream, made on first use.
func (ch *Channel) stream() chan Message {
	n := streamBuffer
	if ch.set.onMessage != nil {
		n = 0 // messages go to the callback: the stream only ends
	}
	return ch.msgs.get(n)
}

// attach makes c the channel's connection (the caller then runs it).
func (ch *Channel) attach(c *wsconn) {
	ch.mu.Lock()
	ch.protocol = c.protocol
	ch.mu.Unlock()
	ch.cur.Store(c)
}

// setState records a state change and reports it to OnStateChange.
func (ch *Channel) setState(s State, err error) {
	ch.mu.Lock()
	if ch.state == s || ch.state == StateClosed {
		ch.mu.Unlock()
		return
	}
	ch.state = s
	ch.mu.Unlock()
	if f := ch.set.onStateChange; f != nil {
		f(s, err)
	}
}

// connEnded is called by a connection when it is over.
func (ch *Channel) connEnded(c *wsconn) {
	ch.cur.CompareAndSwap(c, nil)
	if ch.rc != nil {
		return // the reconnector waits on c.ended and decides
	}
	ch.finish(c.endCode, c.endReason, c.endErr)
}

// finish ends the channel. The caller guarantees nothing sends on msgs
// any more.
func (ch *Channel) finish(code StatusCode, reason string, err error) {
	ch.mu.Lock()
	if ch.err != nil {
		ch.mu.Unlock()
		return
	}
	ch.code, ch.reason, ch.err = code, reason, err
	ch.mu.Unlock()
	ch.msgs.close(closedStream)
	ch.done.fire()
	ch.setState(StateClosed, err)
}

// Read returns the next message. It blocks until one arrives, the channel
// ends, or ctx ends. After the channel has ended and every message received
// before the end has been read, Read returns the error that ended it (see Err).
func (ch *Channel) Read(ctx context.Context) (Message, error) {
	for {
		var m Message
		var ok bool
		select {
		case m, ok = <-ch.stream():
		default:
			select {
			case m, ok = <-ch.stream():
			case <-ctx.Done():
				return Message{}, fmt.Errorf("wschan: read: %w", ctx.Err())
			}
		}
		if !ok {
			return Message{}, ch.Err()
		}
		if d, isMark := m.buf.(*drainMark); isMark {
			_ = d.Close() // everything before it is read: the connection may fail now
			continue
		}
		return m, nil
	}
}

// Messages returns an iterator over incoming messages, for use with range.
// The loop ends when the channel ends (then Err says why) or ctx ends; a
// break leaves the channel open.
//
// Why an iterator and not a receive-only Go channel: a range-over-func loop
// pulls one message at a time on the caller's goroutine, so a slow consumer
// slows the peer through TCP instead of growing a buffer, no extra goroutine
// is started or leaked when the loop stops early, and the reason the stream
// ended is one call away (Err) instead of a second channel to watch. Code
// that needs select can use Read with a context, or Done.
func (ch *Channel) Messages(ctx context.Context) iter.Seq[Message] {
	return func(yield func(Message) bool) {
		for {
			m, err := ch.Read(ctx)
			if err != nil || !yield(m) {
				return
			}
		}
	}
}

// Send writes one message of type typ. It returns when the message has been
// handed to the operating system (for a reconnecting channel that is
// disconnected: when it is in the send buffer). A text message must be valid
// UTF-8, or Send returns ErrInvalidUTF8 and sends nothing.
//
// ctx bounds the wait for a peer that does not read. If ctx ends while a
// message is half written, the connection cannot continue: it is dropped
// and the channel ends with ErrConnectionLost.
func (ch *Channel) Send(ctx context.Context, typ MessageType, data []byte) error {
	if typ != Text && typ != Binary {
		return fmt.Errorf("wschan: send: unknown message type %d", int(typ))
	}
	if typ == Text && !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	if ch.rc != nil {
		return ch.rc.send(ctx, typ, data)
	}
	c := ch.cur.Load()
	if c == nil {
		return fmt.Errorf("wschan: send: %w", ch.Err())
	}
	return c.write(ctx, typ, data)
}

// TrySend sends one message if it can do so without waiting, and never
// blocks. It returns true when the message is sent: handed to the
// operating system, in order after every message sent before it (when the
// socket took only part of it, the channel keeps the rest, at most one
// message, and writes it as the socket drains, before anything later). It
// returns false, having sent nothing, when the message would have to wait
// (a Send is under way, or the peer has not read what was sent before) or
// when the channel cannot write without waiting at all; send it with Send
// then. Errors are Send's: ErrInvalidUTF8 (on a channel that can TrySend
// at all), or the reason the channel ended.
//
// TrySend writes on Linux, on a server's channel over plain TCP: on
// EnginePoll always, on EngineGoroutine without permessage-deflate (the
// engine compresses inside). It always returns false on a channel from
// Dial (a client masks its frames), with Reconnect, over TLS or HTTP/2,
// and elsewhere than on Linux.
//
// TrySend is for a server that writes one message to many channels from
// one goroutine, such as a chat room: the channels that keep up take it
// at once, and only those that do not need a goroutine that waits.
func (ch *Channel) TrySend(typ MessageType, data []byte) (bool, error) {
	if typ != Text && typ != Binary {
		return false, fmt.Errorf("wschan: send: unknown message type %d", int(typ))
	}
	if ch.rc != nil {
		select {
		case <-ch.done.C():
			return false, fmt.Errorf("wschan: send: %w", ch.Err())
		default:
			return false, nil
		}
	}
	c := ch.cur.Load()
	if c == nil {
		return false, fmt.Errorf("wschan: send: %w", ch.Err())
	}
	return c.tryWrite(typ, data) // checks UTF-8 once it knows it can write
}

// SendText sends s as a text message; see Send.
func (ch *Channel) SendText(ctx context.Context, s string) error {
	return ch.Send(ctx, Text, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Close sends a close frame with code and reason after every message
// already accepted by Send, waits for the peer's close frame, then closes
// the connection and returns. It waits at most the close timeout
// (DefaultCloseTimeout unless set in the options) for the peer, so Close
// returns within about that bound; on a reconnecting channel that is still
// connecting it returns at once.
//
// code must be sendable (see StatusCode.Sendable) and reason at most
// MaxCloseReason bytes of UTF-8, or Close returns ErrInvalidClose and does
// nothing. Closing a channel that has already ended does nothing and
// returns nil. After Close, the channel's Err is ErrClosed and CloseCode
// reports code.
//
// A reconnecting channel that ends with messages still in its send buffer
// returns an *UndeliveredError holding them.
//
// Close may be called from an OnMessage or OnPing callback: it then
// returns without waiting for the end (once the close frame is written, on
// a channel without Reconnect), and the read loop finishes the handshake
// after the callback returns.
func (ch *Channel) Close(code StatusCode, reason string) error {
	if err := checkClose(code, reason); err != nil {
		return err
	}
	if !ch.closing.fire() {
		if c := ch.cur.Load(); c != nil && c.inCallback.Load() {
			return nil // maybe called from OnMessage: waiting would block the read loop
		}
		<-ch.done.C()
		return nil
	}
	if ch.rc != nil {
		return ch.rc.close(code, reason)
	}
	if c := ch.cur.Load(); c != nil {
		return c.closeHandshake(code, reason)
	}
	return nil
}

// CloseNow ends the channel at once, without the closing handshake: no
// close frame is sent or awaited, the socket is closed, and the peer sees
// the connection drop (1006). A Close under way ends now too, and a
// reconnecting channel stops reconnecting. It is for what has run out of
// patience, such as a server whose shutdown deadline has passed; Close is
// the polite way. It does not wait: Done says when the channel has ended.
func (ch *Channel) CloseNow() {
	if ch.closing.fire() && ch.rc != nil {
		go func() { _ = ch.rc.close(StatusAbnormalClosure, "") }()
	}
	if c := ch.cur.Load(); c != nil {
		c.e.abort()
	}
}

// Done returns a channel that is closed when the Channel has ended.
func (ch *Channel) Done() <-chan struct{} { return ch.done.C() }

// Err returns nil while the channel is open, and afterwards the error that
// ended it. Use errors.Is and errors.As to tell the cases apart:
//
//   - ErrClosed: this side called Close;
//   - *CloseError with Remote set: the peer sent a close frame (code and
//     reason inside; 1005 when the frame had no status);
//   - ErrProtocol or ErrMessageTooBig: the peer broke the protocol or the
//     read limit, and this side closed with the code in the *CloseError;
//   - ErrTimeout: the peer stopped answering pings (code 1006);
//   - ErrConnectionLost: the transport failed without a close frame (1006).
func (ch *Channel) Err() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err
}

// CloseCode returns the status code the channel ended with: the peer's code
// when the peer closed, the code sent when this side closed, 1005 for a close
// frame without status, and 1006 when the connection ended without a close
// frame. It is 0 while the channel is open.
func (ch *Channel) CloseCode() StatusCode {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.code
}

// CloseReason returns the reason that came with CloseCode, if any.
func (ch *Channel) CloseReason() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.reason
}

// Protocol returns the subprotocol negotiated in the handshake, or "" if
// none was.
func (ch *Channel) Protocol() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.protocol
}

// State returns the channel's current state.
func (ch *Channel) State() State {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.state
}

// RTT returns the round-trip time measured by the last answered keepalive
// ping, or 0 if none has been answered yet.
func (ch *Channel) RTT() time.Duration { return time.Duration(ch.rtt.Load()) }

// finishWith ends the channel the way connection c ended.
func (ch *Channel) finishWith(c *wsconn) { ch.finish(c.endCode, c.endReason, c.endErr) }
