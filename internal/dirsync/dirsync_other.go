//go:build !unix

// Package dirsync makes the names created, renamed or removed in a
// directory durable.
package dirsync

// Sync does nothing where a directory cannot be opened for syncing; there
// the file system orders its own metadata.
func Sync(string) error { return nil }
