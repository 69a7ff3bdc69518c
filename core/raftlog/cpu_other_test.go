//go:build !unix

package raftlog

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
