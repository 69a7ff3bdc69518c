package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/federation"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/k8snode"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/tiers/tiered"
	"github.com/soullabs/brainy/tuning"
)

// Defaults of the Config fields that have no package of their own to
// take them from.
const (
	DefaultBind            = "127.0.0.1"
	DefaultHTTPPort        = 7070
	DefaultQUICPort        = 7071
	DefaultStorage         = "./brainy-data"
	DefaultShutdownTimeout = 10 * time.Second
	// BroadcastAuto turns the LAN beacon on unless gossip binds loopback.
	BroadcastAuto = "auto"
	// RoleVoter and RoleReader are the values of Config.Role.
	RoleVoter  = "voter"
	RoleReader = "reader"
	// ReaderCacheBytes is a reader's record cache: reads are its work,
	// and it holds every partition (a voter's is core's default, 64 MiB).
	ReaderCacheBytes = 256 << 20
	// ZoneFromNode begins a Zone naming a Kubernetes node ("node:NAME"),
	// whose zone label is the zone.
	ZoneFromNode = "node:"
)

// Config configures a core node. Each field names the brainy-core flag
// that sets it (flags, BRAINY_* variables and the --config file all land
// here); zero fields take the defaults given, so a zero Config is a
// working single node on loopback with its data in ./brainy-data.
type Config struct {
	// Bind is the address every listener binds to (--bind). Default
	// "127.0.0.1": loopback, so nothing is exposed by accident.
	Bind string
	// HTTPAddr, QUICAddr and GossipAddr are the listeners' host:port
	// (--http-addr, --quic-addr, --gossip-addr). Defaults Bind:7070,
	// Bind:7071 and Bind:7946. Port 0 picks a free port (the gossip port
	// then cannot be found by broadcast; give peers instead).
	HTTPAddr, QUICAddr, GossipAddr string

	// NodeID names the node in the cluster (--node-id). Default: the id
	// stored with the data, or a new random one.
	NodeID string
	// Peers are gossip addresses (host:port) of running nodes to join
	// (--peers). Discover lists further sources: dns:NAME[:PORT],
	// ec2:TAG=VALUE, k8s (--discover; k8s is automatic in Kubernetes).
	Peers, Discover []string
	// AdvertiseAddr is the IP peers and edges reach this node at
	// (--advertise-addr). Default: each listener's own, or for one bound
	// to every interface (0.0.0.0, ::), the host's private IP.
	AdvertiseAddr string
	// DiscoverDNS is the DNS server (host:port) the dns: and k8s sources
	// ask, instead of the system's resolver (--discover-dns): Consul's DNS
	// interface, for example, or a cluster DNS the host does not use.
	DiscoverDNS string
	// Broadcast turns LAN broadcast discovery on the gossip port on or off:
	// "true", "false" or BroadcastAuto, which is on unless gossip binds
	// loopback (--broadcast). Default BroadcastAuto.
	Broadcast string
	// GossipKey, base64 of 16, 24 or 32 bytes, encrypts and authenticates
	// gossip (--gossip-key). Empty: a key derived from the cluster secret,
	// the per-host secret or the CA key in TLSDir; with none of them (explicit
	// TLS files), gossip off loopback is refused.
	GossipKey string
	// ClusterSecret (16+ bytes) is what the cluster CA is derived from, so
	// that nodes and edges trust each other without copying files
	// (--cluster-secret). Empty: the CA in TLSDir (one per node, to copy),
	// or on loopback this user's per-host secret (daemon.HostSecret).
	ClusterSecret string
	// ClusterName keeps clusters sharing a network apart (--cluster-name).
	// Default membership.DefaultClusterName.
	ClusterName string
	// Zone is the node's failure domain; replicas spread over zones
	// (--zone). "node:NAME" (ZoneFromNode) means the zone label of
	// Kubernetes node NAME, topology.kubernetes.io/zone (else
	// failure-domain.beta.kubernetes.io/zone): New reads it once, before
	// gossip announces the zone, from the API server with the pod's
	// service account (which needs get on nodes), and fails if it cannot.
	// A pod gives node:$(NODE_NAME), NODE_NAME from spec.nodeName.
	// Region names the node's region (--region): nodes of
	// different regions never form one cluster (the region joins the gossip
	// label), and in a federation it is the origin of this region's writes.
	Zone, Region string
	// Federation joins the cluster to a federation of that name
	// (--federation): other regions' clusters, found through
	// FederationPeers and Discover, replicate with this one (package
	// federation). Without Region the node is placed by latency
	// (RegionRTT, region.go). Empty: one region alone.
	Federation string
	// RegionRTT is, for a federated node started without Region, the
	// round trip within which another region's cores count as its own
	// region (--region-rtt): it joins the nearest region within it, or
	// makes a region of its own, "auto-" and its id. Default
	// DefaultRegionRTT (5 ms).
	RegionRTT time.Duration
	// FederationAddr is the federation gossip's listen host:port, TCP and
	// UDP (--federation-addr). Default Bind:7947.
	FederationAddr string
	// FederationQUICAddr is the QUIC host:port other regions reach this
	// node at, when it differs from QUICAddr: a NAT or a relay in between
	// (--federation-quic-addr). Default: QUICAddr as bound.
	FederationQUICAddr string
	// FederationPeers are federation gossip addresses (host[:port], port
	// 7947 when omitted) of cores of any region (--federation-peers).
	FederationPeers []string
	// SyncFrom makes this cluster ("green") a one-way follower of another
	// ("blue"): the QUIC host:port of any core of it (--sync-from). Green
	// copies every blue partition, then streams its changes, merged as a
	// federation merges (versions kept). Green needs blue's ClusterSecret
	// (or CA). Every core of green should have it; removing it (a restart)
	// makes green independent. Empty: no sync.
	SyncFrom string
	// SyncCopyRate bounds the bytes of records per second each green node
	// copies from blue during the initial copy (--sync-copy-rate). Default
	// federation.DefaultSyncCopyRate (32 MiB/s).
	SyncCopyRate int
	// VectorIndex tunes the index finds by vector use: its memory
	// (--vector-index-bytes; negative: no index, those finds scan) and its
	// HNSW settings (--vector-m, --vector-ef-construction, --vector-ef).
	// Zero fields take core's defaults.
	VectorIndex core.VectorIndexConfig
	// FindTimeout is a find's time budget (--find-timeout): partitions
	// that have not answered by then are named in the answer's missing.
	// Default cluster.DefaultFindTimeout (5 s).
	FindTimeout time.Duration
	// MaxClockSkew is how far ahead of this node's clock another region's
	// timestamps may be before their batches are refused
	// (--max-clock-skew). Default core.DefaultMaxClockSkew (500 ms).
	MaxClockSkew time.Duration
	// RegionDeadAfter is how long deletes' tombstones are kept in a
	// federation; a region away longer must be resynced from empty storage
	// (--region-dead-after). Default 24 h (federation.Config).
	RegionDeadAfter time.Duration
	// Profile is the node's tuning profile (--profile): auto (default),
	// balanced, read-heavy or write-heavy; package tuning has each one's
	// settings. Auto moves between the other three as the node's mix of
	// reads and writes changes. Hot reads (read-heavy) stay off in a
	// federated or following cluster.
	Profile string
	// Role is RoleVoter or RoleReader (--role; "writer" is taken for
	// voter). A reader holds a non-voting replica (a raft learner) of
	// every partition: it never counts for quorum and never leads, serves
	// consistency=stale reads from its own replicas, forwards the rest,
	// and keeps a larger record cache (ReaderCacheBytes). Default
	// RoleVoter.
	Role string
	// ReplicationFactor is replicas per partition, fewer while the cluster
	// has fewer nodes (--replication-factor). Default
	// cluster.DefaultReplicationFactor (3); 1 to cluster.MaxReplicationFactor.
	ReplicationFactor int
	// DeadAfter is how long a node may be gone before its replicas are
	// re-created elsewhere (--dead-after). Default cluster.DefaultDeadAfter.
	DeadAfter time.Duration
	// Partitions is the partition count of a new store, fixed once it
	// exists (--partitions). Default core.DefaultPartitions.
	Partitions int

	// Storage is where data lives: a directory (durable), "memory", or an
	// object-store URL (s3://, r2://, gs://, azure://, cloud://), in which
	// {{nodeId}} is replaced by the node id (--storage). Default
	// DefaultStorage. Ignored when StorageHot is set.
	Storage string
	// StorageHot, StorageWarm and StorageCold make the storage tiered: a
	// local directory for recent items, an object store idle items move
	// to, and optionally one for long-idle items (--storage-hot,
	// --storage-warm, --storage-cold).
	StorageHot, StorageWarm, StorageCold string
	// Tiering tunes tiered storage (--tier-demote-after, --tier-cold-after,
	// --tier-interval, --tier-hot-max-bytes, --tier-hot-min-free-bytes).
	// Defaults tiered.DefaultDemoteAfter, DefaultColdAfter, DefaultInterval;
	// the byte bounds default to 0, no bound.
	Tiering backend.Tiering

	// TLSDir holds the cluster CA and this node's certificate, created on
	// first start (--tls-dir). Default STORAGE/tls for a directory or
	// tiered store; otherwise a CA for this process only.
	TLSDir string
	// TLSCert, TLSKey and TLSCA name the node's certificate, its key and
	// the cluster CA, PEM files, instead of TLSDir (--tls-cert, --tls-key,
	// --tls-ca). All three or none. The certificate's common name must be
	// the node id: peers take raft messages only from the node it names.
	TLSCert, TLSKey, TLSCA string

	// APIKeys names a file of "KEY TENANT" lines; it turns authentication
	// on (--api-keys). Empty: no authentication, allowed on loopback only
	// unless Insecure.
	APIKeys string
	// Insecure allows a non-loopback HTTPAddr without API keys, and
	// DebugAddr off loopback (--insecure).
	Insecure bool
	// RateLimit bounds each tenant's item requests per second, 429 beyond;
	// 0 means no limit (--rate-limit). RateBurst is the bucket; 0 means
	// one second's worth (--rate-burst).
	RateLimit float64
	RateBurst int
	// MaxBodyBytes bounds request bodies (--max-body-bytes). Default
	// item.DefaultLimits().MaxBodyBytes (1 MiB).
	MaxBodyBytes int
	// MaxConnsPerIP bounds the HTTP connections one client address may
	// hold open; one more is answered 429 and closed (--max-conns-per-ip).
	// Default httpapi.DefaultMaxConnsPerIP (1024). Behind a proxy, every
	// client has the proxy's address.
	MaxConnsPerIP int
	// WriteTimeout bounds how long a write waits for its commit before 503
	// (--write-timeout). Default httpapi.DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// ShutdownTimeout bounds each step of the shutdown: in-flight HTTP
	// requests, leadership hand-over, peers' calls (--shutdown-timeout).
	// Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// DebugAddr serves Go's /debug/pprof profiles on its own listener;
	// loopback only unless Insecure (--debug-addr). Empty: off.
	DebugAddr string

	// BootstrapWait is how long a node that never belonged to a cluster
	// looks for one before founding it. Default: at once when there is
	// nothing to discover (no peers, no discovery, no broadcast, gossip on
	// loopback), else cluster.DefaultBootstrapWait. Not a flag.
	BootstrapWait time.Duration
	// Raft tunes failure detection (see cluster.Config); zero takes the
	// defaults. Not flags: tests use them.
	TickInterval  time.Duration
	ElectionTicks int
	// LogKeep is how many applied entries each partition's raft log keeps
	// for lagging replicas and, in a federation, regions catching up
	// (--log-keep). Default 10000 (multiraft.Config.LogKeep).
	LogKeep int

	// Clock is the wall clock under the node's hybrid clock (core.Clock).
	// Default time.Now. Not a flag: tests give a node a skewed clock.
	Clock func() time.Time

	// Logger receives the node's events. Nil discards them.
	Logger *slog.Logger

	// kubernetes is how a Zone of ZoneFromNode reaches the API server;
	// zero is the pod's own (k8snode.Config's defaults). Tests set it.
	kubernetes k8snode.Config
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = net.JoinHostPort(c.Bind, strconv.Itoa(DefaultHTTPPort))
	}
	if c.QUICAddr == "" {
		c.QUICAddr = net.JoinHostPort(c.Bind, strconv.Itoa(DefaultQUICPort))
	}
	if c.GossipAddr == "" {
		c.GossipAddr = net.JoinHostPort(c.Bind, strconv.Itoa(membership.DefaultBindPort))
	}
	if c.Broadcast == "" {
		c.Broadcast = BroadcastAuto
	}
	switch c.Role {
	case "", "writer":
		c.Role = RoleVoter
	}
	if c.Profile == "" {
		c.Profile = tuning.Auto
	}
	if c.ClusterName == "" {
		c.ClusterName = membership.DefaultClusterName
	}
	if c.RegionRTT == 0 {
		c.RegionRTT = DefaultRegionRTT
	}
	if c.FederationAddr == "" {
		c.FederationAddr = net.JoinHostPort(c.Bind, strconv.Itoa(federation.DefaultPort))
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = core.DefaultMaxClockSkew
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = cluster.DefaultReplicationFactor
	}
	if c.DeadAfter == 0 {
		c.DeadAfter = cluster.DefaultDeadAfter
	}
	if c.FindTimeout == 0 {
		c.FindTimeout = cluster.DefaultFindTimeout
	}
	if c.Partitions == 0 {
		c.Partitions = core.DefaultPartitions
	}
	if c.Storage == "" {
		c.Storage = DefaultStorage
	}
	if c.Tiering.DemoteAfter == 0 {
		c.Tiering.DemoteAfter = tiered.DefaultDemoteAfter
	}
	if c.Tiering.ColdAfter == 0 {
		c.Tiering.ColdAfter = tiered.DefaultColdAfter
	}
	if c.Tiering.Interval == 0 {
		c.Tiering.Interval = tiered.DefaultInterval
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = item.DefaultLimits().MaxBodyBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = httpapi.DefaultWriteTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once, in the flags' terms.
// Call EnsureDefaults first.
func (c *Config) Validate() error {
	var errs []error
	for name, addr := range map[string]string{"--http-addr": c.HTTPAddr, "--quic-addr": c.QUICAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", name, addr))
		}
	}
	if _, err := c.gossip(); err != nil {
		errs = append(errs, err)
	}
	if err := daemon.CheckExposure(c.HTTPAddr, c.APIKeys != "", c.Insecure); err != nil {
		errs = append(errs, err)
	}
	if c.DebugAddr != "" && !daemon.IsLoopback(c.DebugAddr) && !c.Insecure {
		errs = append(errs, fmt.Errorf("refusing to serve profiles on %s: --debug-addr must be a loopback address unless --insecure is given", c.DebugAddr))
	}
	if _, err := tuning.Lookup(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if c.Role != RoleVoter && c.Role != RoleReader {
		errs = append(errs, fmt.Errorf("--role %q: want voter (or writer) or reader", c.Role))
	}
	if err := cluster.CheckReplicationFactor(c.ReplicationFactor); err != nil {
		errs = append(errs, fmt.Errorf("--replication-factor: %w", err))
	}
	if _, err := c.storageSpec(); err != nil {
		errs = append(errs, err)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("--advertise-addr %q: want an IP address", c.AdvertiseAddr))
	}
	if c.DiscoverDNS != "" {
		if _, _, err := net.SplitHostPort(c.DiscoverDNS); err != nil {
			errs = append(errs, fmt.Errorf("--discover-dns %q: want host:port", c.DiscoverDNS))
		}
	}
	if node, ok := strings.CutPrefix(c.Zone, ZoneFromNode); ok {
		if err := k8snode.CheckNode(node); err != nil {
			errs = append(errs, fmt.Errorf("--zone %q: want node:NAME, NAME a Kubernetes node: %v", c.Zone, err))
		}
	}
	if c.Region != "" && !federation.ValidName(c.Region) {
		errs = append(errs, fmt.Errorf("--region %q: want 1-32 of a-z, 0-9 and - (it appears in item versions)", c.Region))
	}
	if c.Federation != "" {
		if !federation.ValidName(c.Federation) {
			errs = append(errs, fmt.Errorf("--federation %q: want 1-32 of a-z, 0-9 and -", c.Federation))
		}
		if _, err := c.federationGossip(); err != nil {
			errs = append(errs, err)
		}
		if c.FederationQUICAddr != "" {
			if _, _, err := net.SplitHostPort(c.FederationQUICAddr); err != nil {
				errs = append(errs, fmt.Errorf("--federation-quic-addr %q: want host:port", c.FederationQUICAddr))
			}
		}
	}
	if c.SyncFrom != "" {
		if _, _, err := net.SplitHostPort(c.SyncFrom); err != nil {
			errs = append(errs, fmt.Errorf("--sync-from %q: want the host:port of a core's QUIC listener", c.SyncFrom))
		}
	}
	if c.SyncCopyRate < 0 {
		errs = append(errs, errors.New("--sync-copy-rate cannot be negative"))
	}
	if v := c.VectorIndex; v.M < 0 || v.M > 64 || v.EfConstruction < 0 || v.EfConstruction > 2000 || v.EfSearch < 0 || v.EfSearch > 10000 {
		errs = append(errs, fmt.Errorf("--vector-m (%d) must be 2-64, --vector-ef-construction (%d) 1-2000, --vector-ef (%d) 1-10000", v.M, v.EfConstruction, v.EfSearch))
	}
	if c.FindTimeout < 0 || c.FindTimeout > wire.MaxFindBudget {
		errs = append(errs, fmt.Errorf("--find-timeout (%v) must be positive and at most %v", c.FindTimeout, wire.MaxFindBudget))
	}
	if c.MaxClockSkew < 0 || c.LogKeep < 0 || c.RegionDeadAfter < 0 || c.RegionRTT < 0 {
		errs = append(errs, errors.New("--max-clock-skew, --log-keep, --region-dead-after and --region-rtt cannot be negative"))
	}
	if c.MaxBodyBytes < 0 || c.MaxConnsPerIP < 0 || c.RateLimit < 0 || c.RateBurst < 0 {
		errs = append(errs, errors.New("--max-body-bytes, --max-conns-per-ip, --rate-limit and --rate-burst cannot be negative"))
	}
	return errors.Join(errs...)
}

