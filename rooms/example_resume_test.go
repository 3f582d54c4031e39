package rooms_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// A client that comes back gets what it missed: the server speaks the
// envelope protocol, and the client's reconnecting Dial sends a resuming
// join from its OnConnect hook, with the last position it saw.
func ExampleJoinOptions_resume() {
	hub := rooms.NewHub(&rooms.HubOptions{
		Broker: rooms.NewMemoryBroker(&rooms.MemoryBrokerOptions{HistorySize: 100}),
	})
	defer hub.Close()
	kick := make(chan struct{}) // the server drops the first connection when this closes
	var served sync.WaitGroup
	first := true
	var firstMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		defer served.Done()
		ch, err := wschan.Accept(w, r, &wschan.AcceptOptions{Subprotocols: []string{rooms.Subprotocol}})
		if err != nil {
			return
		}
		firstMu.Lock()
		if first {
			first = false
			go func() {
				select {
				case <-kick:
					_ = ch.Close(wschan.StatusServiceRestart, "restarting")
				case <-ch.Done():
				}
			}()
		}
		firstMu.Unlock()
		var m *rooms.Member
		for msg := range ch.Messages(context.Background()) {
			cmd, err := rooms.ParseCommand(msg.Data)
			switch {
			case err != nil:
			case cmd.Type == "join" && m == nil:
				m, _ = hub.JoinWith(r.Context(), "news", ch, &rooms.JoinOptions{Envelopes: true, Since: cmd.Since})
			case cmd.Type == "message" && m != nil:
				_ = m.Publish(context.Background(), cmd.MessageType, cmd.Data)
			}
		}
		if m != nil {
			m.Leave()
		}
	}))
	defer srv.Close()
	defer served.Wait()

	// The client remembers the last position it saw, and resumes from it.
	var (
		mu   sync.Mutex
		last *rooms.StreamPosition
	)
	ctx := context.Background()
	ch, err := wschan.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &wschan.DialOptions{
		Subprotocols: []string{rooms.Subprotocol},
		Reconnect: &wschan.ReconnectOptions{
			MinDelay: 10 * time.Millisecond,
			OnConnect: func(ctx context.Context, s wschan.Sender) error {
				mu.Lock()
				join := `{"type":"join"}`
				if last != nil {
					join = fmt.Sprintf(`{"type":"join","epoch":%q,"seq":%d}`, last.Epoch, last.Offset)
				}
				mu.Unlock()
				return s.Send(ctx, wschan.Text, []byte(join))
			},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ch.Close(wschan.StatusNormalClosure, "")
	read := func() {
		msg, _ := ch.Read(ctx)
		var ev rooms.Event
		_ = json.Unmarshal(msg.Data, &ev)
		mu.Lock()
		defer mu.Unlock()
		switch ev.Type {
		case rooms.EventWelcome:
			if last == nil {
				last = &rooms.StreamPosition{Epoch: ev.Epoch, Offset: ev.Seq}
			}
			fmt.Printf("welcome: the room is at %d\n", ev.Seq)
		case rooms.EventMessage:
			last.Offset = ev.Seq
			fmt.Printf("%d: %s\n", ev.Seq, *ev.Text)
		case rooms.EventGap:
			fmt.Printf("missed %d to %d for good\n", ev.GapFrom, ev.GapTo)
		}
	}

	read() // the welcome
	_ = hub.Publish(ctx, "news", wschan.Text, []byte("one"))
	read()

	close(kick) // the connection drops; two messages come while the client is away
	for hub.Stats().Members > 0 {
		time.Sleep(time.Millisecond)
	}
	_ = hub.Publish(ctx, "news", wschan.Text, []byte("two"))
	_ = hub.Publish(ctx, "news", wschan.Text, []byte("three"))
	for range 3 { // the new connection's welcome, then what was missed
		read()
	}
	// Output:
	// welcome: the room is at 0
	// 1: one
	// welcome: the room is at 3
	// 2: two
	// 3: three
}
