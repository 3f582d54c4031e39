package tui

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wschan/wschan"
)

// plainRun runs RunPlain on ch with pipes for stdin and stdout.
type plainRun struct {
	in   *io.PipeWriter
	out  *bufio.Reader
	errc chan error
}

func startPlain(t *testing.T, ctx context.Context, ch Channel) *plainRun {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &plainRun{in: inW, out: bufio.NewReader(outR), errc: make(chan error, 1)}
	go func() {
		err := RunPlain(ctx, ch, inR, outW)
		outW.Close()
		p.errc <- err
	}()
	t.Cleanup(func() {
		inW.Close()  // ends RunPlain's stdin reader
		outR.Close() // unblocks a write nobody reads
	})
	return p
}

func (p *plainRun) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.in, s); err != nil {
		t.Fatal(err)
	}
}

// line reads one output line (pipes block: no waiting for time).
func (p *plainRun) line(t *testing.T) string {
	t.Helper()
	l, err := p.out.ReadString('\n')
	if err != nil {
		t.Fatalf("read output: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

func (p *plainRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.errc:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("RunPlain did not return")
		return nil
	}
}

func TestRunPlainEcho(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	p := startPlain(t, t.Context(), ch)

	p.write(t, "hello\n")
	if got := p.line(t); got != "< hello" {
		t.Fatalf("got %q, want %q", got, "< hello")
	}
	p.write(t, "\nworld\r\nlast\n") // an empty line sends nothing
	p.in.Close()                    // EOF: RunPlain waits for both echoes, then closes
	for _, want := range []string{"< world", "< last"} {
		if got := p.line(t); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if err := p.wait(t); err != nil {
		t.Fatalf("RunPlain: %v", err)
	}
	if _, err := p.out.ReadString('\n'); err != io.EOF {
		t.Errorf("output after the last echo: %v", err)
	}
	if ch.CloseCode() != wschan.StatusNormalClosure {
		t.Errorf("close code %v, want 1000", ch.CloseCode())
	}
	// hello, world, last: the empty line was not sent.
	if n := srv.received.Load(); n != 3 {
		t.Errorf("server received %v messages, want 3", n)
	}
}

func TestRunPlainContextEnds(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	ctx, cancel := context.WithCancel(t.Context())
	p := startPlain(t, ctx, ch)
	p.write(t, "hi\n")
	if got := p.line(t); got != "< hi" {
		t.Fatalf("got %q", got)
	}
	// A message RunPlain did not send is printed too; binary is described.
	if err := ch.Send(t.Context(), wschan.Binary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got, want := p.line(t), "< [binary 3 bytes] 01 02 03"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	cancel()
	if err := p.wait(t); err != nil {
		t.Fatalf("RunPlain after cancel: %v", err)
	}
	if ch.CloseCode() != wschan.StatusNormalClosure {
		t.Errorf("close code %v, want 1000", ch.CloseCode())
	}
}

func TestRunPlainServerGone(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ch, _ := dial(t, srv.wsURL, false)
	p := startPlain(t, t.Context(), ch)
	p.write(t, "hi\n")
	if got := p.line(t); got != "< hi" {
		t.Fatalf("got %q", got)
	}
	srv.stop()
	err := p.wait(t)
	var ce *wschan.CloseError
	if !errors.As(err, &ce) || ce.Code != wschan.StatusGoingAway {
		t.Fatalf("RunPlain = %v, want the server's 1001", err)
	}
	if want := "connection closed: 1001 (going away) server shutting down"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
}
