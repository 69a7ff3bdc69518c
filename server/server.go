package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/federation"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// Server is a running core node. New starts everything but the HTTP API,
// whose listener is bound; Run serves it and shuts the node down when its
// context ends. Close shuts down a node that is not running.
type Server struct {
	cfg    Config
	log    *slog.Logger
	nodeID string
	// advertise is the IP announced for listeners bound to every
	// interface ("" when none is; advertise.go).
	advertise string
	ca        *pki.CA // the cluster CA, when this node holds its key: it enrols edges
	root      []byte  // the cluster's root secret, for the gossip key (credentials)
	store     *backend.Store
	qsrv      *transport.Server
	qclient   *transport.Client
	members   *membership.Membership
	node      *cluster.Node
	fed       *federation.Federation // nil unless Config.Federation
	sync      *federation.Sync       // nil unless Config.SyncFrom
	http      *httpapi.Server
	ln        net.Listener
	debugLn   net.Listener

	httpDone  atomic.Bool // the HTTP server was shut down (by Run, or Close)
	closeOnce sync.Once
	closeErr  error
}

// New opens the node's storage, joins or founds its cluster, and binds
// the HTTP API's listener. On error, whatever was opened is closed again.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.resolveZone(ctx); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.advertise = cfg.advertiseIP(net.InterfaceAddrs); s.advertise != "" {
		s.log.Info("announcing this node at its address", "component", "main", "advertise_addr", s.advertise)
	}
	defer func() {
		if err != nil {
			s.abort()
		}
	}()
	limits := item.DefaultLimits()
	limits.MaxBodyBytes = cfg.MaxBodyBytes
	keys, err := httpapi.LoadAPIKeys(cfg.APIKeys, &limits)
	if err != nil {
		return nil, fmt.Errorf("--api-keys: %w", err)
	}
	spec, err := s.openStore(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.startTransport(spec); err != nil {
		return nil, err
	}
	if err := s.placeRegion(ctx); err != nil {
		return nil, err
	}
	cfg = s.cfg
	gossip, err := s.startGossip(ctx)
	if err != nil {
		return nil, err
	}
	s.node, err = cluster.Start(ctx, cluster.Config{
		Core: core.Config{Store: s.store, StorageLocation: spec.Location(), StorageStats: s.store.FillStats, NodeID: s.nodeID,
			Partitions: cfg.Partitions, Limits: limits, Logger: s.log, RaftLogDir: raftLogDir(spec), CacheBytes: cfg.cacheBytes(), VectorIndex: cfg.VectorIndex,
			Region: cfg.Region, Federated: cfg.Federation != "", MaxClockSkew: cfg.MaxClockSkew, Now: cfg.Clock},
		Server: s.qsrv, Client: s.qclient, Directory: directory{s.members}, GossipAddr: s.members.LocalNode().Addr,
		ReplicationFactor: cfg.ReplicationFactor, DeadAfter: cfg.DeadAfter, BootstrapWait: cfg.bootstrapWait(gossip), Reader: cfg.reader(),
		Profile: cfg.Profile, FindTimeout: cfg.FindTimeout, NoHotReads: cfg.Federation != "" || cfg.SyncFrom != "",
		TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks, LogKeep: cfg.LogKeep, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	s.qclient.OnDisconnect(s.peerDisconnected)
	// Every core serves blue/green sync: any cluster may be followed, and
	// a following cluster's cores apply what their peers read.
	federation.ServeSync(s.node, s.qsrv, s.qclient, s.log)
	if cfg.Federation != "" {
		if err := s.startFederation(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.SyncFrom != "" {
		s.sync, err = federation.StartSync(federation.SyncConfig{From: cfg.SyncFrom, Cluster: s.node, Client: s.qclient,
			CopyBytesPerSecond: cfg.SyncCopyRate, Logger: s.log})
		if err != nil {
			return nil, err
		}
	}
	hcfg := httpapi.Config{Limits: limits, APIKeys: keys, WriteTimeout: cfg.WriteTimeout, Logger: s.log,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst}
	if s.ca != nil {
		hcfg.Enrol = func(body []byte) ([]byte, error) { return s.ca.Enrol(body, time.Now()) }
	}
	be := backendOf(s.node, s.fed, s.sync)
	h, err := httpapi.NewHandler(hcfg, be)
	if err != nil {
		return nil, err
	}
	s.http = httpapi.NewServer(httpapi.ServerConfig{MaxConnsPerIP: cfg.MaxConnsPerIP}, h)
	if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.DebugAddr != "" {
		if s.debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return nil, fmt.Errorf("--debug-addr: %w", err)
		}
		s.log.Info("serving profiles", "component", "main", "debug_addr", s.debugLn.Addr().String())
		go http.Serve(s.debugLn, daemon.DebugMux())
	}
	return s, nil
}

// raftLogDir is where a node on spec keeps its raft log: in the raftlog
// directory of its local data directory (the hot tier's, when tiered);
// "" — in the store — for a node on an object store, which has no local
// disk for it, or in memory.
func raftLogDir(spec backend.Spec) string {
	if dir := spec.LocalDir(); dir != "" {
		return filepath.Join(dir, "raftlog")
	}
	return ""
}

// openStore opens the storage and settles the node id: the configured
// one, the one stored with the data, or a new one.
func (s *Server) openStore(ctx context.Context) (backend.Spec, error) {
	cfg := s.cfg
	spec, err := cfg.storageSpec()
	if err != nil {
		return spec, err
	}
	if spec.HasTemplate() {
		id := cfg.NodeID
		if id == "" {
			if id, err = os.Hostname(); err != nil {
				return spec, fmt.Errorf("storage %s: {{nodeId}} needs --node-id or a host name: %w", spec, err)
			}
		}
		spec = spec.Expand(id)
	}
	s.log.Info("starting", "component", "main", "http_addr", cfg.HTTPAddr, "quic_addr", cfg.QUICAddr, "gossip_addr", cfg.GossipAddr,
		"storage", spec.String(), "partitions", cfg.Partitions, "replication_factor", cfg.ReplicationFactor,
		"peers", cfg.Peers, "discover", cfg.Discover, "api_keys", cfg.APIKeys != "", "insecure", cfg.Insecure,
		"max_body_bytes", cfg.MaxBodyBytes, "write_timeout", cfg.WriteTimeout, "shutdown_timeout", cfg.ShutdownTimeout)
	s.store, err = backend.Open(ctx, spec, backend.Options{NodeID: cfg.NodeID, Demotable: core.Demotable, Logger: s.log, Tiering: cfg.Tiering})
	if err != nil {
		return spec, fmt.Errorf("storage %s: %w", spec, err)
	}
	s.nodeID = cfg.NodeID
	if s.nodeID == "" {
		if s.nodeID, err = core.StoredNodeID(ctx, s.store); err != nil {
			return spec, err
		}
		if s.nodeID == "" {
			s.nodeID = ulid.Make().String()
		}
	}
	return spec, nil
}

// startTransport starts the QUIC server edges and peers call, and the
// client this node calls peers with.
func (s *Server) startTransport(spec backend.Spec) error {
	tlsConf, ca, root, err := s.credentials(spec)
	if err != nil {
		return fmt.Errorf("cluster credentials: %w", err)
	}
	s.ca, s.root = ca, root
	qcfg := transport.DefaultConfig(tlsConf)
	qcfg.ListenAddr, qcfg.Logger = s.cfg.QUICAddr, s.log
	if s.qsrv, err = transport.NewServer(qcfg); err != nil {
		return fmt.Errorf("quic: %w", err)
	}
	go s.qsrv.Serve(context.Background())
	// Calls to other nodes notice a dead peer within a second, and leave
	// from the address peers know.
	host, _, _ := net.SplitHostPort(s.cfg.QUICAddr)
	ccfg := transport.FastFailoverConfig(tlsConf)
	ccfg.ListenAddr, ccfg.Logger = net.JoinHostPort(host, "0"), s.log
	if s.qclient, err = transport.NewClient(ccfg); err != nil {
		return fmt.Errorf("quic: %w", err)
	}
	return nil
}

// startGossip joins the gossip membership, announcing this node.
func (s *Server) startGossip(ctx context.Context) (membership.Config, error) {
	g, err := s.cfg.gossip()
	if err != nil {
		return g, err
	}
	if g.GossipKey, err = gossipKey(g.GossipKey, s.root, s.cfg.GossipAddr); err != nil {
		return g, err
	}
	g.AdvertiseAddr = s.advertise
	g.Meta = membership.Meta{ID: s.nodeID, QUICAddr: s.advertised(s.qsrv.Addr().String()), HTTPAddr: s.advertised(s.cfg.HTTPAddr),
		Zone: s.cfg.Zone, Region: s.cfg.Region, Role: s.cfg.gossipRole()}
	g.Logger = s.log
	if s.members, err = membership.Start(ctx, g); err != nil {
		return g, fmt.Errorf("gossip: %w", err)
	}
	return g, nil
}

// startFederation joins the cluster's federation: its own gossip pool
// (keyed like the regional one), and the streams to other regions.
func (s *Server) startFederation(ctx context.Context) error {
	g, err := s.cfg.federationGossip()
	if err != nil {
		return err
	}
	if g.GossipKey, err = s.federationKey(); err != nil {
		return err
	}
	quic := s.cfg.FederationQUICAddr
	if quic == "" {
		quic = s.advertised(s.qsrv.Addr().String())
	}
	g.AdvertiseAddr = s.advertise
	g.Meta = membership.Meta{ID: s.nodeID, QUICAddr: quic, HTTPAddr: s.advertised(s.cfg.HTTPAddr),
		Zone: s.cfg.Zone, Region: s.cfg.Region, Role: s.cfg.gossipRole()}
	s.fed, err = federation.Start(ctx, federation.Config{Name: s.cfg.Federation, Region: s.cfg.Region,
		Cluster: s.node, Server: s.qsrv, Client: s.qclient, Gossip: g, RegionDeadAfter: s.cfg.RegionDeadAfter, Logger: s.log})
	if err != nil {
		return err
	}
	s.node.SetGlobalFind(s.fed.FindGlobal) // finds of scope global
	return nil
}

// federationKey is the federation gossip's key: the regional pool's, since
// regions of a federation share their secret.
func (s *Server) federationKey() ([]byte, error) {
	var configured []byte
	var err error
	if s.cfg.GossipKey != "" {
		if configured, err = base64.StdEncoding.DecodeString(s.cfg.GossipKey); err != nil {
			return nil, fmt.Errorf("--gossip-key: %w", err)
		}
	}
	key, err := gossipKey(configured, s.root, s.cfg.FederationAddr)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	return key, nil
}

// Federation returns the node's federation, nil when it has none.
func (s *Server) Federation() *federation.Federation { return s.fed }

// Sync returns the node's blue/green sync, nil when it follows no cluster.
func (s *Server) Sync() *federation.Sync { return s.sync }

// peerDisconnected is the fast failure signal: a lost QUIC connection
// tells the gossip the member is unreachable well before its probes
// would, and the cluster that the changes it pushed meanwhile are lost.
func (s *Server) peerDisconnected(addr string) {
	for _, m := range s.members.Members() {
		if m.Meta.QUICAddr == addr {
			s.members.NotifyUnreachable(m.Meta.ID)
		}
	}
	s.node.PeerDisconnected(addr)
}

// NodeID returns the node's id in the cluster.
func (s *Server) NodeID() string { return s.nodeID }

// HTTPAddr, QUICAddr and GossipAddr return where the node listens.
func (s *Server) HTTPAddr() string   { return s.ln.Addr().String() }
func (s *Server) QUICAddr() string   { return s.qsrv.Addr().String() }
func (s *Server) GossipAddr() string { return s.members.LocalNode().Addr }

// Cluster returns the node's cluster member, which serves the item API.
func (s *Server) Cluster() *cluster.Node { return s.node }

// Run serves the HTTP API until ctx ends (or serving fails), then shuts
// the node down (see Close).
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("listening", "component", "main", "node", s.nodeID, "http_addr", s.HTTPAddr(),
		"quic_addr", s.QUICAddr(), "gossip_addr", s.GossipAddr())
	if err := daemon.ServeUntil(ctx, s.ln, s.http, s.cfg.ShutdownTimeout, s.log); err != nil {
		s.abort()
		return err
	}
	s.httpDone.Store(true)
	return s.Close()
}

// Close shuts the node down in order: HTTP requests in flight finish (if
// Run is serving), leaderships are handed to other voters so the
// partitions this node led do not wait out an election, the node leaves
// the gossip, edges' and peers' calls in flight finish, the raft groups
// stop, and the store closes. Each step is bounded by ShutdownTimeout.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		defer cancel()
		if err := s.shutdownHTTP(ctx); err != nil {
			s.log.Warn("shutdown did not finish in-flight requests", "component", "main", "err", err)
		}
		if s.sync != nil {
			_ = s.sync.Close()
		}
		if s.fed != nil {
			_ = s.fed.Close()
		}
		s.node.Leave(ctx)
		if err := s.members.Leave(time.Second); err != nil {
			s.log.Warn("leaving the gossip", "component", "main", "err", err)
		}
		if err := s.qsrv.Shutdown(ctx); err != nil {
			s.log.Warn("QUIC shutdown did not finish in-flight calls", "component", "main", "err", err)
		}
		s.closeErr = s.closeAll()
		if s.closeErr == nil {
			s.log.Info("stopped", "component", "main")
		}
	})
	return s.closeErr
}

