//go:build unix

package bench

import "syscall"

// fileLimit is how many files this process may open: the hard
// RLIMIT_NOFILE (the Go runtime raises the soft limit to it at start), or 0
// if unknown.
func fileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Max >= 1<<62 { // unlimited
		return 0
	}
	return uint64(rl.Max)
}
