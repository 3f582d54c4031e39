package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/internal/wstest"
	"github.com/wschan/wschan/server"
)

// slowEnd is how a raw room member's connection ended.
type slowEnd struct {
	got    int    // data messages read, each the next in order
	code   int    // the close frame's code; -1 when the connection ended without one
	reason string // the close frame's reason, or the read error
}

// readRoom reads r until the connection ends, pausing pace after each data
// message (a client that keeps up only partly). Each message must carry
// its index in its first two bytes, counting from first. A close frame is
// answered with one of the same code.
func readRoom(r *wstest.Raw, first int, pace time.Duration) slowEnd {
	e := slowEnd{got: first}
	for {
		f, err := r.ReadFrame()
		if err != nil {
			e.code, e.reason = -1, err.Error()
			return e
		}
		switch f.Opcode {
		case 0x8:
			e.code, e.reason = 1005, ""
			if len(f.Payload) >= 2 {
				e.code, e.reason = int(binary.BigEndian.Uint16(f.Payload)), string(f.Payload[2:])
			}
			_ = r.WriteFrame(wstest.Frame{Fin: true, Opcode: 0x8, Masked: true, Payload: f.Payload[:min(len(f.Payload), 2)]})
			return e
		case 0x1, 0x2:
			if len(f.Payload) < 2 || int(f.Payload[0])|int(f.Payload[1])<<8 != e.got {
				e.code, e.reason = -1, fmt.Sprintf("message %d out of order: starts %x", e.got, f.Payload[:min(len(f.Payload), 2)])
				return e
			}
			e.got++
			time.Sleep(pace) // the pace of a slow client, not a wait
		}
	}
}

// A member that does not keep up leaves the room once its queue is full,
// and the room goes on: the members that keep up get every message. How
// its connection ends depends on whether it reads at all:
//
//   - one that reads, only slower than the room talks, gets the messages
//     written so far, in order, then a close frame with 1008 and the
//     reason: nothing is dropped without its being told why;
//   - one that never reads cannot be told: the message in progress never
//     completes, and its connection is dropped once the write timeout is
//     over (1006).
//
// Either way the room holds back only its queue and a little socket
// buffer for it, not megabytes the kernel would take: a close frame
// written after them would reach a slow reader long after the close
// timeout, if ever.
func TestRoomMemberBehind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pace time.Duration // between reads; 0: never reads
	}{
		{"reads slowly", 150 * time.Millisecond}, // about 100 KiB/s
		{"never reads", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const (
				queue        = 8
				writeTimeout = 5 * time.Second
				size         = 16 << 10
				// most is the most messages the room may take before it
				// drops the member: 2 MiB, some times its queue and socket
				// buffers, and less than Linux lets a socket's send buffer
				// grow to (4 MiB).
				most = 128
			)
			ctx := wstest.Context(t, roomTimeout)
			srv := start(t, server.Config{RoomQueue: queue, WriteTimeout: writeTimeout})
			url := srv.WS + "/ws/room/behind"
			sender, reader := wstest.Dial(t, url, nil), wstest.Dial(t, url, nil)
			slow := wstest.DialRawReadBuffer(t, url, 64<<10)
			_ = slow.Conn.SetDeadline(time.Time{})
			roomWaitMembers(ctx, t, srv, 3)
			ended := make(chan slowEnd, 1)
			var reading sync.WaitGroup
			read := func(first int, pace time.Duration) {
				reading.Go(func() { ended <- readRoom(slow, first, pace) })
			}
			t.Cleanup(func() { _ = slow.Conn.Close(); reading.Wait() })
			if tt.pace > 0 {
				read(0, tt.pace)
			}

			// The sender waits for each message to reach both members that
			// keep up, so only the third can fall behind.
			payload := wstest.RandomBytes(size, 3)
			k, gone := 0, false
			for ; k < most && !gone; k++ {
				payload[0], payload[1] = byte(k), byte(k>>8)
				if err := sender.Send(ctx, wschan.Binary, payload); err != nil {
					t.Fatal(err)
				}
				for _, ch := range []*wschan.Channel{sender, reader} {
					m := wstest.Read(t, ch)
					wstest.CompareMessage(t, fmt.Sprintf("message %d", k), wschan.Binary, payload, m.Type, m.Data)
				}
				// The room has delivered message k: a member it dropped
				// for it is out already.
				v, _ := metricsGet(ctx, t, srv.URL).value("wschan_room_members")
				gone = v == 2
			}
			if !gone {
				t.Fatalf("after %d messages of %d KiB the member that is behind is still in the room", most, size>>10)
			}
			// The room goes on.
			for i := range 3 {
				if err := sender.SendText(ctx, fmt.Sprint("after ", i)); err != nil {
					t.Fatal(err)
				}
				for _, ch := range []*wschan.Channel{sender, reader} {
					if m := wstest.Read(t, ch); string(m.Data) != fmt.Sprint("after ", i) {
						t.Fatalf("after the slow member left: got %.30q", m.Data)
					}
				}
			}

			if tt.pace == 0 {
				// Dropped once the write timeout is over (and at most the
				// close timeout more), though it still does not read.
				bound, cancel := context.WithTimeout(ctx, writeTimeout+wschan.DefaultCloseTimeout+10*time.Second)
				metricsWait(bound, t, srv.URL, "the member that never reads dropped", func(s metricsScrape) bool {
					v, _ := s.value("wschan_connections_open")
					return v == 2
				})
				cancel()
				_ = slow.Conn.SetReadDeadline(time.Now().Add(roomTimeout / 4))
				read(0, 0)
			}
			var e slowEnd
			select {
			case e = <-ended:
			case <-ctx.Done():
				t.Fatal("the slow member's connection did not end")
			}
			want := fmt.Sprintf("too slow: %d messages queued", queue)
			switch {
			case tt.pace > 0 && (e.code != 1008 || e.reason != want):
				t.Errorf("slow reader's end: %d %q after %d of %d messages, want 1008 %q", e.code, e.reason, e.got, k, want)
			case tt.pace == 0 && e.code != -1 && (e.code != 1008 || e.reason != want):
				t.Errorf("end of the member that never reads: %d %q after %d of %d messages, want no close frame or 1008 %q", e.code, e.reason, e.got, k, want)
			}
			if e.got >= k {
				t.Errorf("the member read %d of %d messages: it was not behind", e.got, k)
			}
			metricsWait(ctx, t, srv.URL, "the slow member counted", func(s metricsScrape) bool {
				v, _ := s.value("wschan_room_slow_member_disconnects_total")
				return v == 1
			})
			t.Logf("dropped after %d messages; it read %d, then %d %q", k, e.got, e.code, e.reason)
		})
	}
}
