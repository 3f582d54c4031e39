package wschan_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/wschan/wschan/internal/xconnect"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Extended CONNECT for the HTTP/2 tests: a process-wide switch in
	// Go 1.26, read at start-up (see internal/xconnect).
	if err := xconnect.Reexec(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	goleak.VerifyTestMain(m)
}
