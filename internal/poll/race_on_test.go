//go:build race

package poll

// raceEnabled: the race detector is on; sync.Pool then drops some of
// what it is given, on purpose, so pooled paths allocate.
const raceEnabled = true
