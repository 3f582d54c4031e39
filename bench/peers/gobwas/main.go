// Command gobwas is an echo server on github.com/gobwas/ws with its wsutil
// helpers, as the README's first example writes it: ws.UpgradeHTTP, then
// wsutil.ReadClientData and wsutil.WriteServerMessage on the hijacked
// net.Conn in a goroutine per connection (no bufio: the README's form).
// UTF-8 checking of text messages is on (wsutil.SetCheckUTF8, its default)
// and ReadClientData answers pings with pongs.
package main

import (
	"net/http"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

func main() {
	addr := peer.Flags()
	wsutil.SetCheckUTF8(true)
	peer.ServeHTTP("gobwas", addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
					return
				}
			}
		}()
	}))
}