// shutdownHTTP stops the HTTP API, unless Run did already. A listener
// that was never served is closed.
func (s *Server) shutdownHTTP(ctx context.Context) error {
	if !s.httpDone.CompareAndSwap(false, true) {
		return nil
	}
	s.ln.Close()
	return s.http.Shutdown(ctx)
}

// abort closes whatever is open without the orderly steps: New failed
// part-way, or serving did.
func (s *Server) abort() {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
}

// closeAll closes every part that is open, the node before its store.
func (s *Server) closeAll() error {
	var errs []error
	if s.ln != nil {
		s.ln.Close()
	}
	if s.debugLn != nil {
		s.debugLn.Close()
	}
	if s.sync != nil {
		errs = append(errs, s.sync.Close())
	}
	if s.fed != nil {
		errs = append(errs, s.fed.Close())
	}
	if s.node != nil {
		errs = append(errs, s.node.Close())
	}
	if s.members != nil {
		errs = append(errs, s.members.Shutdown())
	}
	if s.qclient != nil {
		s.qclient.Close()
	}
	if s.qsrv != nil {
		s.qsrv.Close()
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// backendOf is what the HTTP API serves: the cluster, with the
// federation's and the sync's sections in its metrics when there are.
func backendOf(n *cluster.Node, fed *federation.Federation, sync *federation.Sync) httpapi.Backend {
	if fed == nil && sync == nil {
		return n
	}
	return federated{n, fed, sync}
}

type federated struct {
	*cluster.Node
	fed  *federation.Federation // nil: no federation
	sync *federation.Sync       // nil: no sync
}

// Get reads in this region, or, for ?consistency=global, once every
// reachable region holds the item's latest version.
func (f federated) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	if item.GlobalReads(ctx) && f.fed != nil {
		return f.fed.GetGlobal(ctx, tenant, id)
	}
	return f.Node.Get(ctx, tenant, id)
}

// List lists this region's items, or, for ?scope=global, every region's.
func (f federated) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	if item.GlobalScope(ctx) && f.fed != nil {
		return f.fed.ListGlobal(ctx, tenant, opts)
	}
	return f.Node.List(ctx, tenant, opts)
}

