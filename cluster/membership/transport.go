package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's network: one TCP listener and one UDP socket on
// the gossip port, like memberlist's NetTransport, except that UDP packets
// that start with beaconMagic are beacons and go to onBeacon instead of
// memberlist. When beaconing on a specific address it also listens on that
// subnet's broadcast address, because Linux delivers a broadcast only to
// sockets bound to the wildcard or to the broadcast address itself, never
// to one bound to a unicast address.
type transport struct {
	tcp   *net.TCPListener
	udp   *net.UDPConn
	bcast *net.UDPConn // nil unless beaconing on a specific address
	log   *slog.Logger

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	onBeacon func(b beacon, from net.Addr)

	shutdown atomic.Bool
	done     chan struct{}
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// udpBufSize fits any UDP datagram, as in memberlist's NetTransport.
const udpBufSize = 65536

// newTransport binds ip:port (port 0: a free one) on TCP and UDP. If bcast
// is non-nil it also binds bcast:port on UDP for beacons.
func newTransport(ip net.IP, port int, bcast net.IP, log *slog.Logger, onBeacon func(beacon, net.Addr)) (*transport, error) {
	t := &transport{
		log:      log,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
		onBeacon: onBeacon,
		done:     make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			t.closeListeners()
		}
	}()
	var err error
	// A free TCP port may be taken on UDP; retry a few times as memberlist
	// itself does when asked for port 0.
	for try := 0; ; try++ {
		t.tcp, err = net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, fmt.Errorf("membership: listen tcp %s: %w", net.JoinHostPort(ip.String(), fmt.Sprint(port)), err)
		}
		p := t.tcp.Addr().(*net.TCPAddr).Port
		t.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: p})
		if err == nil {
			break
		}
		_ = t.tcp.Close()
		if port != 0 || try == 10 {
			return nil, fmt.Errorf("membership: listen udp %s: %w", net.JoinHostPort(ip.String(), fmt.Sprint(p)), err)
		}
	}
	setReadBuffer(t.udp)
	if bcast != nil || ip.IsUnspecified() {
		if err := setBroadcast(t.udp); err != nil {
			return nil, fmt.Errorf("membership: enable broadcast on %s: %w", t.udp.LocalAddr(), err)
		}
	}
	if bcast != nil {
		t.bcast, err = net.ListenUDP("udp4", &net.UDPAddr{IP: bcast, Port: t.port()})
		if err != nil {
			return nil, fmt.Errorf("membership: listen for beacons on %s:%d: %w", bcast, t.port(), err)
		}
	}
	t.wg.Add(2)
	go t.acceptLoop()
	go t.readLoop(t.udp, true)
	if t.bcast != nil {
		t.wg.Add(1)
		go t.readLoop(t.bcast, false)
	}
	ok = true
	return t, nil
}

// setReadBuffer asks for a 2 MiB receive buffer, halving until the kernel
// agrees, so that bursts of gossip are not dropped.
func setReadBuffer(c *net.UDPConn) {
	for size := 2 << 20; size > 0; size /= 2 {
		if c.SetReadBuffer(size) == nil {
			return
		}
	}
}

func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr implements memberlist.Transport.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if port == 0 {
		port = t.port()
	}
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("membership: advertise address %q is not an IP", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	bound := t.tcp.Addr().(*net.TCPAddr).IP
	if !bound.IsUnspecified() {
		return bound, port, nil
	}
	a, err := privateIPv4()
	if err != nil {
		return nil, 0, err
	}
	return a, port, nil
}

// privateIPv4 is the first private IPv4 address of an up interface, the
// address a node bound to 0.0.0.0 advertises (as memberlist does).
func privateIPv4() (net.IP, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("membership: list interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
				return n.IP.To4(), nil
			}
		}
	}
	return nil, errors.New("membership: bound to 0.0.0.0 but no private IPv4 address found; set AdvertiseAddr")
}

// WriteTo implements memberlist.Transport.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

// PacketCh implements memberlist.Transport.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", addr)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// StreamCh implements memberlist.Transport.
func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport. memberlist calls it before it
// stops reading PacketCh and StreamCh, but done also unblocks the loops in
// case a packet is in flight then.
func (t *transport) Shutdown() error {
	if t.shutdown.Swap(true) {
		return nil
	}
	close(t.done)
	t.closeListeners()
	t.wg.Wait()
	return nil
}

func (t *transport) closeListeners() {
	if t.tcp != nil {
		_ = t.tcp.Close()
	}
	if t.udp != nil {
		_ = t.udp.Close()
	}
	if t.bcast != nil {
		_ = t.bcast.Close()
	}
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	delay := time.Duration(0)
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			// Back off on errors such as EMFILE instead of spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.done:
				return
			}
			continue
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			_ = c.Close()
			return
		}
	}
}

// readLoop reads datagrams from c. Beacons go to onBeacon; anything else
// goes to memberlist if gossip is set, and is dropped otherwise (the
// broadcast socket carries nothing but beacons).
func (t *transport) readLoop(c *net.UDPConn, gossip bool) {
	defer t.wg.Done()
	for {
		buf := make([]byte, udpBufSize)
		n, from, err := c.ReadFrom(buf)
		ts := time.Now()
		if err != nil {
			if t.shutdown.Load() {
				return
			}
			t.log.Warn("udp read failed", "err", err)
			continue
		}
		if n < 1 {
			continue
		}
		if isBeacon(buf[:n]) {
			b, err := decodeBeacon(buf[:n])
			if err != nil {
				t.log.Debug("bad beacon", "from", from.String(), "err", err)
				continue
			}
			t.onBeacon(b, from)
			continue
		}
		if !gossip {
			continue
		}
		select {
		case t.packetCh <- &memberlist.Packet{Buf: buf[:n], From: from, Timestamp: ts}:
		case <-t.done:
			return
		}
	}
}
