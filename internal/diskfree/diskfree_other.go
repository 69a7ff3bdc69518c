//go:build !unix

// Package diskfree reports the free space of a file system.
package diskfree

import "errors"

// Bytes is not implemented on this platform.
func Bytes(string) (int64, error) {
	return 0, errors.New("the free space of a file system is unknown on this platform")
}
