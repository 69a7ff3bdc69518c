//go:build !unix

package raftlog

import (
	"io"
	"os"
)

// lockFile only creates name where flock is missing: there, two logs
// opened on one directory are not detected.
func lockFile(name string) (io.Closer, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
}
