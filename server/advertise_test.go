package server

import (
	"net"
	"testing"
)

// TestAdvertiseIP: a listener bound to every interface is announced at a
// private address of the host (an IPv4 one for 0.0.0.0, whose socket takes
// no IPv6), else a global one; --advertise-addr overrides; specific binds
// are announced as bound.
func TestAdvertiseIP(t *testing.T) {
	ifaddrs := func(cidrs ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, c := range cidrs {
				ip, n, err := net.ParseCIDR(c)
				if err != nil {
					t.Fatal(err)
				}
				n.IP = ip
				out = append(out, n)
			}
			return out, nil
		}
	}
	host := ifaddrs("127.0.0.1/8", "fd00::2/64", "198.51.100.7/24", "10.1.2.3/16", "fe80::1/64")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"every IPv4 interface: the private IPv4", Config{QUICAddr: "0.0.0.0:7071"}, "10.1.2.3"},
		{"every interface: the first private", Config{QUICAddr: "[::]:7071"}, "fd00::2"},
		{"explicit", Config{QUICAddr: "0.0.0.0:7071", AdvertiseAddr: "203.0.113.9"}, "203.0.113.9"},
		{"specific binds", Config{HTTPAddr: "127.0.0.1:7070", QUICAddr: "127.0.0.1:7071", GossipAddr: "127.0.0.1:7946"}, ""},
	} {
		if got := tc.cfg.advertiseIP(host); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := (&Config{QUICAddr: "0.0.0.0:7071"}).advertiseIP(ifaddrs("127.0.0.1/8", "198.51.100.7/24")); got != "198.51.100.7" {
		t.Errorf("no private IPv4: %q, want the global one", got)
	}
	s := &Server{cfg: Config{}, advertise: "10.1.2.3"}
	for in, want := range map[string]string{"0.0.0.0:7071": "10.1.2.3:7071", "[::]:7071": "10.1.2.3:7071", "127.0.0.5:7071": "127.0.0.5:7071"} {
		if got := s.advertised(in); got != want {
			t.Errorf("advertised(%s) = %s, want %s", in, got, want)
		}
	}
}
