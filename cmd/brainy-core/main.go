// Command brainy-core runs a Brainy node: the HTTP API v1 on local storage,
// and the same items over QUIC for edges (brainy-edge).
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
	"encoding/base64"
	"strconv"

	"errors"
	"flag"
	"fmt"
	"github.com/oklog/ulid/v2"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/cliconfig"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/transport"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type settings struct {
	bind, httpAddr, quicAddr, storage, apiKeys, nodeID, config string
	gossipAddr, peers, discover, gossipKey, clusterSecret      string
	clusterName, zone, region, broadcast                       string
	replicationFactor                                          int
	deadAfter                                                  time.Duration
	storageHot, storageWarm, storageCold                       string
	tierDemoteAfter, tierColdAfter, tierInterval               time.Duration
	tierHotMaxBytes, tierHotMinFree                            int64
	tlsDir, tlsCert, tlsKey, tlsCA                             string
	debugAddr, logLevel, logFormat                             string
	partitions, maxBody, rateBurst                             int
	rateLimit                                                  float64
	insecure                                                   bool
	shutdownTimeout, writeTimeout                              time.Duration
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-core", flag.ContinueOnError)
	fs.StringVar(&s.bind, "bind", "127.0.0.1", "`address` every listener binds to (HTTP API on port 7070, QUIC on 7071, gossip on 7946)")
	fs.StringVar(&s.gossipAddr, "gossip-addr", "", "gossip listen `host:port` (TCP and UDP; port 0 picks a free one); empty means BIND:7946")
	fs.StringVar(&s.peers, "peers", "", "comma-separated gossip `addresses` (host:port) of any running nodes to join")
	fs.StringVar(&s.discover, "discover", "", "comma-separated discovery `sources`: dns:NAME[:PORT], ec2:TAG=VALUE, k8s (auto in Kubernetes)")
	fs.StringVar(&s.broadcast, "broadcast", "auto", "LAN broadcast discovery on the gossip port: auto (on unless bound to loopback), true or false")
	fs.StringVar(&s.clusterSecret, "cluster-secret", "", "shared `secret` (16+ bytes) the cluster CA is derived from, so nodes and edges trust each other;\nempty means STORAGE/tls (a CA per node, to copy), or on loopback a built-in one")
	fs.StringVar(&s.gossipKey, "gossip-key", "", "base64 `key` (16, 24 or 32 bytes) encrypting gossip; empty sends gossip in the clear")
	fs.StringVar(&s.clusterName, "cluster-name", "brainy", "`name` that keeps clusters sharing a network apart")
	fs.StringVar(&s.zone, "zone", "", "failure `domain` of this node (for example an availability zone); replicas spread over zones")
	fs.StringVar(&s.region, "region", "", "`region` of this node, reported to edges")
	fs.IntVar(&s.replicationFactor, "replication-factor", 3, "replicas per partition (fewer while the cluster has fewer nodes)")
	fs.DurationVar(&s.deadAfter, "dead-after", time.Minute, "how long a node may be gone before its replicas are re-created elsewhere")
	fs.StringVar(&s.httpAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:7070")
	fs.StringVar(&s.quicAddr, "quic-addr", "", "QUIC listen `host:port` (UDP) for edges and peers; empty means BIND:7071")
	fs.StringVar(&s.storage, "storage", "./brainy-data", "where data lives: a `directory` (durable), \"memory\", or an object store:\ns3://bucket/prefix, r2://bucket, gs://bucket/prefix, azure://container/prefix, cloud://bucket;\n{{nodeId}} is replaced by the node id")
	fs.StringVar(&s.storageHot, "storage-hot", "", "tiered storage: the local `directory` recent items live in (with --storage-warm; replaces --storage)")
	fs.StringVar(&s.storageWarm, "storage-warm", "", "tiered storage: the object store `URL` idle items move to")
	fs.StringVar(&s.storageCold, "storage-cold", "", "tiered storage: the object store `URL` long-idle items move to (optional)")
	fs.DurationVar(&s.tierDemoteAfter, "tier-demote-after", 24*time.Hour, "tiered storage: idle time after which an item leaves the hot tier")
	fs.DurationVar(&s.tierColdAfter, "tier-cold-after", 30*24*time.Hour, "tiered storage: idle time after which an item moves from warm to cold")
	fs.Int64Var(&s.tierHotMaxBytes, "tier-hot-max-bytes", 0, "tiered storage: demote the least recently used items while the hot tier holds more `bytes`; 0 means no limit")
	fs.Int64Var(&s.tierHotMinFree, "tier-hot-min-free-bytes", 0, "tiered storage: demote while the hot tier's disk has fewer free `bytes`; 0 means no limit")
	fs.DurationVar(&s.tierInterval, "tier-interval", time.Minute, "tiered storage: how often idle items are looked for")
	fs.IntVar(&s.partitions, "partitions", core.DefaultPartitions, "partitions of a new store; fixed once the store exists")
	fs.StringVar(&s.apiKeys, "api-keys", "", "`file` of \"KEY TENANT\" lines; turns on authentication")
	fs.BoolVar(&s.insecure, "insecure", false, "allow a non-loopback address without API keys")
	fs.StringVar(&s.tlsDir, "tls-dir", "", "`directory` of the cluster CA and this node's certificate, created on first start;\nempty means STORAGE/tls (with memory storage: a CA for this process only)")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "node certificate `file` (PEM), with --tls-key and --tls-ca, instead of --tls-dir")
	fs.StringVar(&s.tlsKey, "tls-key", "", "node private key `file` (PEM)")
	fs.StringVar(&s.tlsCA, "tls-ca", "", "cluster CA certificate `file` (PEM)")
	fs.Float64Var(&s.rateLimit, "rate-limit", 0, "item requests per second allowed to each tenant (429 beyond); 0 means no limit")
	fs.IntVar(&s.rateBurst, "rate-burst", 0, "requests a tenant may make at once above its rate; 0 means one second's worth")
	fs.IntVar(&s.maxBody, "max-body-bytes", item.DefaultLimits().MaxBodyBytes, "largest request body accepted, in `bytes`")
	fs.DurationVar(&s.writeTimeout, "write-timeout", 10*time.Second, "how long a write may wait for its commit before 503")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&s.nodeID, "node-id", "", "node `id`; empty means the stored one, or a new random one")
	fs.StringVar(&s.debugAddr, "debug-addr", "", "`host:port` serving Go's /debug/pprof profiles; empty means off; loopback only unless --insecure")
	fs.StringVar(&s.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&s.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&s.config, "config", "", "YAML `file` of settings (keys are flag names)")
	return fs
}

