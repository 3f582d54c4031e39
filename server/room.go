package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// roomUnsent is how many bytes a room member's socket may hold that it
// has not sent yet (limitUnsent): a member's backlog stays in its room
// queue, where the hub sees it and closes a slow member with 1008 and a
// reason it can read soon. 64 KiB is one loopback segment; it does not
// limit the bytes in flight, so fast links stay full.
const roomUnsent = 64 << 10

// handleRoom serves /ws/room/{name}: every message a member sends goes to
// every member of the room, itself included. The name and the limits are
// checked before the upgrade, so a refusal is a plain HTTP answer.
func (s *Server) handleRoom(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := rooms.ValidateName(name); err != nil {
		s.m.handshakes.WithLabelValues(outcomeBadRequest, r.Proto).Inc()
		detail := strings.TrimPrefix(err.Error(), rooms.ErrInvalidName.Error()+": ")
		http.Error(w, fmt.Sprintf("invalid room name: %s; a name is 1 to %d letters, digits, '-' or '_'", detail, rooms.MaxNameLength), http.StatusBadRequest)
		return
	}
	if !s.draining.Load() {
		if err := s.hub.CanJoin(name); err != nil && !errors.Is(err, rooms.ErrClosed) {
			s.m.handshakes.WithLabelValues(outcomeLimit, r.Proto).Inc()
			why := fmt.Sprintf("room %q is full (%d members)", name, s.cfg.MaxRoomMembers)
			if errors.Is(err, rooms.ErrTooManyRooms) {
				why = fmt.Sprintf("the server is at its room limit (%d rooms): join an existing room", s.cfg.MaxRooms)
			}
			w.Header().Set("Retry-After", "10")
			http.Error(w, why+"; try again later", http.StatusServiceUnavailable)
			s.log.Info("room join refused", s.client(r).logAttrs("room", name, "reason", err)...)
			return
		}
	}
	// Over HTTP/2 the socket carries other streams too: it stays as it is.
	if c, ok := r.Context().Value(proxyConnKey).(net.Conn); ok && r.ProtoMajor == 1 {
		limitUnsent(c, roomUnsent)
	}
	s.serveEcho(w, r, echoOptions{room: name}) // draining answers 503 there
}

// roomLoop joins the room and publishes every message the client sends
// until the channel ends. The hub writes the room's messages to the
// client through a roomConn.
func (se *session) roomLoop(ch *wschan.Channel, name string) {
	if ch.Protocol() == rooms.Subprotocol {
		se.envelopeLoop(ch, name)
		return
	}
	s := se.s
	ctx := context.Background()
	m, err := s.hub.Join(ctx, name, roomConn{se, ch})
	if err != nil {
		se.refuseJoin(ch, name, err)
		return
	}
	defer m.Leave()
	s.log.Debug("room joined", se.client.logAttrs("room", name, "member", m.ID())...)
	for msg := range ch.Messages(ctx) {
		if se.admitMessage(ch, len(msg.Data)) {
			se.publish(ch, m, msg.Type, msg.Data)
		}
		msg.Release()
	}
}

// refuseJoin closes a client whose join failed though CanJoin passed a
// moment ago: another client took the last place, or the server began
// draining.
func (se *session) refuseJoin(ch *wschan.Channel, name string, err error) {
	code, reason := wschan.StatusPolicyViolation, "room is full"
	switch {
	case errors.Is(err, rooms.ErrClosed):
		code, reason = wschan.StatusGoingAway, "server shutting down"
	case errors.Is(err, rooms.ErrTooManyRooms):
		reason = "server is at its room limit"
	case !errors.Is(err, rooms.ErrRoomFull):
		code, reason = wschan.StatusTryAgainLater, "room unavailable"
	}
	se.s.log.Info("room join refused", se.client.logAttrs("room", name, "err", err)...)
	_ = ch.Close(code, reason)
}

