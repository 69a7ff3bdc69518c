//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package objstoretest

import (
	"errors"
	"os"
	"syscall"
)

type fileLock struct{ f *os.File }

func (l *fileLock) unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}

// lockShared blocks until it holds a shared lock on path.
func lockShared(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	return &fileLock{f}, nil
}

// tryLockExclusive returns an exclusive lock on path, or nil if another process holds
// any lock on it.
func tryLockExclusive(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return &fileLock{f}, nil
}
