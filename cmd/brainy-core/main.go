// Command brainy-core runs a Brainy node: the HTTP API v1 on local storage,
// and the same items over QUIC for edges (brainy-edge) and peers. Alone it
// is a cluster of one; more nodes find each other and replicate (package
// server assembles it).
//
//	go run ./cmd/brainy-core                       # HTTP 127.0.0.1:7070, QUIC 127.0.0.1:7071, ./brainy-data
//	brainy-core --storage memory                   # nothing on disk
//	brainy-core --bind 0.0.0.0 --api-keys keys.txt # reachable, authenticated
//
// Every flag can also be set as BRAINY_<NAME> or in a YAML file given by
// --config; run with --help for the list.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/federation"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/cliconfig"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/server"
	"github.com/soullabs/brainy/tiers/tiered"
	"github.com/soullabs/brainy/tuning"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "edge-token" {
		os.Exit(edgeToken(os.Args[2:]))
	}
	var cfg server.Config
	var logLevel, logFormat string
	os.Exit(daemon.Main(daemon.Command{
		Name: "brainy-core", EnvPrefix: "BRAINY_",
		Synopsis: "Usage: brainy-core [flags]\n       brainy-core edge-token [--ttl 1h] [flags]\n\nRuns a Brainy node serving the HTTP API v1 and, for edges, the same items over QUIC.\nedge-token prints a token that enrols edges (brainy-edge --join-token) with this node's CA.",
		Flags:    flags(&cfg, &logLevel, &logFormat), LogLevel: &logLevel, LogFormat: &logFormat,
		Run: func(ctx context.Context, log *slog.Logger, sources map[string]cliconfig.Source) error {
			cfg.Logger = log
			log.Info("settings", "component", "main", "set_by", daemon.SetBy(sources))
			s, err := server.New(ctx, cfg)
			if err != nil {
				return err
			}
			return s.Run(ctx)
		},
	}, os.Args[1:], os.Stderr))
}

