package server

import (
	"net"
)

// Advertised addresses. A node bound to every interface (0.0.0.0 or ::,
// as in a container) must still tell its peers and edges an address they
// can dial: announcing "0.0.0.0:7071" would make every peer call itself.
// Config.AdvertiseAddr names that IP; by default it is the bind address,
// or, for an unspecified one, the host's private IP — the one memberlist
// itself advertises in that case.

// advertiseIP returns the IP to announce in place of an unspecified bind
// host, "" when every listener binds a specific one, or when the host has
// no address to offer (then the unspecified one is announced, which only a
// node alone can live with: the start-up log says so).
func (c *Config) advertiseIP(addrs func() ([]net.Addr, error)) string {
	if c.AdvertiseAddr != "" {
		return c.AdvertiseAddr
	}
	unspecified, v4 := false, false
	for _, a := range []string{c.HTTPAddr, c.QUICAddr, c.GossipAddr} {
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				unspecified = true
				v4 = v4 || ip.To4() != nil
			}
		}
	}
	if !unspecified {
		return ""
	}
	ifaddrs, err := addrs()
	if err != nil {
		return ""
	}
	// A private address first, as memberlist picks; else any global one.
	// A socket bound to 0.0.0.0 takes IPv4 only: then an IPv4 address.
	var global string
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() || v4 && n.IP.To4() == nil {
			continue
		}
		if n.IP.IsPrivate() {
			return n.IP.String()
		}
		if global == "" {
			global = n.IP.String()
		}
	}
	return global
}

// advertised returns addr (a bound host:port) as peers should dial it:
// with the advertised IP in place of an unspecified host, or of any host
// when --advertise-addr is set.
func (s *Server) advertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || s.advertise == "" {
		return addr
	}
	if ip := net.ParseIP(host); s.cfg.AdvertiseAddr != "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort(s.advertise, port)
	}
	return addr
}
