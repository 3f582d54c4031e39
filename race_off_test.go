//go:build !race

package wschan_test

const raceEnabled = false
