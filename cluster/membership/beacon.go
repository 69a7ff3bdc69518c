package membership

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
)

// beaconMagic starts every beacon. A beacon shares the gossip UDP port with
// memberlist, so its first byte must be one that no memberlist packet can
// start with. memberlist's packets start with either
//
//   - a messageType (pingMsg=0 … errMsg=13 in memberlist v0.7; compressed,
//     CRC-checked and compound packets are messageTypes too),
//   - hasLabelMsg (244), when a Label (our ClusterName) is set, or
//   - an encryptionVersion byte (0 or 1), when a SecretKey is set.
//
// 0xBB is none of these and is far from the dense low range that new
// message types are added to; the four letters after it make a collision
// with future memberlist bytes, or with stray traffic, vanishingly unlikely.
var beaconMagic = [5]byte{0xBB, 'B', 'R', 'N', 'Y'}

// beaconVersion follows the magic; bump it when the layout changes.
const beaconVersion = 1

// beaconTagSize is the length of the HMAC-SHA256 tag (truncated) that ends
// a beacon when the cluster has a GossipKey.
const beaconTagSize = 16

// beacon is a node's announcement of itself on the LAN:
//
//	magic(5) version(1) cluster(len1+bytes) id(len1+bytes) addr(len1+bytes) [tag(16)]
//
// where addr is the node's gossip host:port and tag is
// HMAC-SHA256(GossipKey, everything before it), present only when the
// sender has a key. Receivers with a key drop beacons without a valid tag:
// a beacon only makes the receiver try to join addr, and that join is
// authenticated by memberlist's encryption anyway, but checking the tag
// keeps a forged beacon from making every node dial an address of the
// forger's choosing.
type beacon struct {
	Cluster string
	ID      string
	Addr    string // host:port
	Tagged  bool   // the beacon carried a tag (checked by verifyBeacon)
	signed  []byte // the bytes the tag covers
	tag     []byte
}

func isBeacon(b []byte) bool {
	return len(b) >= len(beaconMagic) && bytes.Equal(b[:len(beaconMagic)], beaconMagic[:])
}

// encodeBeacon builds a beacon; key may be nil.
func encodeBeacon(cluster, id, addr string, key []byte) ([]byte, error) {
	for _, f := range []string{cluster, id, addr} {
		if len(f) > 255 {
			return nil, fmt.Errorf("membership: beacon field of %d bytes, at most 255", len(f))
		}
	}
	b := make([]byte, 0, 6+3+len(cluster)+len(id)+len(addr)+beaconTagSize)
	b = append(b, beaconMagic[:]...)
	b = append(b, beaconVersion)
	for _, f := range []string{cluster, id, addr} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	if key != nil {
		b = append(b, beaconMAC(key, b)...)
	}
	return b, nil
}

func beaconMAC(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)[:beaconTagSize]
}

// decodeBeacon parses a beacon; it reads only within b.
func decodeBeacon(b []byte) (beacon, error) {
	if !isBeacon(b) {
		return beacon{}, errors.New("membership: beacon lacks its magic prefix")
	}
	rest := b[len(beaconMagic):]
	if len(rest) == 0 || rest[0] != beaconVersion {
		return beacon{}, errors.New("membership: beacon version is not supported")
	}
	rest = rest[1:]
	var f [3]string
	for i := range f {
		if len(rest) == 0 {
			return beacon{}, errors.New("membership: beacon is truncated")
		}
		n := int(rest[0])
		if n > len(rest)-1 {
			return beacon{}, fmt.Errorf("membership: beacon field claims %d bytes, %d remain", n, len(rest)-1)
		}
		f[i] = string(rest[1 : 1+n])
		rest = rest[1+n:]
	}
	bc := beacon{Cluster: f[0], ID: f[1], Addr: f[2], signed: b[:len(b)-len(rest)]}
	switch len(rest) {
	case 0:
	case beaconTagSize:
		bc.Tagged, bc.tag = true, rest
	default:
		return beacon{}, fmt.Errorf("membership: beacon has %d trailing bytes", len(rest))
	}
	if _, _, err := net.SplitHostPort(bc.Addr); err != nil {
		return beacon{}, fmt.Errorf("membership: beacon address %q is not host:port", bc.Addr)
	}
	return bc, nil
}

// verify reports whether b is acceptable to a node holding key (nil: none).
func (b beacon) verify(key []byte) bool {
	if key == nil {
		return !b.Tagged
	}
	return b.Tagged && hmac.Equal(b.tag, beaconMAC(key, b.signed))
}

// broadcastAddrs returns where beacons go: the directed broadcast address
// of the IPv4 subnet that holds bind, or for an unspecified bind, of every
// up, broadcast-capable, non-loopback interface. IPv6 has no broadcast, so
// an IPv6 bind gets none.
func broadcastAddrs(bind net.IP) ([]net.IP, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("membership: list interfaces: %w", err)
	}
	var out []net.IP
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagBroadcast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip4 := n.IP.To4()
			if ip4 == nil || len(n.Mask) != net.IPv4len {
				continue
			}
			if !bind.IsUnspecified() && !ip4.Equal(bind) {
				continue
			}
			bc := make(net.IP, net.IPv4len)
			for i := range bc {
				bc[i] = ip4[i] | ^n.Mask[i]
			}
			out = append(out, bc)
		}
	}
	return out, nil
}
