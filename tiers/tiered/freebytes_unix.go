//go:build unix

package tiered

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// freeBytes reports the bytes available to an unprivileged writer on the
// file system holding dir.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("tiered: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
