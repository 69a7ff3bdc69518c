//go:build unix

// Package dirsync makes the names created, renamed or removed in a
// directory durable.
package dirsync

import "os"

// Sync fsyncs directory dir: after a crash, the entries created, renamed
// or removed in it before the call are as they were then.
func Sync(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
