package wschan

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// The deadline's timer on a fake clock: it fires at the deadline and not
// before, moving it re-arms the same context, and a deadline that passed
// is lifted by setting another.
func TestDeadlineTimer(t *testing.T) {
	expired := func(ctx context.Context) bool { return errors.Is(context.Cause(ctx), os.ErrDeadlineExceeded) }
	tests := []struct {
		name string
		run  func(t *testing.T, d *deadline)
	}{
		{"fires at the deadline", func(t *testing.T, d *deadline) {
			d.set(time.Now().Add(time.Second))
			ctx := d.context()
			time.Sleep(time.Second - time.Nanosecond)
			synctest.Wait()
			if ctx.Err() != nil {
				t.Fatal("fired early")
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			if !expired(ctx) {
				t.Fatalf("not expired at the deadline: %v", context.Cause(ctx))
			}
		}},
		{"moving it later re-arms the same context", func(t *testing.T, d *deadline) {
			d.set(time.Now().Add(time.Second))
			ctx := d.context()
			d.set(time.Now().Add(time.Minute))
			time.Sleep(time.Second)
			synctest.Wait()
			if ctx.Err() != nil || d.context() != ctx {
				t.Fatal("old deadline fired, or a new context")
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if !expired(ctx) {
				t.Fatal("moved deadline did not fire")
			}
		}},
		{"clearing it stops the timer", func(t *testing.T, d *deadline) {
			d.set(time.Now().Add(time.Second))
			d.set(time.Time{})
			time.Sleep(time.Hour)
			synctest.Wait()
			if d.context().Err() != nil {
				t.Fatal("cleared deadline fired")
			}
		}},
		{"a passed deadline is lifted by a new one", func(t *testing.T, d *deadline) {
			d.set(time.Now().Add(-time.Second))
			old := d.context()
			if !expired(old) {
				t.Fatal("past deadline not expired at once")
			}
			d.set(time.Now().Add(time.Second))
			if d.context().Err() != nil {
				t.Fatal("new deadline expired")
			}
			if !expired(old) {
				t.Fatal("old context revived")
			}
		}},
		{"close is for good", func(t *testing.T, d *deadline) {
			d.set(time.Now().Add(time.Second))
			d.close()
			d.set(time.Time{})
			if c := context.Cause(d.context()); c != net.ErrClosed {
				t.Fatalf("cause %v, want net.ErrClosed", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var d deadline
				d.init(t.Context())
				tt.run(t, &d)
				d.close()
			})
		})
	}
}
