//go:build !linux

package edge

// totalRAM returns 0 where reading the machine's RAM is not implemented:
// DefaultCacheBytes then takes its fallback.
func totalRAM() int64 { return 0 }