func run(args []string, stderr io.Writer) int {
	var s settings
	fs := flags(&s)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		cliconfig.Usage(stderr, fs, "BRAINY_", "Usage: brainy-core [flags]\n\nRuns a Brainy node serving the HTTP API v1 and, for edges, the same items over QUIC.")
	}
	sources, err := cliconfig.Parse(fs, args, "BRAINY_", "config", nil)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "brainy-core:", err)
		return 2
	}
	log, err := daemon.NewLogger(stderr, s.logLevel, s.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "brainy-core:", err)
		return 2
	}
	if err := serve(s, sources, log); err != nil {
		log.Error("brainy-core stopped", "err", err)
		return 1
	}
	return 0
}

func serve(s settings, sources map[string]cliconfig.Source, log *slog.Logger) error {
	if s.httpAddr == "" {
		s.httpAddr = net.JoinHostPort(s.bind, "7070")
	}
	if s.quicAddr == "" {
		s.quicAddr = net.JoinHostPort(s.bind, "7071")
	}
	if s.gossipAddr == "" {
		s.gossipAddr = net.JoinHostPort(s.bind, "7946")
	}
	limits := item.DefaultLimits()
	limits.MaxBodyBytes = s.maxBody
	keys, err := daemon.LoadAPIKeys(s.apiKeys, &limits)
	if err != nil {
		return err
	}
	if err := daemon.CheckExposure(s.httpAddr, keys, s.insecure); err != nil {
		return err
	}
	if s.debugAddr != "" && !daemon.IsLoopback(s.debugAddr) && !s.insecure {
		return fmt.Errorf("refusing to serve profiles on %s: --debug-addr must be a loopback address unless --insecure is given", s.debugAddr)
	}
	spec, err := storageSpec(s)
	if err != nil {
		return err
	}
	gossip, err := gossipSettings(&s)
	if err != nil {
		return err
	}
	if s.tlsDir == "" && spec.Kind == "disk" {
		s.tlsDir = filepath.Join(spec.Path, "tls")
	}
	if s.tlsDir == "" && spec.Kind == "tiered" {
		s.tlsDir = filepath.Join(spec.Hot.Path, "tls")
	}
	secret := []byte(s.clusterSecret)
	if len(secret) == 0 && daemon.IsLoopback(s.quicAddr) && daemon.IsLoopback(s.gossipAddr) && s.tlsCert == "" {
		// Every process on this host can reach loopback anyway: nodes on
		// loopback share a well-known secret, so that a second node on
		// 127.0.0.2 joins with no credentials to copy.
		secret = []byte(loopbackSecret)
	}
	log.Info("starting", "component", "main", "http_addr", s.httpAddr, "quic_addr", s.quicAddr, "gossip_addr", s.gossipAddr,
		"storage", spec.String(), "partitions", s.partitions, "replication_factor", s.replicationFactor,
		"peers", s.peers, "discover", s.discover, "api_keys", keys.Len(), "insecure", s.insecure, "tls_dir", s.tlsDir,
		"max_body_bytes", s.maxBody, "write_timeout", s.writeTimeout, "shutdown_timeout", s.shutdownTimeout,
		"config", s.config, "set_by", setBy(sources))

	store, err := backend.Open(context.Background(), spec, backend.Options{NodeID: s.nodeID, Demotable: core.Demotable, Logger: log,
		Tiering: backend.Tiering{DemoteAfter: s.tierDemoteAfter, ColdAfter: s.tierColdAfter, Interval: s.tierInterval,
			HotMaxBytes: s.tierHotMaxBytes, HotMinFreeBytes: s.tierHotMinFree}})
	if err != nil {
		return fmt.Errorf("storage %s: %w", spec, err)
	}
	defer store.Close()
	nodeID := s.nodeID
	if nodeID == "" {
		if nodeID, err = core.StoredNodeID(context.Background(), store); err != nil {
			return err
		}
		if nodeID == "" {
			nodeID = ulid.Make().String()
		}
	}

	host, _, _ := net.SplitHostPort(s.quicAddr)
	tlsConf, err := daemon.ClusterTLS(daemon.TLSFiles{Cert: s.tlsCert, Key: s.tlsKey, CA: s.tlsCA, Secret: secret}, s.tlsDir, nodeID, []string{host})
	if err != nil {
		return fmt.Errorf("cluster credentials: %w", err)
	}
	qcfg := transport.DefaultConfig(tlsConf)
	qcfg.ListenAddr = s.quicAddr
	qcfg.Logger = log
	qsrv, err := transport.NewServer(qcfg)
	if err != nil {
		return fmt.Errorf("quic: %w", err)
	}
	defer qsrv.Close()
	go qsrv.Serve(context.Background())
	// Calls to other nodes notice a dead peer within a second.
	ccfg := transport.FastFailoverConfig(tlsConf)
	ccfg.ListenAddr = net.JoinHostPort(host, "0") // calls leave from the address peers know
	ccfg.Logger = log
	qclient, err := transport.NewClient(ccfg)
	if err != nil {
		return fmt.Errorf("quic: %w", err)
	}
	defer qclient.Close()

	gossip.Meta = membership.Meta{ID: nodeID, QUICAddr: qsrv.Addr().String(), HTTPAddr: s.httpAddr, Zone: s.zone, Region: s.region, Role: "core"}
	gossip.Logger = log
	members, err := membership.Start(context.Background(), gossip)
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	defer members.Shutdown()

	wait := 3 * time.Second
	if len(gossip.Peers) == 0 && len(gossip.Discover) == 0 && (gossip.Broadcast == nil || !*gossip.Broadcast) && daemon.IsLoopback(s.gossipAddr) {
		wait = -1 // nothing to discover: found (or rejoin) at once
	}
	node, err := cluster.Start(context.Background(), cluster.Config{
		Core: core.Config{Store: store, StorageLocation: spec.Location(), StorageStats: store.FillStats, NodeID: nodeID,
			Partitions: s.partitions, Limits: limits, Logger: log},
		Server: qsrv, Client: qclient, Directory: directory{members},
		ReplicationFactor: s.replicationFactor, DeadAfter: s.deadAfter, BootstrapWait: wait, Logger: log,
	})
	if err != nil {
		return err
	}
	qclient.OnDisconnect(func(addr string) {
		// A lost QUIC connection is the fastest sign of a dead node; and
		// the changes it pushed meanwhile are lost.
		for _, m := range members.Members() {
			if m.Meta.QUICAddr == addr {
				members.NotifyUnreachable(m.Meta.ID)
			}
		}
		node.PeerDisconnected(addr)
	})

	h, err := edge.NewHandler(edge.Config{Limits: limits, APIKeys: keys, WriteTimeout: s.writeTimeout, Logger: log,
		RateLimit: s.rateLimit, RateBurst: s.rateBurst}, node)
	if err != nil {
		node.Close()
		return err
	}
	srv := edge.NewServer(edge.ServerConfig{}, h)
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		node.Close()
		return fmt.Errorf("listen: %w", err)
	}
	if s.debugAddr != "" {
		dln, err := net.Listen("tcp", s.debugAddr)
		if err != nil {
			node.Close()
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer dln.Close()
		log.Info("serving profiles", "component", "main", "debug_addr", dln.Addr().String())
		go http.Serve(dln, debugMux())
	}
	log.Info("listening", "component", "main", "node", nodeID, "http_addr", ln.Addr().String(),
		"quic_addr", qsrv.Addr().String(), "gossip_addr", members.LocalNode().Addr)

	if err := daemon.Run(ln, srv, s.shutdownTimeout, log); err != nil {
		node.Close()
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	// Hand leaderships over first, so the partitions this node led do not
	// wait out an election; then leave the gossip.
	node.Leave(sctx)
	if err := members.Leave(time.Second); err != nil {
		log.Warn("leaving the gossip", "component", "main", "err", err)
	}
	// Edges' and peers' calls in flight finish; new ones are refused.
	if err := qsrv.Shutdown(sctx); err != nil {
		log.Warn("QUIC shutdown did not finish in-flight calls", "component", "main", "err", err)
	}
	if err := node.Close(); err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}
	log.Info("stopped", "component", "main")
	return nil
}

