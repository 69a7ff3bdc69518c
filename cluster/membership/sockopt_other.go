//go:build !unix

package membership

import (
	"errors"
	"net"
)

// setBroadcast is only implemented on Unix; elsewhere set Broadcast to false.
func setBroadcast(*net.UDPConn) error {
	return errors.New("LAN beacons are supported on Unix only; set Broadcast to false")
}
