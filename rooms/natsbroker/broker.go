package natsbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// DefaultPrefix starts every room's subject.
const DefaultPrefix = "wschan.room"

// Options configure Connect. Only URLs is required; the zero value of
// every other field means its default. Connect copies the struct.
type Options struct {
	// URLs are the NATS servers, comma-separated
	// ("nats://a:4222,nats://b:4222"); user and password may be in a URL.
	// The client also learns the cluster's other servers from them.
	URLs string

	// Prefix starts each room's subject: Prefix + "." + room. Default
	// DefaultPrefix. Instances that share rooms must use the same one.
	Prefix string

	// Name is the connection name NATS monitoring shows. Default
	// "wschan".
	Name string

	// Authentication, as the nats CLI takes it: a credentials file (JWT
	// and NKey seed), an NKey seed file, a user and password, or a token.
	CredsFile string
	NKeyFile  string
	User      string
	Password  string
	Token     string

	// TLS: a CA file to trust, and a client certificate and key for mutual
	// TLS. A tls:// URL or any of these turns TLS on.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// ReconnectWait is the pause between reconnect attempts to one server.
	// Default 2s.
	ReconnectWait time.Duration

	// OnStatus, when set, is called whenever the connection is made or
	// lost, with nil or the reason rooms are not carried (as Check
	// returns). It runs on nats.go's callback goroutine and must not
	// block.
	OnStatus func(err error)

	// HistorySize, when set, keeps each room's last HistorySize messages
	// on JetStream, for members that resume (rooms.History): a stream per
	// room, PREFIX with dots as underscores, "_", the room name
	// ("wschan_room_lobby"), on file storage, also bounded by HistoryTTL
	// (default DefaultHistoryTTL, 5m) and HistoryBytes (default 1 MiB).
	// HistoryReplicas copies it to that many servers (default 1; 3 lets
	// history survive a node's loss). The NATS servers must run JetStream;
	// a room whose stream cannot be found or made (JetStream off or
	// unreachable) is carried without history, and its resuming members
	// are told of a gap. Default 0: no history.
	HistorySize     int
	HistoryTTL      time.Duration
	HistoryBytes    int64
	HistoryReplicas int

	// OnHistoryError, when set, is called when a room is carried without
	// history because its stream could not be found or made.
	OnHistoryError func(room string, err error)

	// OnLost, when set, is called when publications to room are found
	// missing (n of them, from one publisher), as Lost counts them. It
	// runs on the room's delivery goroutine and must not block.
	OnLost func(room string, n uint64)
}

// Broker is a rooms.Broker on a NATS connection. Its methods are safe
// for concurrent use.
type Broker struct {
	opts Options
	nc   *nats.Conn
	id   string // this broker's origin ID in envelopes

	mu   sync.Mutex
	seqs map[string]*atomic.Uint64 // next sequence per room published to

	js      jetstream.JetStream // nil without history
	streams map[string]*jsRoom  // under mu

	status atomic.Pointer[error] // nil pointer: connected
	lost   atomic.Uint64
}

var _ rooms.Broker = (*Broker)(nil)
var _ rooms.Health = (*Broker)(nil)
var _ rooms.History = (*Broker)(nil)

// Connect checks opts and starts connecting to NATS in the background: it
// returns before the first connection is made, and a server that is down
// now is retried until Close. Errors are for options that cannot work
// (no URL, a file that cannot be read).
func Connect(opts Options) (*Broker, error) {
	o := opts
	if strings.TrimSpace(o.URLs) == "" {
		return nil, errors.New("natsbroker: no NATS URL")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := checkPrefix(o.Prefix); err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = "wschan"
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 2 * time.Second
	}
	if o.HistorySize < 0 {
		return nil, errors.New("natsbroker: history size must be positive")
	}
	if o.HistorySize > 0 {
		if o.HistoryTTL <= 0 {
			o.HistoryTTL = DefaultHistoryTTL
		}
		if o.HistoryBytes <= 0 {
			o.HistoryBytes = DefaultHistoryBytes
		}
		if o.HistoryReplicas <= 0 {
			o.HistoryReplicas = 1
		}
	}
	b := &Broker{opts: o, id: rand.Text()[:12], seqs: map[string]*atomic.Uint64{}, streams: map[string]*jsRoom{}}
	notConnected := fmt.Errorf("natsbroker: connecting to NATS at %s", o.URLs)
	b.status.Store(&notConnected)
	nopts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ConnectHandler(func(*nats.Conn) { b.setStatus(nil) }),
		nats.ReconnectHandler(func(*nats.Conn) { b.setStatus(nil) }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			b.setStatus(fmt.Errorf("natsbroker: lost NATS at %s, reconnecting: %w", nc.ConnectedUrlRedacted(), err))
		}),
		nats.ClosedHandler(func(*nats.Conn) { b.setStatus(errors.New("natsbroker: connection closed")) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if b.Check() != nil {
				b.setStatus(fmt.Errorf("natsbroker: cannot reach NATS at %s: %w", o.URLs, err))
			}
		}),
	}
	switch {
	case o.CredsFile != "":
		nopts = append(nopts, nats.UserCredentials(o.CredsFile))
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: nkey seed file: %w", err)
		}
		nopts = append(nopts, opt)
	}
	if o.User != "" {
		nopts = append(nopts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		nopts = append(nopts, nats.Token(o.Token))
	}
	if o.TLSCAFile != "" {
		nopts = append(nopts, nats.RootCAs(o.TLSCAFile))
	}
	if o.TLSCertFile != "" || o.TLSKeyFile != "" {
		nopts = append(nopts, nats.ClientCert(o.TLSCertFile, o.TLSKeyFile))
	}
	nc, err := nats.Connect(o.URLs, nopts...)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	b.nc = nc
	if o.HistorySize > 0 {
		if b.js, err = jetstream.New(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("natsbroker: %w", err)
		}
	}
	if nc.IsConnected() {
		b.setStatus(nil)
	}
	return b, nil
}