// storageSpec parses --storage, or the tiered --storage-hot/-warm/-cold,
// and fills in {{nodeId}}.
func storageSpec(s settings) (backend.Spec, error) {
	var spec backend.Spec
	var err error
	if s.storageHot != "" || s.storageWarm != "" || s.storageCold != "" {
		if s.storageHot == "" {
			return spec, fmt.Errorf("--storage-warm and --storage-cold need --storage-hot, the local directory in front of them")
		}
		spec, err = backend.ParseTiered(s.storageHot, s.storageWarm, s.storageCold)
	} else {
		spec, err = backend.Parse(s.storage)
	}
	if err != nil || !spec.HasTemplate() {
		return spec, err
	}
	id := s.nodeID
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return spec, fmt.Errorf("storage %s: {{nodeId}} needs --node-id or a host name: %w", spec, err)
		}
	}
	return spec.Expand(id), nil
}

// loopbackSecret is the cluster secret of nodes that listen on loopback
// only and were given none.
const loopbackSecret = "brainy loopback cluster: for nodes on one host only"

// gossipSettings turns the discovery flags into a membership config.
func gossipSettings(s *settings) (membership.Config, error) {
	var c membership.Config
	host, port, err := net.SplitHostPort(s.gossipAddr)
	if err != nil {
		return c, fmt.Errorf("--gossip-addr %q: %v", s.gossipAddr, err)
	}
	c.BindAddr = host
	switch port {
	case "0":
		c.BindPort = membership.AnyPort
	default:
		if c.BindPort, err = strconv.Atoi(port); err != nil || c.BindPort < 1 || c.BindPort > 65535 {
			return c, fmt.Errorf("--gossip-addr %q: bad port", s.gossipAddr)
		}
	}
	c.Peers = splitList(s.peers)
	c.Discover = splitList(s.discover)
	c.ClusterName = s.clusterName
	if s.gossipKey != "" {
		if c.GossipKey, err = base64.StdEncoding.DecodeString(s.gossipKey); err != nil {
			return c, fmt.Errorf("--gossip-key: not base64: %v", err)
		}
		if n := len(c.GossipKey); n != 16 && n != 24 && n != 32 {
			return c, fmt.Errorf("--gossip-key: %d bytes; want 16, 24 or 32 (base64 of `openssl rand 32`)", n)
		}
	}
	if s.broadcast != "auto" {
		b, err := strconv.ParseBool(s.broadcast)
		if err != nil {
			return c, fmt.Errorf("--broadcast %q: want auto, true or false", s.broadcast)
		}
		c.Broadcast = &b
	}
	if s.replicationFactor < 1 || s.replicationFactor > 7 {
		return c, fmt.Errorf("--replication-factor %d: want 1 to 7", s.replicationFactor)
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// directory adapts the gossip membership to the cluster's view of it.
type directory struct{ m *membership.Membership }

func (d directory) Members() []cluster.Peer {
	var out []cluster.Peer
	for _, m := range d.m.Members() {
		if m.State == membership.StateAlive || m.State == membership.StateSuspect {
			out = append(out, cluster.Peer{ID: m.Meta.ID, QUICAddr: m.Meta.QUICAddr, Zone: m.Meta.Zone})
		}
	}
	return out
}

// setBy lists the settings that did not come from defaults, with their source.
func setBy(sources map[string]cliconfig.Source) string {
	var parts []string
	for name, src := range sources {
		if src != cliconfig.FromDefault {
			parts = append(parts, name+"="+string(src))
		}
	}
	return strings.Join(parts, ",")
}

// debugMux serves net/http/pprof on its own mux, never on the API's.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
