package claim

import (
	"os"
	"strings"
)

// procIdentity names the space in which our pids mean something: the kernel's
// boot id and our pid namespace. Two processes with the same identity can test
// each other's pids with kill(pid, 0). Empty if unknown, which disables
// taking over records of dead processes early.
func procIdentity() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}
