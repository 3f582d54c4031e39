//go:build !unix

package xconnect

import "errors"

// Reexec is not supported on this system: set GODEBUG=http2xconnect=1 in
// the environment instead. It returns nil when GODEBUG already decides.
func Reexec() error {
	if Decided() {
		return nil
	}
	return errors.New("xconnect: restarting the program is not supported here: set GODEBUG=" + Setting)
}