// checkPrefix allows the subject tokens a room name may hold, and dots
// between them.
func checkPrefix(p string) error {
	for tok := range strings.SplitSeq(p, ".") {
		if rooms.ValidateName(tok) != nil {
			return fmt.Errorf("natsbroker: subject prefix %q: each dot-separated token must be letters, digits, '-' or '_'", p)
		}
	}
	return nil
}

func (b *Broker) setStatus(err error) {
	b.status.Store(&err)
	if b.opts.OnStatus != nil {
		b.opts.OnStatus(err)
	}
}

// Check returns nil while the broker is connected to NATS, or why rooms
// are not carried across instances now.
func (b *Broker) Check() error { return *b.status.Load() }

// ConnectedURL returns the URL of the NATS server the broker is connected
// to now (password redacted), or "" while disconnected.
func (b *Broker) ConnectedURL() string { return b.nc.ConnectedUrlRedacted() }

// Lost counts publications found missing so far (see OnLost).
func (b *Broker) Lost() uint64 { return b.lost.Load() }

// Close flushes what is buffered (for up to a few seconds) and closes the
// NATS connection.
func (b *Broker) Close() error {
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(2 * time.Second)
	}
	b.nc.Close()
	return nil
}

func (b *Broker) subject(room string) (string, error) {
	if err := rooms.ValidateName(room); err != nil {
		return "", err
	}
	return b.opts.Prefix + "." + room, nil
}

// Publish sends pub to the room's subject. It returns once nats.go has the
// message (written or, while reconnecting, buffered); the zero
// StreamPosition, as core NATS keeps no history.
func (b *Broker) Publish(ctx context.Context, room string, pub rooms.Publication) (rooms.StreamPosition, error) {
	subj, err := b.subject(room)
	if err != nil {
		return rooms.StreamPosition{}, err
	}
	if err := ctx.Err(); err != nil {
		return rooms.StreamPosition{}, err
	}
	if len(pub.Sender) > maxIDLen {
		return rooms.StreamPosition{}, errors.New("natsbroker: sender ID too long")
	}
	if pub.Type == wschan.Text && !utf8.Valid(pub.Data) {
		return rooms.StreamPosition{}, wschan.ErrInvalidUTF8
	}
	b.mu.Lock()
	ctr := b.seqs[room]
	if ctr == nil {
		ctr = new(atomic.Uint64)
		b.seqs[room] = ctr
	}
	// Sequence and publish under the lock: the sequence must reach NATS in order.
	e := envelope{typ: pub.Type, seq: ctr.Add(1), origin: b.id, sender: pub.Sender, data: pub.Data}
	err = b.nc.Publish(subj, e.encode(make([]byte, 0, 32+len(pub.Sender)+len(pub.Data))))
	b.mu.Unlock()
	if err != nil {
		return rooms.StreamPosition{}, fmt.Errorf("natsbroker: publish: %w", err)
	}
	return rooms.StreamPosition{}, nil
}

// Subscribe subscribes to the room's subject. deliver runs on the
// subscription's own goroutine (nats.go's), one message at a time.
// Messages that are not envelopes are ignored.
func (b *Broker) Subscribe(ctx context.Context, room string, deliver func(rooms.Publication)) (rooms.Subscription, error) {
	subj, err := b.subject(room)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.js != nil {
		sub, err := b.subscribeHistory(ctx, room, deliver)
		if err == nil {
			return sub, nil
		}
		// Carry the room without history rather than not at all; its
		// resuming members are told of a gap.
		if b.opts.OnHistoryError != nil {
			b.opts.OnHistoryError(room, err)
		}
	}
	check := b.lossCheck(room)
	sub, err := b.nc.Subscribe(subj, func(m *nats.Msg) {
		e, err := decode(m.Data)
		if err != nil {
			return
		}
		check(e)
		deliver(rooms.Publication{Type: e.typ, Data: e.data, Sender: e.sender})
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to %s: %w", subj, err)
	}
	return sub, nil
}

// lossCheck returns a function that counts the publications missing
// before e, per publisher, as Lost and OnLost report them. It is for one
// subscription's goroutine.
func (b *Broker) lossCheck(room string) func(e envelope) {
	last := map[string]uint64{} // origin → last sequence seen
	return func(e envelope) {
		if prev, ok := last[e.origin]; ok && e.seq > prev+1 {
			b.addLost(room, e.seq-prev-1)
		}
		last[e.origin] = e.seq
	}
}

func (b *Broker) addLost(room string, n uint64) {
	b.lost.Add(n)
	if b.opts.OnLost != nil {
		b.opts.OnLost(room, n)
	}
}
