// Command gws is an echo server on github.com/lxzan/gws, configured as a
// conformant server (its defaults skip both): UTF-8 checking on
// (CheckUtf8Enabled) and pings answered with pongs (WritePong in OnPing).
// It echoes from OnMessage in the connection's ReadLoop goroutine, one per
// connection, as internal/cmd/gwsecho in the main module does.
package main

import (
	"net/http"

	"github.com/lxzan/gws"

	"github.com/wschan/wschan/bench/peers/internal/peer"
)

type echo struct{ gws.BuiltinEventHandler }

func (echo) OnPing(s *gws.Conn, payload []byte) { _ = s.WritePong(payload) }

func (echo) OnMessage(s *gws.Conn, m *gws.Message) {
	_ = s.WriteMessage(m.Opcode, m.Bytes())
	_ = m.Close()
}

func main() {
	addr := peer.Flags()
	up := gws.NewUpgrader(echo{}, &gws.ServerOption{CheckUtf8Enabled: true})
	peer.ServeHTTP("gws", addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	}))
}