// resolveZone replaces a Zone of ZoneFromNode and a node's name by that
// node's zone label, asking the Kubernetes API server; any other Zone is
// left as it is. New calls it once, before gossip announces the zone.
func (c *Config) resolveZone(ctx context.Context) error {
	node, ok := strings.CutPrefix(c.Zone, ZoneFromNode)
	if !ok {
		return nil
	}
	kc := c.kubernetes
	kc.Node = node
	zone, err := k8snode.Zone(ctx, kc)
	if err != nil {
		return fmt.Errorf("--zone %s: reading the zone label of Kubernetes node %s: %w", c.Zone, node, err)
	}
	c.Logger.Info("zone from the Kubernetes node", "component", "main", "node", node, "zone", zone)
	c.Zone = zone
	return nil
}

// reader reports whether the node is a reader (Role).
func (c *Config) reader() bool { return c.Role == RoleReader }

// gossipRole is the role the node announces in gossip.
func (c *Config) gossipRole() string {
	if c.reader() {
		return membership.RoleReader
	}
	return membership.RoleCore
}

// cacheBytes is the record cache the node's role gets (0: core's default).
func (c *Config) cacheBytes() int64 {
	if c.reader() {
		return ReaderCacheBytes
	}
	return 0
}

// storageSpec parses Storage, or the tiered StorageHot/-Warm/-Cold. It
// does not expand {{nodeId}}.
func (c *Config) storageSpec() (backend.Spec, error) {
	if c.StorageHot == "" && c.StorageWarm == "" && c.StorageCold == "" {
		return backend.Parse(c.Storage)
	}
	if c.StorageHot == "" {
		return backend.Spec{}, errors.New("--storage-warm and --storage-cold need --storage-hot, the local directory in front of them")
	}
	return backend.ParseTiered(c.StorageHot, c.StorageWarm, c.StorageCold)
}