// ItemMeta implements item.MetaReader (?meta=versions). Without a
// federation there is one region, and the item's version is its vector.
func (f federated) ItemMeta(ctx context.Context, tenant, id string) (*item.Meta, error) {
	if f.fed == nil {
		it, err := f.Node.Get(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		return &item.Meta{Versions: map[string]string{"": it.Version}}, nil
	}
	return f.fed.ItemMeta(ctx, tenant, id)
}

func (f federated) Metrics() nodestats.Snapshot {
	s := f.Node.Metrics()
	if f.fed != nil {
		s.Federation = f.fed.Stats()
	}
	if f.sync != nil {
		s.Sync = f.sync.Stats()
	}
	return s
}

// directory adapts the gossip membership to the cluster's view of it:
// the cores alive or suspected, as peers. (The cluster counts them only
// once their certificates prove who they are: cluster/verify.go.)
type directory struct{ m *membership.Membership }

func (d directory) Members() []cluster.Peer {
	var out []cluster.Peer
	for _, m := range d.m.Members() {
		if !membership.IsCore(m.Meta.Role) {
			continue
		}
		if m.State == membership.StateAlive || m.State == membership.StateSuspect {
			out = append(out, cluster.Peer{ID: m.Meta.ID, QUICAddr: m.Meta.QUICAddr, Zone: m.Meta.Zone,
				Reader: m.Meta.Role == membership.RoleReader})
		}
	}
	return out
}
