// Command nbio is an echo server on github.com/lesismal/nbio (nbhttp and
// its websocket package): an epoll event loop (IOModNonBlocking, the
// default) instead of a goroutine per connection, with handlers run inline
// on the poller goroutine (ServerExecutor calls them directly, no task
// pool) and payload buffers recycled after OnMessage
// (ReleaseWebsocketPayload). UTF-8 checking of text messages is on (the
// engine's CheckUtf8 is utf8.Valid by default) and the default ping handler
// answers pings with pongs.
package main

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

func main() {
	addr := peer.Flags()
	logging.SetLevel(logging.LevelError)

	up := websocket.NewUpgrader()
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.OnMessage(func(c *websocket.Conn, typ websocket.MessageType, data []byte) {
		_ = c.WriteMessage(typ, data)
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = up.Upgrade(w, r, nil)
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{addr}, // port 0: Start writes the bound address back
		Handler:                 mux,
		IOMod:                   nbhttp.IOModNonBlocking,
		ServerExecutor:          func(f func()) { f() },
		ReleaseWebsocketPayload: true,
	})
	engine.CheckUtf8 = utf8.Valid
	up.Engine = engine
	if err := engine.Start(); err != nil {
		peer.Fatal("nbio", err)
	}
	fmt.Println("listening", engine.Addrs[0])
	<-peer.Signaled().Done()
	engine.Stop()
}
