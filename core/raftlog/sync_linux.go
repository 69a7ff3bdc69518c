package raftlog

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync is fdatasync: the data and the metadata needed to read it
// back (the file's size), not its times.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}
