//go:build race

package wschan_test

// raceEnabled: the race detector allocates on its own; allocation counts
// are checked without it (scripts/test runs them separately).
const raceEnabled = true
