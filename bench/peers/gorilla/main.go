// Command gorilla is an echo server on github.com/gorilla/websocket, as its
// echo example writes it: ReadMessage, WriteMessage, one goroutine per
// connection (the HTTP handler's). Default buffers; the default ping handler
// answers pings with pongs. gorilla has no option to check that text
// messages are UTF-8, so this server does not.
package main

import (
	"net/http"

	"github.com/gorilla/websocket"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

func main() {
	addr := peer.Flags()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	peer.ServeHTTP("gorilla", addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, p); err != nil {
				return
			}
		}
	}))
}