// edgeToken prints a token enrolling edges, made with the CA of the node
// the same flags (and BRAINY_* variables, and --config) configure.
func edgeToken(args []string) int {
	var cfg server.Config
	var logLevel, logFormat string
	ttl := time.Hour
	fs := flags(&cfg, &logLevel, &logFormat)
	fs.DurationVar(&ttl, "ttl", ttl, "how long the token enrols edges (at most a year); keep it short")
	return daemon.Main(daemon.Command{
		Name: "brainy-core edge-token", EnvPrefix: "BRAINY_",
		Synopsis: "Usage: brainy-core edge-token [--ttl 1h] [flags]\n\nPrints a token that enrols edges (brainy-edge --join-token TOKEN) with the cluster CA of the node\nthese flags configure: run it where that node runs, with its settings.",
		Flags:    fs, LogLevel: &logLevel, LogFormat: &logFormat,
		Run: func(ctx context.Context, log *slog.Logger, _ map[string]cliconfig.Source) error {
			token, err := server.EdgeToken(cfg, ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Println(token)
			return err
		},
	}, args, os.Stderr)
}

func flags(c *server.Config, logLevel, logFormat *string) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-core", flag.ContinueOnError)
	port := func(p int) string { return strconv.Itoa(p) }
	fs.StringVar(&c.Bind, "bind", server.DefaultBind, "`address` every listener binds to (HTTP API on port "+port(server.DefaultHTTPPort)+", QUIC on "+port(server.DefaultQUICPort)+", gossip on "+port(membership.DefaultBindPort)+")")
	fs.StringVar(&c.GossipAddr, "gossip-addr", "", "gossip listen `host:port` (TCP and UDP; port 0 picks a free one); empty means BIND:"+port(membership.DefaultBindPort))
	fs.Var((*cliconfig.List)(&c.Peers), "peers", "comma-separated gossip `addresses` (host:port) of any running nodes to join")
	fs.Var((*cliconfig.List)(&c.Discover), "discover", "comma-separated discovery `sources`: dns:NAME[:PORT], ec2:TAG=VALUE, k8s (auto in Kubernetes)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "`IP` peers and edges reach this node at; empty means each listener's own, or the host's private IP for one bound to 0.0.0.0 or ::")
	fs.StringVar(&c.DiscoverDNS, "discover-dns", "", "DNS server `host:port` the dns: and k8s discovery sources ask instead of the system's resolver (e.g. Consul's 127.0.0.1:8600)")
	fs.StringVar(&c.Broadcast, "broadcast", server.BroadcastAuto, "LAN broadcast discovery on the gossip port: auto (on unless bound to loopback), true or false")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", "", "shared `secret` the cluster CA and gossip key are derived from (make one with: openssl rand -base64 32);\nempty means the CA in --tls-dir, or on loopback the per-host secret in ~/.config/brainy")
	fs.StringVar(&c.GossipKey, "gossip-key", "", "base64 `key` (16, 24 or 32 bytes) encrypting and authenticating gossip;\nempty means one derived from the cluster secret or CA key (gossip in the clear only on loopback)")
	fs.StringVar(&c.ClusterName, "cluster-name", membership.DefaultClusterName, "`name` that keeps clusters sharing a network apart")
	fs.StringVar(&c.Zone, "zone", "", "failure `domain` of this node (for example an availability zone); replicas spread over zones;\nnode:NAME means the topology.kubernetes.io/zone label of Kubernetes node NAME, read at start with the pod's service account")
	fs.StringVar(&c.Region, "region", "", "`region` of this node: nodes of different regions never form one cluster; in a federation, where its writes come from")
	fs.StringVar(&c.Federation, "federation", "", "join this region's cluster to the federation of this `name`: other regions replicate with it;\nwithout --region the node joins the nearest region within --region-rtt, or makes its own")
	fs.DurationVar(&c.RegionRTT, "region-rtt", server.DefaultRegionRTT, "in a federation, without --region: the round trip within which another region's cores count as this node's region")
	fs.StringVar(&c.FederationAddr, "federation-addr", "", "federation gossip listen `host:port` (TCP and UDP); empty means BIND:"+port(federation.DefaultPort))
	fs.Var((*cliconfig.List)(&c.FederationPeers), "federation-peers", "comma-separated federation gossip `addresses` (host[:port], port "+port(federation.DefaultPort)+" when omitted) of cores of any region")
	fs.IntVar(&c.LogKeep, "log-keep", 0, "applied raft entries each partition keeps for lagging replicas and regions catching up; 0 means 10000.\nA replica or region further behind copies the partition whole")
	fs.StringVar(&c.FederationQUICAddr, "federation-quic-addr", "", "QUIC `host:port` other regions reach this node at, when not --quic-addr (a NAT or relay in between)")
	fs.DurationVar(&c.RegionDeadAfter, "region-dead-after", 24*time.Hour, "in a federation, how long deletes' tombstones are kept: a region away longer must be resynced from empty storage")
	fs.StringVar(&c.SyncFrom, "sync-from", "", "make this cluster (green) a one-way follower of another (blue): the QUIC `host:port` of any of its cores;\ngreen copies blue, then streams its changes (needs blue's --cluster-secret). Remove it (restart) to make green independent")
	fs.IntVar(&c.SyncCopyRate, "sync-copy-rate", federation.DefaultSyncCopyRate, "`bytes` of records per second each node copies from the --sync-from cluster during the initial copy")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", core.DefaultMaxClockSkew, "how far ahead of this node's clock another region's timestamps may be before its batches are refused")
	fs.StringVar(&c.Profile, "profile", tuning.Auto, "tuning `profile`: balanced, read-heavy (4x cache, hot items cached on every node), write-heavy,\nor auto, which moves between them as the node's mix of reads and writes changes")
	fs.StringVar(&c.Role, "role", server.RoleVoter, "voter (alias writer) or reader: a reader holds a non-voting replica of every partition,\nnever leads or counts for quorum, and serves consistency=stale reads from it with a larger cache")
	fs.IntVar(&c.ReplicationFactor, "replication-factor", cluster.DefaultReplicationFactor, "replicas per partition (fewer while the cluster has fewer nodes)")
	fs.DurationVar(&c.DeadAfter, "dead-after", cluster.DefaultDeadAfter, "how long a node may be gone before its replicas are re-created elsewhere")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:"+port(server.DefaultHTTPPort))
	fs.StringVar(&c.QUICAddr, "quic-addr", "", "QUIC listen `host:port` (UDP) for edges and peers; empty means BIND:"+port(server.DefaultQUICPort))
	fs.StringVar(&c.Storage, "storage", server.DefaultStorage, "where data lives: a `directory` (durable), \"memory\", or an object store:\ns3://bucket/prefix, r2://bucket, gs://bucket/prefix, azure://container/prefix, cloud://bucket;\n{{nodeId}} is replaced by the node id")
	fs.StringVar(&c.StorageHot, "storage-hot", "", "tiered storage: the local `directory` recent items live in (with --storage-warm; replaces --storage)")
	fs.StringVar(&c.StorageWarm, "storage-warm", "", "tiered storage: the object store `URL` idle items move to")
	fs.StringVar(&c.StorageCold, "storage-cold", "", "tiered storage: the object store `URL` long-idle items move to (optional)")
	fs.DurationVar(&c.Tiering.DemoteAfter, "tier-demote-after", tiered.DefaultDemoteAfter, "tiered storage: idle time after which an item leaves the hot tier")
	fs.DurationVar(&c.Tiering.ColdAfter, "tier-cold-after", tiered.DefaultColdAfter, "tiered storage: idle time after which an item moves from warm to cold")
	fs.Int64Var(&c.VectorIndex.Bytes, "vector-index-bytes", core.DefaultVectorIndexBytes, "memory `bytes` the index of finds by vector may hold; past it the index is dropped and those finds scan; negative: no index")
	fs.IntVar(&c.VectorIndex.M, "vector-m", 16, "vector index (HNSW): neighbours per node and layer, 2M at the bottom; more is better recall, more memory, slower writes")
	fs.IntVar(&c.VectorIndex.EfConstruction, "vector-ef-construction", 100, "vector index (HNSW): the beam of an insert's search; more is better recall, slower writes")
	fs.IntVar(&c.VectorIndex.EfSearch, "vector-ef", 64, "vector index (HNSW): the least beam of a find's search; more is better recall, slower finds")
	fs.DurationVar(&c.FindTimeout, "find-timeout", cluster.DefaultFindTimeout, "a find's time budget: partitions that have not answered by then are named in the answer's \"missing\" (\"partial\": true)")
	fs.Int64Var(&c.Tiering.HotMaxBytes, "tier-hot-max-bytes", 0, "tiered storage: demote the least recently used items while the hot tier holds more `bytes`; 0 means no limit")
	fs.Int64Var(&c.Tiering.HotMinFreeBytes, "tier-hot-min-free-bytes", 0, "tiered storage: demote while the hot tier's disk has fewer free `bytes`; 0 means no limit")
	fs.DurationVar(&c.Tiering.Interval, "tier-interval", tiered.DefaultInterval, "tiered storage: how often idle items are looked for")
	fs.IntVar(&c.Partitions, "partitions", core.DefaultPartitions, "partitions of a new store; fixed once the store exists")
	fs.StringVar(&c.APIKeys, "api-keys", "", "`file` of \"KEY TENANT\" lines (\"KEY TENANT admin\" may also read metrics); turns on authentication")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow a non-loopback address without API keys")
	fs.StringVar(&c.TLSDir, "tls-dir", "", "`directory` of the cluster CA (ca.crt, ca.key) and this node's certificate, issued on first start;\nempty means STORAGE/tls. On loopback a CA is made there if none is; off loopback it must be given")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "node certificate `file` (PEM), with --tls-key and --tls-ca, instead of --tls-dir")
	fs.StringVar(&c.TLSKey, "tls-key", "", "node private key `file` (PEM)")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "cluster CA certificate `file` (PEM)")
	fs.Float64Var(&c.RateLimit, "rate-limit", 0, "item requests per second allowed to each tenant (429 beyond); 0 means no limit")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "requests a tenant may make at once above its rate; 0 means one second's worth")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", item.DefaultLimits().MaxBodyBytes, "largest request body accepted, in `bytes`")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", httpapi.DefaultMaxConnsPerIP, "HTTP connections one client address may hold open (429 beyond); behind a proxy, its connection count")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", httpapi.DefaultWriteTimeout, "how long a write may wait for its commit before 503")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&c.NodeID, "node-id", "", "node `id`; empty means the stored one, or a new random one")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "`host:port` serving Go's /debug/pprof profiles; empty means off; loopback only unless --insecure")
	fs.StringVar(logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(logFormat, "log-format", "text", "text or json")
	fs.String("config", "", "YAML `file` of settings (keys are flag names)")
	return fs
}
