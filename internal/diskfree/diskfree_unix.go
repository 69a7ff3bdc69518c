//go:build unix

// Package diskfree reports the free space of a file system.
package diskfree

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Bytes reports the bytes available to an unprivileged writer on the file
// system holding dir.
func Bytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