// gossip turns the discovery settings into a membership config (without
// the node's metadata, known only once the store is open).
func (c *Config) gossip() (membership.Config, error) {
	var g membership.Config
	var err error
	if g.BindAddr, g.BindPort, err = gossipBind("--gossip-addr", c.GossipAddr); err != nil {
		return g, err
	}
	g.Peers, g.Discover, g.ClusterName = c.Peers, c.Discover, c.ClusterName
	if c.DiscoverDNS != "" {
		g.Resolver = resolverAt(c.DiscoverDNS)
	}
	if c.Region != "" {
		// Nodes of different regions never join one cluster, even when
		// they hear each other's gossip or beacons.
		g.ClusterName += "/" + c.Region
	}
	if c.GossipKey != "" {
		if g.GossipKey, err = base64.StdEncoding.DecodeString(c.GossipKey); err != nil {
			return g, fmt.Errorf("--gossip-key: not base64: %v", err)
		}
		if n := len(g.GossipKey); n != 16 && n != 24 && n != 32 {
			return g, fmt.Errorf("--gossip-key: %d bytes; want 16, 24 or 32 (base64 of `openssl rand 32`)", n)
		}
	}
	if c.Broadcast != BroadcastAuto {
		b, err := strconv.ParseBool(c.Broadcast)
		if err != nil {
			return g, fmt.Errorf("--broadcast %q: want auto, true or false", c.Broadcast)
		}
		g.Broadcast = &b
	}
	return g, nil
}

