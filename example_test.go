package wschan_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/wschan/wschan"
)

// echoServer is the recipe's test server: it sends back every message it
// gets. It returns the server's ws:// URL.
func echoServer() (string, func()) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		for m := range ch.Messages(r.Context()) {
			if err := ch.Send(r.Context(), m.Type, m.Data); err != nil {
				return
			}
		}
	}))
	return "ws" + strings.TrimPrefix(srv.URL, "http"), srv.Close
}

// The whole recipe: connect, send, listen, close.
func Example() {
	url, stop := echoServer()
	defer stop()
	ctx := context.Background()

	// 1. Connect to a WebSocket server.
	ch, err := wschan.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}

	// 3. Send data to the server.
	if err := ch.SendText(ctx, "Hello!"); err != nil {
		log.Fatal(err)
	}

	// 2. Listen for messages from the server.
	msg, err := ch.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s\n", msg.Type, msg.Data)

	// 4. Close the WebSocket connection.
	if err := ch.Close(wschan.StatusNormalClosure, "done"); err != nil {
		log.Fatal(err)
	}
	fmt.Println("closed with", ch.CloseCode())
	// Output:
	// text: Hello!
	// closed with 1000 (normal closure)
}

// Listening as a stream: range over Messages until the channel ends.
func ExampleChannel_Messages() {
	url, stop := echoServer()
	defer stop()
	ctx := context.Background()

	ch, err := wschan.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		_ = ch.SendText(ctx, s)
	}
	n := 0
	for msg := range ch.Messages(ctx) {
		fmt.Println(string(msg.Data))
		if n++; n == 3 {
			_ = ch.Close(wschan.StatusNormalClosure, "")
		}
	}
	fmt.Println("stream ended:", ch.Err())
	// Output:
	// one
	// two
	// three
	// stream ended: wschan: channel closed
}

// A server echoing from the read loop itself, with no goroutine hand-off.
func ExampleAccept() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = wschan.Accept(w, r, &wschan.AcceptOptions{
			OnMessage: func(ch *wschan.Channel, m wschan.Message) {
				_ = ch.Send(context.Background(), m.Type, m.Data)
			},
		})
	}))
	defer srv.Close()
	ctx := context.Background()

	ch, err := wschan.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ch.Close(wschan.StatusNormalClosure, "")
	_ = ch.Send(ctx, wschan.Binary, []byte{1, 2, 3})
	msg, _ := ch.Read(ctx)
	fmt.Println(msg.Type, msg.Data)
	// Output: binary [1 2 3]
}

// A client that survives server restarts and re-subscribes on each connect.
func ExampleReconnectOptions() {
	url, stop := echoServer()
	defer stop()
	ctx := context.Background()

	// OnStateChange runs on the channel's own goroutine, so collect the
	// states and print them once the channel has ended.
	var (
		mu     sync.Mutex
		states []wschan.State
	)
	ch, err := wschan.Dial(ctx, url, &wschan.DialOptions{
		Reconnect: &wschan.ReconnectOptions{
			OnConnect: func(ctx context.Context, s wschan.Sender) error {
				return s.Send(ctx, wschan.Text, []byte("subscribe news"))
			},
		},
		OnStateChange: func(s wschan.State, err error) {
			mu.Lock()
			states = append(states, s)
			mu.Unlock()
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	msg, _ := ch.Read(ctx) // the echo of the preamble
	fmt.Println(string(msg.Data))
	_ = ch.Close(wschan.StatusNormalClosure, "")
	mu.Lock()
	fmt.Println(states)
	mu.Unlock()
	// Output:
	// subscribe news
	// [connecting open closed]
}

// Telling the ways a channel can end apart.
func ExampleCloseError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err == nil {
			_ = ch.Close(4000, "maintenance")
		}
	}))
	defer srv.Close()

	ch, err := wschan.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	<-ch.Done()
	if ce, ok := errors.AsType[*wschan.CloseError](ch.Err()); ok && ce.Remote {
		fmt.Println("server closed:", ce.Code, ce.Reason)
	}
	// Output: server closed: 4000 maintenance
}

// Another protocol through a WebSocket: a line-based upper-casing service,
// spoken over a net.Conn on each side.
func ExampleNetConn() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch, err := wschan.Accept(w, r, nil)
		if err != nil {
			return
		}
		conn := wschan.NetConn(context.Background(), ch, wschan.Binary)
		defer conn.Close()
		lines := bufio.NewScanner(conn)
		for lines.Scan() {
			fmt.Fprintln(conn, strings.ToUpper(lines.Text()))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	ch, err := wschan.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	conn := wschan.NetConn(ctx, ch, wschan.Binary)
	defer conn.Close()
	fmt.Fprint(conn, "hello, ")       // one message...
	fmt.Fprint(conn, "tunnel\nbye\n") // ...and another: the stream has no boundaries
	answers := bufio.NewReader(conn)
	for range 2 {
		line, err := answers.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(line)
	}
	// Output:
	// HELLO, TUNNEL
	// BYE
}

// JSON values in both directions.
func ExampleReadJSON() {
	url, stop := echoServer()
	defer stop()
	ctx := context.Background()

	ch, err := wschan.Dial(ctx, url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ch.Close(wschan.StatusNormalClosure, "")

	type greeting struct {
		From string `json:"from"`
		Text string `json:"text"`
	}
	if err := wschan.SendJSON(ctx, ch, greeting{From: "gopher", Text: "hi"}); err != nil {
		log.Fatal(err)
	}
	_ = ch.SendText(ctx, "not json") // the echo server sends it back, too
	g, err := wschan.ReadJSON[greeting](ctx, ch)
	fmt.Printf("%+v %v\n", g, err)
	_, err = wschan.ReadJSON[greeting](ctx, ch)
	fmt.Println(errors.Is(err, wschan.ErrInvalidJSON))
	// Output:
	// {From:gopher Text:hi} <nil>
	// true
}

// One message to many channels from one goroutine, as a chat room writes
// it: TrySend takes it at once wherever the socket has room (on the poll
// engine); only the channels it refuses need a Send, which may wait. A
// server would hand those to a goroutine each; here they are sent in turn.
func ExampleChannel_TrySend() {
	accepted := make(chan *wschan.Channel, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch, err := wschan.Accept(w, r, &wschan.AcceptOptions{Engine: wschan.EnginePoll}); err == nil {
			accepted <- ch
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	var clients, members []*wschan.Channel
	for range 3 {
		c, err := wschan.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close(wschan.StatusNormalClosure, "")
		clients = append(clients, c)
		members = append(members, <-accepted)
	}

	msg := []byte("hello, room")
	var refused []*wschan.Channel
	for _, ch := range members {
		sent, err := ch.TrySend(wschan.Text, msg)
		if err == nil && !sent {
			refused = append(refused, ch)
		}
	}
	for _, ch := range refused {
		_ = ch.Send(ctx, wschan.Text, msg)
	}
	for _, c := range clients {
		m, _ := c.Read(ctx)
		fmt.Println(string(m.Data))
	}
	// Output:
	// hello, room
	// hello, room
	// hello, room
}
