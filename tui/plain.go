package tui

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/wschan/wschan"
)

// Limits of RunPlain.
const (
	// plainDrainTimeout is how long RunPlain waits, after the end of its
	// input, for replies to the messages it sent.
	plainDrainTimeout = 5 * time.Second
	// maxLine is the longest input line RunPlain sends.
	maxLine = 1 << 20
)

// RunPlain is the demo without a screen, for when standard input or output
// is not a terminal. Each non-empty line of in (without its line ending) is
// sent as a text message; each message received is written to out as
// "< text", or "< [binary 5 bytes] 01 02 03 04 05". It blocks until in ends
// and as many messages have come back as were sent (an echo server's
// answers; any message counts, a greeting too), at most 5 seconds after in
// ends; or until ctx ends or the channel does. Then it closes ch with 1000,
// if it is still open, and returns.
//
// The error is nil after a close by this side (including when ctx ends)
// or a normal close by the peer; otherwise it says how the channel ended,
// or why reading in or writing out failed. Lines longer than 1 MiB fail.
//
// A Read on in that is still blocked when RunPlain returns (a terminal or
// pipe that never ends) is left behind: RunPlain cannot interrupt it, and
// the goroutine doing it ends when in returns.
func RunPlain(ctx context.Context, ch Channel, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	lines := make(chan string)
	inErr := make(chan error, 1)
	go func() { // may outlive RunPlain while in blocks: see above
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		inErr <- sc.Err()
	}()

	msgs := make(chan wschan.Message)
	ended := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := ch.Read(ctx)
			if err != nil {
				if ctx.Err() == nil { // not RunPlain stopping
					ended <- err
				}
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()

	var sent, received int
	var drain <-chan time.Time
	for lines != nil || received < sent {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil
				select {
				case err := <-inErr: // sent before lines is closed at the end of in
					if err != nil {
						return errors.Join(fmt.Errorf("read input: %w", err), closePlain(ch, cancel))
					}
				default: // ctx ended
					return closePlain(ch, cancel)
				}
				t := time.NewTimer(plainDrainTimeout)
				defer t.Stop()
				drain = t.C
				continue
			}
			if line == "" {
				continue
			}
			if err := ch.Send(ctx, wschan.Text, []byte(line)); err != nil {
				if ctx.Err() != nil {
					return closePlain(ch, cancel)
				}
				return errors.Join(fmt.Errorf("send: %w", err), closePlain(ch, cancel))
			}
			sent++
		case m := <-msgs:
			received++
			if _, err := fmt.Fprintf(out, "< %s\n", plainText(m)); err != nil {
				return errors.Join(fmt.Errorf("write output: %w", err), closePlain(ch, cancel))
			}
		case err := <-ended:
			cancel()
			return endError(ch, err)
		case <-drain:
			return closePlain(ch, cancel)
		case <-ctx.Done():
			return closePlain(ch, cancel)
		}
	}
	return closePlain(ch, cancel)
}

// closePlain closes ch with 1000 and stops the reader.
func closePlain(ch Channel, cancel context.CancelFunc) error {
	err := ch.Close(wschan.StatusNormalClosure, "")
	cancel()
	if err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// endError is RunPlain's error for a channel that ended while it ran.
func endError(ch Channel, err error) error {
	if errors.Is(err, wschan.ErrClosed) {
		return nil
	}
	var ce *wschan.CloseError
	if errors.As(err, &ce) && ce.Remote && ce.Code == wschan.StatusNormalClosure {
		return nil
	}
	return fmt.Errorf("connection %s: %w", closedText(ch.CloseCode(), ch.CloseReason()), err)
}

// plainText is a received message as RunPlain prints it: text as it came
// (a message may hold several lines), binary described.
func plainText(m wschan.Message) string {
	if m.Type == wschan.Binary {
		return describeBinary(m.Data)
	}
	return string(m.Data)
}
