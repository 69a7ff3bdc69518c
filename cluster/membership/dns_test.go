package membership

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a minimal authoritative DNS server on 127.0.0.1 for tests:
// it answers A, AAAA and SRV questions from its tables and NXDOMAIN for
// names it does not know.
type dnsServer struct {
	conn net.PacketConn
	mu   sync.Mutex
	a    map[string][]netip.Addr // by FQDN, lower case
	srv  map[string][]dnsmessage.SRVResource
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: c, a: map[string][]netip.Addr{}, srv: map[string][]dnsmessage.SRVResource{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return s
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

func (s *dnsServer) addA(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range ips {
		s.a[fqdn(name)] = append(s.a[fqdn(name)], netip.MustParseAddr(ip))
	}
}

func (s *dnsServer) addSRV(name, target string, port uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv[fqdn(name)] = append(s.srv[fqdn(name)], dnsmessage.SRVResource{
		Priority: 10, Weight: 10, Port: port, Target: dnsmessage.MustNewName(fqdn(target)),
	})
}

// resolver is a Go resolver that sends every query to s.
func (s *dnsServer) resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		if resp, err := s.answer(h, q); err == nil {
			_, _ = s.conn.WriteTo(resp, from)
		}
	}
}

func (s *dnsServer) answer(h dnsmessage.Header, q dnsmessage.Question) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(q.Name.String())
	_, knownA := s.a[name]
	_, knownSRV := s.srv[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !knownA && !knownSRV {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
	switch q.Type {
	case dnsmessage.TypeA:
		for _, ip := range s.a[name] {
			if ip.Is4() {
				if err := b.AResource(rr, dnsmessage.AResource{A: ip.As4()}); err != nil {
					return nil, err
				}
			}
		}
	case dnsmessage.TypeAAAA:
		for _, ip := range s.a[name] {
			if ip.Is6() {
				if err := b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: ip.As16()}); err != nil {
					return nil, err
				}
			}
		}
	case dnsmessage.TypeSRV:
		for _, r := range s.srv[name] {
			if err := b.SRVResource(rr, r); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

func TestLookupDNS(t *testing.T) {
	dns := startDNS(t)
	dns.addSRV("cluster.brainy.test", "n1.brainy.test", 7001)
	dns.addSRV("cluster.brainy.test", "n2.brainy.test", 7002)
	dns.addA("n1.brainy.test", "127.0.0.11")
	dns.addA("n2.brainy.test", "127.0.0.12", "::1")
	dns.addA("plain.brainy.test", "127.0.0.21", "127.0.0.22")
	r := dns.resolver()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := lookupDNS(ctx, r, "cluster.brainy.test", 7946)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"127.0.0.11:7001", "127.0.0.12:7002", "[::1]:7002"}; !slices.Equal(got, want) {
		t.Fatalf("SRV: got %v, want %v", got, want)
	}

	got, err = lookupDNS(ctx, r, "plain.brainy.test", 7946)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"127.0.0.21:7946", "127.0.0.22:7946"}; !slices.Equal(got, want) {
		t.Fatalf("A: got %v, want %v", got, want)
	}

	if _, err := lookupDNS(ctx, r, "missing.brainy.test", 7946); err == nil || !strings.Contains(err.Error(), "missing.brainy.test") {
		t.Fatalf("missing name: error %v", err)
	}
}

// TestDNSDiscoveryJoinsCluster runs three members whose only way to find
// each other is a dns: source: SRV records for one name, and A records plus
// an explicit port for another.
func TestDNSDiscoveryJoinsCluster(t *testing.T) {
	dns := startDNS(t)
	ms := make([]*Membership, 3)
	// Members 0 and 1 find each other by SRV; member 2 finds member 0
	// through an A record with the port in the source.
	for i := range 2 {
		ms[i] = startMember(t, Config{Meta: testMeta(i), Discover: []string{"dns:srv.brainy.test"}, Resolver: dns.resolver()})
	}
	for i := range 2 {
		_, port, _ := net.SplitHostPort(ms[i].LocalNode().Addr)
		p, _ := parsePort(port)
		target := fmt.Sprintf("m%d.brainy.test", i)
		dns.addSRV("srv.brainy.test", target, uint16(p))
		dns.addA(target, "127.0.0.1")
	}
	dns.addA("a.brainy.test", "127.0.0.1")
	_, port0, _ := net.SplitHostPort(ms[0].LocalNode().Addr)
	ms[2] = startMember(t, Config{Meta: testMeta(2), Discover: []string{"dns:a.brainy.test:" + port0}, Resolver: dns.resolver()})
	for _, m := range ms {
		waitFor(t, 20*time.Second, m.cfg.Meta.ID+" to see 3 alive members", func() bool { return len(aliveIDs(m)) == 3 })
	}
}

func TestK8sDiscovery(t *testing.T) {
	dns := startDNS(t)
	dns.addA("db.prod.svc.cluster.local", "127.0.0.31", "127.0.0.32")
	dns.addA("brainy.other.svc.cluster.local", "127.0.0.41")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := lookupK8s(ctx, dns.resolver(), 7946); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Fatalf("outside Kubernetes: error %v", err)
	}

	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("POD_NAMESPACE", "prod")
	t.Setenv("BRAINY_K8S_SERVICE", "db")
	got, err := lookupK8s(ctx, dns.resolver(), 7946)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"127.0.0.31:7946", "127.0.0.32:7946"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	t.Setenv("POD_NAMESPACE", "other")
	t.Setenv("BRAINY_K8S_SERVICE", "")
	got, err = lookupK8s(ctx, dns.resolver(), 7000)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.41:7000"}; !slices.Equal(got, want) {
		t.Fatalf("default service name: got %v, want %v", got, want)
	}

	// In Kubernetes with nothing else configured, k8s discovery is on.
	c := Config{Meta: Meta{ID: "n"}}
	c.EnsureDefaults()
	if !slices.Equal(c.Discover, []string{"k8s"}) {
		t.Fatalf("Discover default in Kubernetes = %v, want [k8s]", c.Discover)
	}
}
