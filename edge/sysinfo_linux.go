package edge

import "syscall"

// totalRAM returns the machine's RAM in bytes, or 0 when it cannot be read.
func totalRAM() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