// gossipBind splits a gossip listen address (flag's value) into the host
// and port a membership binds; port 0 is membership.AnyPort.
func gossipBind(flag, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %v", flag, addr, err)
	}
	if port == "0" {
		return host, membership.AnyPort, nil
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: bad port", flag, addr)
	}
	return host, p, nil
}

// federationGossip turns the federation settings into the federation
// gossip's config (without the node's metadata).
func (c *Config) federationGossip() (membership.Config, error) {
	var g membership.Config
	var err error
	if g.BindAddr, g.BindPort, err = gossipBind("--federation-addr", c.FederationAddr); err != nil {
		return g, err
	}
	for _, p := range c.FederationPeers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			p = net.JoinHostPort(p, strconv.Itoa(federation.DefaultPort))
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return g, fmt.Errorf("--federation-peers %q: want host[:port]", p)
		}
		g.Peers = append(g.Peers, p)
	}
	g.Discover = c.Discover
	if c.DiscoverDNS != "" {
		g.Resolver = resolverAt(c.DiscoverDNS)
	}
	return g, nil
}

// bootstrapWait is how long to look for a cluster before founding one.
func (c *Config) bootstrapWait(g membership.Config) time.Duration {
	if c.BootstrapWait != 0 {
		return c.BootstrapWait
	}
	if len(g.Peers) == 0 && len(g.Discover) == 0 && (g.Broadcast == nil || !*g.Broadcast) && daemon.IsLoopback(c.GossipAddr) {
		return -1 // nothing to discover: found (or rejoin) at once
	}
	return cluster.DefaultBootstrapWait
}

// resolverAt is a resolver that asks the DNS server at addr (host:port)
// whatever the system's configuration says.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}
