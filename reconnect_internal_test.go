package wschan

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// handshakePeer answers the client's opening handshake on c, then does
// what after says with the connection.
func handshakePeer(c net.Conn, after func(net.Conn)) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "+acceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
	after(c)
}

// TestReconnectBackoffOnFakeClock: the first connection drops, the next
// five dials are refused, the seventh succeeds. On a fake clock the waits
// between dials follow the policy exactly: each drawn from [d/2, d], d
// doubling from MinDelay and capped at MaxDelay.
func TestReconnectBackoffOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const minDelay, maxDelay = time.Second, 8 * time.Second
		var (
			mu    sync.Mutex
			dials []time.Time
			peers sync.WaitGroup
		)
		stay := make(chan struct{})
		o := &DialOptions{PingInterval: -1, Reconnect: &ReconnectOptions{MinDelay: minDelay, MaxDelay: maxDelay}}
		o.NetDial = func(context.Context, string, string) (net.Conn, error) {
			mu.Lock()
			dials = append(dials, time.Now())
			n := len(dials)
			mu.Unlock()
			if n >= 2 && n <= 6 {
				return nil, errors.New("connection refused")
			}
			client, peer := net.Pipe()
			peers.Go(func() {
				handshakePeer(peer, func(c net.Conn) {
					if n == 1 {
						return // drop: the client sees 1006 and redials
					}
					go io.Copy(io.Discard, c)
					<-stay
				})
			})
			return client, nil
		}
		var states []State
		o.OnStateChange = func(s State, _ error) { states = append(states, s) }
		ch, err := Dial(context.Background(), "ws://pipe/", o)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // far beyond the sum of the waits
		synctest.Wait()
		if ch.State() != StateOpen {
			t.Fatalf("state %v after the seventh dial, want open (states %v)", ch.State(), states)
		}
		mu.Lock()
		got := dials
		mu.Unlock()
		if len(got) != 7 {
			t.Fatalf("%d dials, want 7", len(got))
		}
		d := minDelay
		for i := 1; i < len(got); i++ {
			gap := got[i].Sub(got[i-1])
			if gap < d/2 || gap > d {
				t.Errorf("wait before dial %d: %v, want within [%v, %v]", i+1, gap, d/2, d)
			}
			d = min(2*d, maxDelay)
		}
		close(stay)
		_ = ch.Close(StatusNormalClosure, "")
		peers.Wait()
	})
}
