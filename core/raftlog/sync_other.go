//go:build !linux

package raftlog

import "os"

// datasync is fsync where fdatasync is missing (on macOS, Go's Sync
// asks for F_FULLFSYNC).
func datasync(f *os.File) error { return f.Sync() }
