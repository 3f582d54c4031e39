package main

import "github.com/wschan/wschan"

// pollGCPercent is the garbage collector's target with --engine poll: the
// heap may grow 25% past what is live before a collection, not Go's 100%.
// The runtime keeps up to that target (plus a little) from the system, so
// it sets most of an idle server's memory above what its connections hold:
// 19,000 idle connections took 4.2 KiB each at GOGC=100 and 2.9 KiB at 25
// (BENCHMARKS.md, "Idle connections and the collector"). The poll engine
// allocates nothing per echoed message, so collections stay rare under
// load; they come with handshakes, logs and metrics scrapes.
const pollGCPercent = 25

// gcPercent is the collector target wschan serve sets for engine, and
// whether it sets one: only for poll, and never over GOGC in the
// environment (the user's choice).
func gcPercent(engine wschan.Engine, lookupEnv lookupEnvFunc) (int, bool) {
	if _, set := lookupEnv("GOGC"); set || engine != wschan.EnginePoll {
		return 0, false
	}
	return pollGCPercent, true
}
