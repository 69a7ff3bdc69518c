//go:build unix

package claim

import (
	"errors"
	"syscall"
)

// processGone reports whether no process with pid exists in our pid namespace.
// EPERM means it exists but belongs to another user.
func processGone(pid int) bool {
	if pid <= 0 { // kill(0) and kill(-n) address process groups
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
