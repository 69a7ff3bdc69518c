package raftlog

import (
	"io"
	"os"
	"path/filepath"

	"github.com/soullabs/brainy/internal/dirsync"
)

// fileSystem is what the log needs of a directory. The real one is osFS;
// tests use one that forgets what was never synced (crash tests).
type fileSystem interface {
	MkdirAll(dir string) error
	// List returns the names in dir.
	List(dir string) ([]string, error)
	// Create makes a new file; it fails if the name exists.
	Create(name string) (file, error)
	// OpenRW opens an existing file for reading and writing.
	OpenRW(name string) (file, error)
	Remove(name string) error
	// SyncDir makes the creations and removals of names in dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock on name (created if missing), failing
	// if another process holds it.
	Lock(name string) (io.Closer, error)
}

// file is an open segment.
type file interface {
	io.ReaderAt
	io.WriterAt
	Size() (int64, error)
	Truncate(size int64) error
	// Sync makes the file's data durable (fdatasync where there is one).
	Sync() error
	Close() error
}

// osFS is the local disk.
type osFS struct{}

func (osFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (osFS) List(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(des))
	for i, de := range des {
		names[i] = de.Name()
	}
	return names, nil
}

func (osFS) Create(name string) (file, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenRW(name string) (file, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) SyncDir(dir string) error { return dirsync.Sync(filepath.Clean(dir)) }

func (osFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Sync() error { return datasync(f.File) }
