package prefixconn_test

import (
	"io"
	"net"
	"testing"

	"github.com/wschan/wschan/internal/prefixconn"
)

func TestPrefixThenConnection(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_, _ = b.Write([]byte(" world"))
		_ = b.Close()
	}()
	c := prefixconn.New(a, []byte("hello"))
	// Small reads: the prefix is served across them, then the connection.
	var got []byte
	buf := make([]byte, 3)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello world" {
		t.Fatalf("read %q, want %q", got, "hello world")
	}
}
