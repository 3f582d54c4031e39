package wschan

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// pipeClient dials over an in-memory pipe to a peer that completes the
// handshake and then does what serve says with the rest of the pipe.
func pipeClient(t *testing.T, o *DialOptions, serve func(c net.Conn)) *Channel {
	t.Helper()
	client, peer := net.Pipe()
	go func() {
		defer peer.Close()
		br := bufio.NewReader(peer)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.WriteString(peer, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+acceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		serve(peer)
	}()
	ch := newChannel(o.settings(), true)
	e, _, err := dialGWS(client, "ws://pipe/", http.Header{}, time.Second, false, ch.set.readLimit)
	if err != nil {
		t.Fatal(err)
	}
	c := newWSConn(ch, e, "")
	ch.attach(c)
	ch.setState(StateOpen, nil)
	go c.run()
	return ch
}

// TestCloseTimeoutOnFakeClock: a peer that reads but never answers the
// close frame holds Close for exactly the close timeout, no less.
func TestCloseTimeoutOnFakeClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 7 * time.Second
		ch := pipeClient(t, &DialOptions{CloseTimeout: timeout, PingInterval: -1}, func(c net.Conn) {
			io.Copy(io.Discard, c) // reads everything, answers nothing
		})
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- ch.Close(StatusNormalClosure, "bye") }()
		time.Sleep(timeout - time.Millisecond)
		synctest.Wait()
		select {
		case <-done:
			t.Fatalf("Close returned after %v, before the close timeout", time.Since(start))
		default:
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil || ch.CloseCode() != StatusNormalClosure {
				t.Fatalf("Close = %v, code %v", err, ch.CloseCode())
			}
		default:
			t.Fatal("Close still waiting after the close timeout")
		}
	})
}

// acceptKey is Sec-WebSocket-Accept for key (wstest.AcceptKey cannot be
// imported from the package's own tests: wstest imports wschan).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
