//go:build unix

package objstore

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, waiting for it: the Dir
// store's conditional writes are atomic across processes sharing the
// directory.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
