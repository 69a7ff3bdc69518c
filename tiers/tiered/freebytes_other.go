//go:build !unix

package tiered

import "errors"

// freeBytes is not implemented here; set Config.FreeBytes instead.
func freeBytes(string) (int64, error) {
	return 0, errors.New("tiered: free space of HotDir is unknown on this platform; set Config.FreeBytes")
}
