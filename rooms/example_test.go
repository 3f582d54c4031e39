package rooms_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wschan/wschan"
	"github.com/wschan/wschan/rooms"
)

// A chat room server in a few lines: each connection joins the room named
// in the URL, and each message it sends goes to every member, itself
// included.
func ExampleHub() {
	hub := rooms.NewHub(nil)
	defer hub.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		m, err := hub.Join(r.Context(), r.URL.Query().Get("room"), ch)
		if err != nil {
			_ = ch.Close(wschan.StatusPolicyViolation, "cannot join")
			return
		}
		defer m.Leave()
		for msg := range ch.Messages(context.Background()) {
			_ = m.Publish(context.Background(), msg.Type, msg.Data)
		}
	}))
	defer srv.Close()

	ctx := context.Background()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/?room=lobby"
	alice, _ := wschan.Dial(ctx, url, nil)
	bob, _ := wschan.Dial(ctx, url, nil)
	for hub.Stats().Members < 2 { // wait until both have joined
		<-time.After(time.Millisecond)
	}

	_ = alice.SendText(ctx, "hello, room")
	for _, c := range []struct {
		name string
		ch   *wschan.Channel
	}{{"alice", alice}, {"bob", bob}} {
		msg, _ := c.ch.Read(ctx)
		fmt.Printf("%s got %s %q\n", c.name, msg.Type, msg.Data)
	}
	_ = alice.Close(wschan.StatusNormalClosure, "")
	_ = bob.Close(wschan.StatusNormalClosure, "")
	// Output:
	// alice got text "hello, room"
	// bob got text "hello, room"
}

// printConn is a rooms.Conn that prints what it is sent and says when it is done.
type printConn struct {
	name string
	got  chan struct{}
}

func (c printConn) Send(_ context.Context, typ wschan.MessageType, data []byte) error {
	fmt.Printf("%s got %s %q\n", c.name, typ, data)
	c.got <- struct{}{}
	return nil
}

func (c printConn) Close(wschan.StatusCode, string) error { return nil }

// Two hubs that share a broker share their rooms: here in one process with
// a MemoryBroker, across processes with natsbroker.
func ExampleNewMemoryBroker() {
	broker := rooms.NewMemoryBroker(nil)
	east := rooms.NewHub(&rooms.HubOptions{Broker: broker})
	west := rooms.NewHub(&rooms.HubOptions{Broker: broker})
	defer east.Close()
	defer west.Close()

	ctx := context.Background()
	got := make(chan struct{})
	ann, _ := east.Join(ctx, "news", printConn{"ann (east)", got})
	_, _ = west.Join(ctx, "news", printConn{"wes (west)", got})

	_ = ann.Publish(ctx, wschan.Binary, []byte{0xca, 0xfe})
	<-got
	<-got
	// Unordered output:
	// ann (east) got binary "\xca\xfe"
	// wes (west) got binary "\xca\xfe"
}