// publish sends one client message to the room, or closes the client
// when the broker cannot take it: it is told rather than losing the
// message silently.
func (se *session) publish(ch *wschan.Channel, m *rooms.Member, typ wschan.MessageType, data []byte) {
	if err := m.Publish(context.Background(), typ, data); err != nil {
		se.s.log.Warn("room message not delivered: closing the member", se.client.logAttrs("room", m.Room(), "err", err)...)
		_ = ch.Close(wschan.StatusTryAgainLater, "room unavailable: message not delivered")
		return
	}
	se.s.m.roomIn.Inc()
}

// historyTimeout bounds the history query of a resuming join.
const historyTimeout = 10 * time.Second

// envelopeLoop serves a client that asked for the envelope protocol
// (rooms.Subprotocol): it joins, or resumes, with its first command, then
// publishes its messages. A bad command gets an error event and changes
// nothing, so the client can try again.
func (se *session) envelopeLoop(ch *wschan.Channel, name string) {
	s := se.s
	var m *rooms.Member
	defer func() {
		if m != nil {
			m.Leave()
		}
	}()
	refuse := func(why string) {
		ev, _ := json.Marshal(rooms.Event{Type: rooms.EventError, Error: why})
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
		err := ch.Send(ctx, wschan.Text, ev)
		cancel()
		if err == nil {
			se.traffic.sent(len(ev))
		}
	}
	for msg := range ch.Messages(context.Background()) {
		if !se.admitMessage(ch, len(msg.Data)) {
			msg.Release()
			continue
		}
		cmd := rooms.Command{Type: "message", MessageType: msg.Type, Data: msg.Data}
		var err error
		if msg.Type == wschan.Text {
			cmd, err = rooms.ParseCommand(msg.Data)
		}
		switch {
		case err != nil:
			refuse(strings.TrimPrefix(err.Error(), "rooms: "))
		case cmd.Type == "join" && m != nil:
			refuse("already joined: join once per connection")
		case cmd.Type == "join":
			ctx, cancel := context.WithTimeout(context.Background(), historyTimeout)
			m, err = s.hub.JoinWith(ctx, name, roomConn{se, ch}, &rooms.JoinOptions{Envelopes: true, Since: cmd.Since})
			cancel()
			switch {
			case errors.Is(err, rooms.ErrFuturePosition):
				s.log.Info("room resume refused", se.client.logAttrs("room", name, "err", err)...)
				refuse(strings.TrimPrefix(err.Error(), "rooms: ") + "; join without epoch and seq to start from now")
			case err != nil:
				se.refuseJoin(ch, name, err)
			default:
				s.log.Debug("room joined", se.client.logAttrs("room", name, "member", m.ID(), "resume", cmd.Since != nil)...)
			}
		case m == nil:
			refuse("join first: send {\"type\":\"join\"}")
		default:
			se.publish(ch, m, cmd.MessageType, cmd.Data)
		}
		msg.Release()
	}
}

// roomConn is a room member's connection as the hub sees it: every message
// written counts as traffic, and keeps the connection from idling out (a
// member that only listens is not idle).
type roomConn struct {
	se *session
	ch *wschan.Channel
}

var (
	_ rooms.Conn      = roomConn{}
	_ rooms.TrySender = roomConn{}
)

func (c roomConn) Send(ctx context.Context, typ wschan.MessageType, data []byte) error {
	if err := c.ch.Send(ctx, typ, data); err != nil {
		return err
	}
	c.sent(len(data))
	return nil
}

// sent counts a message written to the member.
func (c roomConn) sent(n int) {
	se := c.se
	se.traffic.sent(n)
	se.s.m.roomOut.Inc()
	se.lastIn.Store(monotime()) // a member that only listens is not idle
}

// TrySend lets the hub write to the member from the goroutine that
// delivers the room's message when the connection takes it at once: see
// rooms.TrySender.
func (c roomConn) TrySend(typ wschan.MessageType, data []byte) (bool, error) {
	sent, err := c.ch.TrySend(typ, data)
	if sent {
		c.sent(len(data))
	}
	return sent, err
}

func (c roomConn) Close(code wschan.StatusCode, reason string) error {
	c.se.s.log.Info("room member too slow: disconnecting", c.se.client.logAttrs("reason", reason)...)
	return c.ch.Close(code, reason)
}
