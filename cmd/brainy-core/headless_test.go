package main

import (
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/soullabs/brainy/internal/coretest"
)

// headlessService answers DNS as Kubernetes does for a StatefulSet's
// headless Service: SRV records for each named port
// (_gossip._tcp.SERVICE) naming every pod by its stable host name, A
// records for each pod's name and, for the Service's own name, every pod.
type headlessService struct {
	zone string            // brainy.default.svc.cluster.local.
	pods map[string]string // pod host name (in zone) → IPv4
	srvs *atomic.Int64     // SRV questions answered
}

func (h headlessService) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	known := false
	for _, q := range r.Question {
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
		}
		switch {
		case q.Name == "_gossip._tcp."+h.zone:
			known = true
			if q.Qtype == dns.TypeSRV {
				h.srvs.Add(1)
				for pod := range h.pods {
					m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Weight: 100, Port: 7946, Target: pod})
				}
			}
		case q.Name == h.zone:
			known = true
			if q.Qtype == dns.TypeA {
				for _, ip := range h.pods {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(ip)})
				}
			}
		case h.pods[q.Name] != "":
			known = true
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(h.pods[q.Name])})
			}
		}
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// TestDiscoverHeadlessService (issue 16, done-when 2): three brainy-core
// processes given only --discover dns:_gossip._tcp.<service> find each
// other through a DNS server answering as a Kubernetes headless Service
// does (SRV and A records, on loopback, asked through --discover-dns) and
// form one cluster. A reader, which the SRV records do not name (it has
// its own StatefulSet), joins through them as the reader StatefulSet
// has it, and serves stale reads from its replicas. Addresses
// 127.0.0.235-238.
func TestDiscoverHeadlessService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cores")
	}
	zone := "brainy.default.svc.cluster.local."
	svc := headlessService{zone: zone, pods: map[string]string{}, srvs: new(atomic.Int64)}
	for i := range 3 {
		svc.pods[fmt.Sprintf("brainy-%d.%s", i, zone)] = fmt.Sprintf("127.0.0.%d", 235+i)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &dns.Server{PacketConn: pc, Handler: svc}
	go server.ActivateAndServe()
	t.Cleanup(func() { server.Shutdown() })

	dir := t.TempDir()
	secret := coretest.NewSecret(t)
	var nodes []*coretest.Process
	for i := range 3 {
		nodes = append(nodes, coretest.StartCore(t, bin, nil, "--bind", fmt.Sprintf("127.0.0.%d", 235+i),
			"--storage", filepath.Join(dir, fmt.Sprint(i)), "--node-id", fmt.Sprintf("brainy-%d", i), "--cluster-secret", secret,
			"--partitions", "8", "--discover", "dns:_gossip._tcp."+zone[:len(zone)-1], "--discover-dns", pc.LocalAddr().String()))
	}
	waitFor(t, 60*time.Second, func() (bool, string) {
		for _, n := range nodes {
			if m := metrics(t, n); m.Nodes.Total != 3 {
				return false, fmt.Sprintf("%s sees %d nodes", n.Addr, m.Nodes.Total)
			}
		}
		return true, ""
	})
	if svc.srvs.Load() == 0 {
		t.Fatal("the nodes formed a cluster without asking the Service's SRV records")
	}
	// One cluster: a write on one node reads on the others.
	if code, body := do(t, "PUT", nodes[0].URL("/v1/items/found"), "application/json", `{"data":1}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	for _, n := range nodes[1:] {
		if code, body := do(t, "GET", n.URL("/v1/items/found"), "", ""); code != 200 {
			t.Fatalf("GET on %s: %d %s", n.Addr, code, body)
		}
	}

	reader := coretest.StartCore(t, bin, nil, "--bind", "127.0.0.238", "--role", "reader",
		"--storage", filepath.Join(dir, "reader"), "--node-id", "brainy-reader-0", "--cluster-secret", secret,
		"--partitions", "8", "--discover", "dns:_gossip._tcp."+zone[:len(zone)-1], "--discover-dns", pc.LocalAddr().String())
	waitFor(t, 60*time.Second, func() (bool, string) {
		for _, m := range metrics(t, nodes[0]).Nodes.List {
			if m.ID == "brainy-reader-0" {
				return m.Role == "reader", "the reader is listed as " + m.Role
			}
		}
		return false, "the cores do not list the reader"
	})
	waitFor(t, 60*time.Second, func() (bool, string) {
		code, body := do(t, "GET", reader.URL("/v1/items/found?consistency=stale"), "", "")
		return code == 200, fmt.Sprintf("stale GET on the reader: %d %s", code, body)
	})
}
