//go:build unix

package membership

import (
	"net"
	"syscall"
)

// setBroadcast sets SO_BROADCAST, without which the kernel refuses to send
// to a broadcast address.
func setBroadcast(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
	}); err != nil {
		return err
	}
	return serr
}
