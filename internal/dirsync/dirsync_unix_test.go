//go:build unix

package dirsync

import (
	"path/filepath"
	"testing"
)

// TestSync: a directory syncs; one that does not exist is an error, not
// a silent success (a caller would believe a rename durable).
func TestSync(t *testing.T) {
	dir := t.TempDir()
	if err := Sync(dir); err != nil {
		t.Fatal(err)
	}
	if err := Sync(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("syncing a missing directory succeeded")
	}
}
