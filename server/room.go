package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

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
	s.serveEcho(w, r, echoOptions{room: name}) // draining answers 503 there
}

// roomLoop joins the room and publishes every message the client sends
// until the channel ends. The hub writes the room's messages to the
// client through a roomConn.
func (se *session) roomLoop(ch *wschan.Channel, name string) {
	s := se.s
	ctx := context.Background()
	m, err := s.hub.Join(ctx, name, roomConn{se, ch})
	if err != nil {
		// CanJoin passed a moment ago: another client took the last place,
		// or the server began draining.
		code, reason := wschan.StatusPolicyViolation, "room is full"
		switch {
		case errors.Is(err, rooms.ErrClosed):
			code, reason = wschan.StatusGoingAway, "server shutting down"
		case errors.Is(err, rooms.ErrTooManyRooms):
			reason = "server is at its room limit"
		case !errors.Is(err, rooms.ErrRoomFull):
			code, reason = wschan.StatusTryAgainLater, "room unavailable"
		}
		s.log.Info("room join refused", se.client.logAttrs("room", name, "err", err)...)
		_ = ch.Close(code, reason)
		return
	}
	defer m.Leave()
	s.log.Debug("room joined", se.client.logAttrs("room", name, "member", m.ID())...)
	for msg := range ch.Messages(ctx) {
		if se.admitMessage(ch, len(msg.Data)) {
			if err := m.Publish(ctx, msg.Type, msg.Data); err != nil {
				// Not delivered: say so to the client rather than drop it.
				s.log.Warn("room message not delivered: closing the member", se.client.logAttrs("room", name, "err", err)...)
				_ = ch.Close(wschan.StatusTryAgainLater, "room unavailable: message not delivered")
			} else {
				s.m.roomIn.Inc()
			}
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

var _ rooms.Conn = roomConn{}

func (c roomConn) Send(ctx context.Context, typ wschan.MessageType, data []byte) error {
	if err := c.ch.Send(ctx, typ, data); err != nil {
		return err
	}
	se := c.se
	se.s.m.out(len(data))
	se.s.m.roomOut.Inc()
	se.out.Add(1)
	if se.idle != nil {
		se.idle.Reset(se.s.cfg.IdleTimeout)
	}
	return nil
}

func (c roomConn) Close(code wschan.StatusCode, reason string) error {
	c.se.s.log.Info("room member too slow: disconnecting", c.se.client.logAttrs("reason", reason)...)
	return c.ch.Close(code, reason)
}
