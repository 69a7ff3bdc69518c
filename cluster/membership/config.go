package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultBindPort is the gossip port (TCP and UDP) when Config.BindPort is 0.
const DefaultBindPort = 7946

// AnyPort as Config.BindPort binds a free port chosen by the kernel, for
// tests that run many members on one address. Beacons and port-less
// discovery (DNS A records, EC2, Kubernetes) assume every member uses the
// same port, so they only find members bound with AnyPort by luck.
const AnyPort = -1

// DefaultClusterName is Config.ClusterName when it is empty.
const DefaultClusterName = "brainy"

// Config configures a Membership. Only Meta.ID is required; every other
// zero field takes the default given in its comment.
type Config struct {
	// Meta describes this node to the others. Meta.ID is required and is the
	// memberlist node name: it must be unique in the cluster.
	Meta Meta
	// ClusterName keeps clusters that share a network apart: it labels every
	// gossip packet (memberlist's Label, so a node drops gossip from other
	// clusters) and every beacon. Default "brainy". At most 255 bytes.
	ClusterName string

	// BindAddr is the IP address the gossip listeners bind. Default
	// 127.0.0.1, so a node joins nothing beyond its host unless told to; the
	// caller passes --bind. "0.0.0.0" binds every IPv4 address.
	BindAddr string
	// BindPort is the gossip port, TCP and UDP. Default DefaultBindPort
	// (7946); AnyPort picks a free one.
	BindPort int
	// AdvertiseAddr is the IP others reach this node at, when it differs
	// from BindAddr (NAT, or BindAddr 0.0.0.0). Default: BindAddr, or for
	// 0.0.0.0 the first private IPv4 address of an up interface.
	AdvertiseAddr string
	// AdvertisePort is the port others reach this node at. Default: the
	// bound port.
	AdvertisePort int

	// Peers are host:port gossip addresses of any existing members.
	Peers []string
	// Discover lists further sources of peers, each re-run with Peers:
	//
	//	dns:NAME[:PORT]  SRV records of NAME first, else its A/AAAA records
	//	                 with PORT (default: this node's port)
	//	ec2:KEY=VALUE    private IPs of running EC2 instances tagged KEY=VALUE
	//	k8s              the headless service BRAINY_K8S_SERVICE (default
	//	                 "brainy") in this pod's namespace
	//
	// Default: ["k8s"] when running in Kubernetes (KUBERNETES_SERVICE_HOST
	// is set) and Peers is empty, else none.
	Discover []string
	// Broadcast turns the LAN beacon on or off. Default: on only when
	// BindAddr is not a loopback address; it is never sent on loopback.
	Broadcast *bool
	// GossipKey encrypts and authenticates gossip (AES-GCM) and
	// authenticates beacons (HMAC-SHA256). 16, 24 or 32 bytes; nil sends
	// gossip in the clear.
	GossipKey []byte

	// RejoinInterval is how often discovery is re-run while this node knows
	// no other member. Default 1s.
	RejoinInterval time.Duration
	// HealInterval is how often discovery is re-run once in a cluster, so
	// that partitioned halves, or a restarted node that has no peers of its
	// own to ask, find each other again. Default 5s.
	HealInterval time.Duration
	// BeaconInterval is how often a beacon is sent while alone. Default 1s.
	BeaconInterval time.Duration
	// BeaconHealInterval is how often a beacon is sent once in a cluster of
	// two or more, to merge clusters that formed apart. Default 10s.
	BeaconHealInterval time.Duration

	// The failure detector (memberlist's SWIM). The defaults detect a
	// crashed node on a LAN in well under two seconds: a node is probed
	// every ProbeInterval, round robin; a probe unanswered within
	// ProbeTimeout (direct, then through IndirectChecks others) makes it
	// suspect, and it is declared dead after about
	// SuspicionMult*ProbeInterval unless it refutes. Shorter timings mean
	// faster detection and more false suspicion on a loaded host.

	// ProbeInterval is the time between failure probes. Default 200ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack; it should exceed
	// the 99th percentile round trip. Default 100ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect has to refute before it is
	// declared dead (memberlist's SuspicionMult). Default 2.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout at this many
	// times its minimum, used while few others confirm the suspicion.
	// Default 4.
	SuspicionMaxTimeoutMult int
	// IndirectChecks is how many other members probe on this node's behalf
	// after a direct probe fails. Default 3.
	IndirectChecks int
	// GossipInterval is the time between gossip rounds, which spread
	// suspicion, death and joins. Default 50ms.
	GossipInterval time.Duration
	// GossipNodes is how many members each gossip round goes to. Default 3.
	GossipNodes int
	// PushPullInterval is the time between full state syncs with a random
	// member (TCP). Default 15s.
	PushPullInterval time.Duration
	// DeadRetention is how long a dead or left member is still listed (and
	// gossiped about), and after which its ID may be reused at a new
	// address. Default 30s.
	DeadRetention time.Duration
	// TCPTimeout bounds a stream connection (joins, push/pull). Default 2s.
	TCPTimeout time.Duration

	// Resolver answers dns: and k8s lookups. Default net.DefaultResolver.
	Resolver Resolver
	// Logger receives membership events and memberlist's log. Nil discards.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1"
	}
	if c.BindPort == 0 {
		c.BindPort = DefaultBindPort
	}
	if len(c.Discover) == 0 && len(c.Peers) == 0 && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		c.Discover = []string{"k8s"}
	}
	if c.Broadcast == nil {
		ip := net.ParseIP(c.BindAddr)
		on := ip != nil && !ip.IsLoopback()
		c.Broadcast = &on
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setInt := func(i *int, v int) {
		if *i == 0 {
			*i = v
		}
	}
	setDur(&c.RejoinInterval, time.Second)
	setDur(&c.HealInterval, 5*time.Second)
	setDur(&c.BeaconInterval, time.Second)
	setDur(&c.BeaconHealInterval, 10*time.Second)
	setDur(&c.ProbeInterval, 200*time.Millisecond)
	setDur(&c.ProbeTimeout, 100*time.Millisecond)
	setInt(&c.SuspicionMult, 2)
	setInt(&c.SuspicionMaxTimeoutMult, 4)
	setInt(&c.IndirectChecks, 3)
	setDur(&c.GossipInterval, 50*time.Millisecond)
	setInt(&c.GossipNodes, 3)
	setDur(&c.PushPullInterval, 15*time.Second)
	setDur(&c.DeadRetention, 30*time.Second)
	setDur(&c.TCPTimeout, 2*time.Second)
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Meta.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.ClusterName) > 255 {
		errs = append(errs, fmt.Errorf("ClusterName is %d bytes, at most 255", len(c.ClusterName)))
	}
	if ip := net.ParseIP(c.BindAddr); ip == nil {
		errs = append(errs, fmt.Errorf("BindAddr (%q) must be an IP address", c.BindAddr))
	}
	if c.BindPort != AnyPort && (c.BindPort < 0 || c.BindPort > 65535) {
		errs = append(errs, fmt.Errorf("BindPort (%d) must be between 1 and 65535, or AnyPort", c.BindPort))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("AdvertiseAddr (%q) must be an IP address", c.AdvertiseAddr))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("AdvertisePort (%d) must be between 0 and 65535", c.AdvertisePort))
	}
	for _, p := range c.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("peer %q must be host:port", p))
		}
	}
	for _, d := range c.Discover {
		if _, err := parseSource(d); err != nil {
			errs = append(errs, err)
		}
	}
	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		errs = append(errs, fmt.Errorf("GossipKey is %d bytes, must be 16, 24 or 32", len(c.GossipKey)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RejoinInterval", c.RejoinInterval}, {"HealInterval", c.HealInterval},
		{"BeaconInterval", c.BeaconInterval}, {"BeaconHealInterval", c.BeaconHealInterval},
		{"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout},
		{"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval},
		{"DeadRetention", c.DeadRetention}, {"TCPTimeout", c.TCPTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s (%v) must be > 0", d.name, d.v))
		}
	}
	if c.ProbeTimeout > c.ProbeInterval && c.ProbeInterval > 0 {
		errs = append(errs, fmt.Errorf("ProbeTimeout (%v) must not exceed ProbeInterval (%v)", c.ProbeTimeout, c.ProbeInterval))
	}
	for _, i := range []struct {
		name string
		v    int
	}{
		{"SuspicionMult", c.SuspicionMult}, {"SuspicionMaxTimeoutMult", c.SuspicionMaxTimeoutMult},
		{"IndirectChecks", c.IndirectChecks}, {"GossipNodes", c.GossipNodes},
	} {
		if i.v < 0 {
			errs = append(errs, fmt.Errorf("%s (%d) must be >= 1", i.name, i.v))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("membership: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// sourceKind is the kind of a Discover entry.
type sourceKind int

const (
	sourceDNS sourceKind = iota
	sourceEC2
	sourceK8s
)

// source is a parsed Discover entry.
type source struct {
	kind     sourceKind
	name     string // dns: the name; ec2: the tag key
	port     int    // dns: explicit port, 0 for the node's own
	tagValue string // ec2
}

func parseSource(s string) (source, error) {
	switch {
	case s == "k8s":
		return source{kind: sourceK8s}, nil
	case strings.HasPrefix(s, "dns:"):
		name := strings.TrimPrefix(s, "dns:")
		src := source{kind: sourceDNS, name: name}
		if h, p, err := net.SplitHostPort(name); err == nil {
			port, perr := parsePort(p)
			if perr != nil {
				return source{}, fmt.Errorf("discover %q: %w", s, perr)
			}
			src.name, src.port = h, port
		}
		if src.name == "" {
			return source{}, fmt.Errorf("discover %q: dns: needs a name", s)
		}
		return src, nil
	case strings.HasPrefix(s, "ec2:"):
		k, v, ok := strings.Cut(strings.TrimPrefix(s, "ec2:"), "=")
		if !ok || k == "" || v == "" {
			return source{}, fmt.Errorf("discover %q: ec2: needs KEY=VALUE", s)
		}
		return source{kind: sourceEC2, name: k, tagValue: v}, nil
	}
	return source{}, fmt.Errorf("discover %q: must be dns:NAME, ec2:KEY=VALUE or k8s", s)
}

func parsePort(p string) (int, error) {
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("port %q must be between 1 and 65535", p)
	}
	return port, nil
}
