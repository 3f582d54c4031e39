package wschan

import (
	"math"
	"net/http"
	"strings"
	"sync"

	"github.com/lxzan/gws"
)

// The engine is github.com/lxzan/gws: it owns RFC 6455 framing, masking,
// fragmentation, UTF-8 checks, permessage-deflate and the close handshake's
// wire format. This file is the only place that configures it; nothing of it
// appears in the exported API.

// Defaults shared by Dial and Accept.
const (
	DefaultReadLimit        = 32 << 20 // bytes
	DefaultPingInterval     = 30e9     // 30s
	DefaultPingTimeout      = 15e9     // 15s
	DefaultCloseTimeout     = 5e9      // 5s
	DefaultHandshakeTimeout = 10e9     // 10s
)

// readLimit maps a ReadLimit option to bytes: 0 is the default, negative
// the largest the engine can address.
func readLimit(n int64) int {
	switch {
	case n == 0:
		return DefaultReadLimit
	case n < 0 || n > maxEngineLimit:
		return maxEngineLimit
	}
	return int(n)
}

const maxEngineLimit = math.MaxInt32 - 1<<20

// engineLimit is the limit given to the engine for a message limit of n.
// The engine applies one number to both the frame on the wire and the
// inflated message; a compressed message of exactly n bytes that deflate
// could not shrink is longer than n on the wire: 5 bytes per stored block,
// and small windows make small blocks (measured: +0.03% with a 32 KiB
// window, +0.22% with the 4 KiB window this engine negotiates with context
// takeover). So the engine gets 1/32 more room, and the channel holds the
// message itself to exactly n (deliver).
func engineLimit(n int) int {
	return min(n+n>>5+1024, math.MaxInt32)
}

// discardLogger keeps the engine quiet: the library never logs.
type discardLogger struct{}

func (discardLogger) Error(...any) {}

// slot is the engine's per-connection session storage, holding just the
// wsconn it belongs to (the engine's default is a map per connection).
type slot struct{ c *wsconn }

func (*slot) Len() int                     { return 0 }
func (*slot) Load(string) (any, bool)      { return nil, false }
func (*slot) Delete(string)                {}
func (*slot) Store(string, any)            {}
func (*slot) Range(func(string, any) bool) {}
func newSlot() gws.SessionStorage          { return new(slot) }
func connOf(s *gws.Conn) *wsconn           { return s.Session().(*slot).c }
func bind(s *gws.Conn, c *wsconn)          { s.Session().(*slot).c = c }

var _ gws.SessionStorage = (*slot)(nil)

// handler turns the engine's callbacks into wsconn events. It is stateless;
// the connection is found through the session slot.
type handler struct{}

var _ gws.Event = handler{}

func (handler) OnOpen(*gws.Conn) {}

func (handler) OnPing(s *gws.Conn, payload []byte) { connOf(s).ping(payload) }

func (handler) OnPong(s *gws.Conn, payload []byte) { connOf(s).pong(payload) }

func (handler) OnMessage(s *gws.Conn, m *gws.Message) { connOf(s).deliver(m) }

func (handler) OnClose(s *gws.Conn, err error) { connOf(s).end(err) }

// offersDeflate reports whether a handshake header names permessage-deflate,
// as the engine decides it (on both sides: the first Sec-WebSocket-Extensions
// value contains the name).
func offersDeflate(h http.Header) bool {
	return strings.Contains(h.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
}

func deflate(on bool) gws.PermessageDeflate {
	return gws.PermessageDeflate{
		Enabled:               on,
		ServerContextTakeover: true,
		ClientContextTakeover: true,
	}
}

// upgraderKey is what makes two Accept configurations need different engines.
type upgraderKey struct {
	compression bool
	readLimit   int
}

// upgraders caches one engine upgrader per configuration; the key space is
// the handful of configurations a program uses.
var upgraders sync.Map // upgraderKey → *gws.Upgrader

func upgraderFor(k upgraderKey) *gws.Upgrader {
	if u, ok := upgraders.Load(k); ok {
		return u.(*gws.Upgrader)
	}
	u := gws.NewUpgrader(handler{}, &gws.ServerOption{
		ReadMaxPayloadSize:  engineLimit(k.readLimit),
		WriteMaxPayloadSize: math.MaxInt32,
		CheckUtf8Enabled:    false, // see wsconn.deliver and frameWatch
		PermessageDeflate:   deflate(k.compression),
		Logger:              discardLogger{},
		NewSession:          newSlot,
	})
	actual, _ := upgraders.LoadOrStore(k, u)
	return actual.(*gws.Upgrader)
}

func clientOption(url string, o *DialOptions, readLimit int) *gws.ClientOption {
	return &gws.ClientOption{
		Addr:                url,
		ReadMaxPayloadSize:  engineLimit(readLimit),
		WriteMaxPayloadSize: math.MaxInt32,
		CheckUtf8Enabled:    false, // see wsconn.deliver and frameWatch
		PermessageDeflate:   deflate(o.EnableCompression),
		Logger:              discardLogger{},
		NewSession:          newSlot,
	}
}
