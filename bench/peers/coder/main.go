// Command coder is an echo server on github.com/coder/websocket, as its
// echo example writes it: Reader, Writer and io.Copy per message, one
// goroutine per connection (the HTTP handler's). Compression off (the
// default); pings are answered while reading. coder/websocket has no option
// to check that text messages are UTF-8, so this server does not.
package main

import (
	"context"
	"io"
	"net/http"

	"github.com/coder/websocket"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

func main() {
	addr := peer.Flags()
	peer.ServeHTTP("coder", addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		ctx := context.Background()
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			wr, err := c.Writer(ctx, typ)
			if err != nil {
				return
			}
			if _, err := io.Copy(wr, rd); err != nil {
				return
			}
			if err := wr.Close(); err != nil {
				return
			}
		}
	}))
}
