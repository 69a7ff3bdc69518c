package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

// Defaults of the Config fields.
const (
	DefaultBind     = "127.0.0.1"
	DefaultHTTPPort = "8080"
	DefaultUpstream = "127.0.0.1:7071"
	DefaultTLSDir   = "./brainy-edge-tls"
	// DefaultCoreHTTPPort is where an edge enrols when EnrolAddr is empty:
	// the cores' default HTTP port.
	DefaultCoreHTTPPort    = "7070"
	DefaultShutdownTimeout = 10 * time.Second
)

// DefaultCacheBytes is the default Config.CacheBytes: a quarter of the
// machine's RAM, at most 1 GiB (64 MiB where RAM cannot be read).
func DefaultCacheBytes() int64 {
	ram := totalRAM()
	if ram <= 0 {
		return 64 << 20
	}
	return min(ram/4, 1<<30)
}

// Config configures an edge. Each field names the brainy-edge flag that
// sets it; zero fields take the defaults given, except where noted.
type Config struct {
	// Bind is the address the HTTP API binds to (--bind). Default
	// "127.0.0.1": loopback, so nothing is exposed by accident.
	Bind string
	// HTTPAddr is the HTTP API's host:port (--http-addr). Default
	// Bind:8080.
	HTTPAddr string
	// Upstreams are the cores' QUIC addresses, host:port, tried in order
	// (--upstream). Default ["127.0.0.1:7071"], a core on this host.
	Upstreams []string
	// Name is the edge's name in its certificate (--name). Default
	// "edge-" + the host name.
	Name string

	// TLSDir holds the edge's certificate and key and the cluster's
	// ca.crt (--tls-dir): written by enrolment (JoinToken), or made on
	// first start from a ca.crt and ca.key copied there from a core.
	// Default "./brainy-edge-tls". Not used when ClusterSecret or the
	// three TLS files are set.
	TLSDir string
	// JoinToken enrols the edge on first start (--join-token): made by
	// `brainy-core edge-token` on a core, it gets the edge a certificate of
	// its own, kept in TLSDir, without the edge ever holding the CA key.
	// Ignored once TLSDir holds a certificate.
	JoinToken string
	// EnrolAddr is the HTTP address (host:port or URL) of a core to enrol
	// at (--enrol-addr). Default: the first upstream's host, port
	// DefaultCoreHTTPPort.
	EnrolAddr string
	// TLSCert, TLSKey and TLSCA name the edge's certificate, its key and
	// the cluster CA, PEM files, instead of TLSDir (--tls-cert, --tls-key,
	// --tls-ca). All three or none.
	TLSCert, TLSKey, TLSCA string
	// ClusterSecret is the cores' shared secret; the cluster CA is derived
	// from it instead of read from TLSDir (--cluster-secret). It gives the
	// edge the CA key, so every power a core has: for edges you trust as
	// much as cores; others enrol (JoinToken).
	ClusterSecret string

	// APIKeys names a file of "KEY TENANT" lines; it turns authentication
	// on (--api-keys). Empty: no authentication, allowed on loopback only
	// unless Insecure.
	APIKeys string
	// Insecure allows a non-loopback HTTPAddr without API keys (--insecure),
	// and DebugAddr off loopback.
	Insecure bool
	// DebugAddr serves Go's /debug/pprof profiles on its own listener
	// (--debug-addr); empty means off. Loopback only unless Insecure.
	DebugAddr string
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

	// CacheBytes is the RAM for cached answers (--cache-size). Zero turns
	// the cache off; the flag's default is DefaultCacheBytes().
	CacheBytes int64
	// CacheTTL is how long a cached answer is served (--cache-ttl):
	// only a backstop, since the cores push every change. Default
	// DefaultCacheTTL (60 s).
	CacheTTL time.Duration
	// NegativeTTL is how long a 404 is cached (--negative-ttl). Default
	// DefaultNegativeTTL (2 s).
	NegativeTTL time.Duration

	// CallTimeout bounds one call to one core before the next is tried
	// (--call-timeout). Default upstream.DefaultCallTimeout (5 s).
	CallTimeout time.Duration
	// FeedLease is how long the cache trusts a core's change feed without
	// hearing from it (--feed-lease): past it, cached answers are
	// revalidated and the core is skipped. It bounds how long a core's
	// silent death can leave a rewritten item served as a fresh hit.
	// Default upstream.DefaultFeedLease (500 ms).
	FeedLease time.Duration
	// WriteTimeout bounds a write in all before 503 (--write-timeout).
	// Default httpapi.DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// ShutdownTimeout is how long Run's shutdown waits for in-flight
	// requests (--shutdown-timeout). Default 10 s.
	ShutdownTimeout time.Duration

	// Logger receives the edge's events. Nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = net.JoinHostPort(c.Bind, DefaultHTTPPort)
	}
	if len(c.Upstreams) == 0 {
		c.Upstreams = []string{DefaultUpstream}
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = "edge-" + host
	}
	if c.TLSDir == "" {
		c.TLSDir = DefaultTLSDir
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = item.DefaultLimits().MaxBodyBytes
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = upstream.DefaultCallTimeout
	}
	if c.FeedLease == 0 {
		c.FeedLease = upstream.DefaultFeedLease
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

// Validate reports every problem with c at once. Call EnsureDefaults first.
func (c *Config) Validate() error {
	var errs []error
	for _, a := range c.Upstreams {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("--upstream %q: want host:port", a))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("--http-addr %q: want host:port", c.HTTPAddr))
	}
	if err := daemon.CheckExposure(c.HTTPAddr, c.APIKeys != "", c.Insecure); err != nil {
		errs = append(errs, err)
	}
	if c.DebugAddr != "" && !daemon.IsLoopback(c.DebugAddr) && !c.Insecure {
		errs = append(errs, fmt.Errorf("refusing to serve profiles on %s: --debug-addr must be a loopback address unless --insecure is given", c.DebugAddr))
	}
	if c.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("--cache-size %d: want 0 (off) or more bytes", c.CacheBytes))
	}
	if c.MaxBodyBytes < 0 || c.MaxConnsPerIP < 0 || c.RateLimit < 0 || c.RateBurst < 0 {
		errs = append(errs, errors.New("--max-body-bytes, --max-conns-per-ip, --rate-limit and --rate-burst cannot be negative"))
	}
	return errors.Join(errs...)
}

// Edge is a running brainy-edge: the HTTP API in front of its cache and
// the upstream cores.
type Edge struct {
	cfg      Config
	log      *slog.Logger
	cache    *Cache // nil when off
	client   *transport.Client
	upstream *upstream.Backend
	srv      *httpapi.Server
	ln       net.Listener
	debugLn  net.Listener // nil without DebugAddr
}

// New assembles an edge and binds its HTTP listener; Run serves.
func New(ctx context.Context, cfg Config) (*Edge, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	limits := item.DefaultLimits()
	limits.MaxBodyBytes = cfg.MaxBodyBytes
	keys, err := httpapi.LoadAPIKeys(cfg.APIKeys, &limits)
	if err != nil {
		return nil, fmt.Errorf("--api-keys: %w", err)
	}
	tlsConf, err := credentials(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, log: cfg.Logger}
	e.log.Info("starting", "component", "main", "http_addr", cfg.HTTPAddr, "upstream", cfg.Upstreams,
		"name", cfg.Name, "api_keys", keys.Len(), "insecure", cfg.Insecure, "call_timeout", cfg.CallTimeout, "feed_lease", cfg.FeedLease,
		"cache_bytes", cfg.CacheBytes, "cache_ttl", cfg.CacheTTL, "negative_ttl", cfg.NegativeTTL)
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	hcfg := httpapi.Config{Limits: limits, APIKeys: keys, WriteTimeout: cfg.WriteTimeout, Logger: cfg.Logger,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, Edge: true}
	if cfg.CacheBytes > 0 {
		if e.cache, err = NewCache(CacheConfig{MaxBytes: cfg.CacheBytes, TTL: cfg.CacheTTL, NegativeTTL: cfg.NegativeTTL}); err != nil {
			return nil, err
		}
		hcfg.Cache = e.cache
		hcfg.EnsureDefaults() // the registry the cache's metrics go to
		if err := e.cache.RegisterMetrics(hcfg.Registry); err != nil {
			return nil, err
		}
	}
	qcfg := transport.DefaultConfig(tlsConf)
	qcfg.ListenAddr = net.JoinHostPort(clientHost(cfg.Upstreams[0]), "0")
	qcfg.Logger = cfg.Logger
	if e.client, err = transport.NewClient(qcfg); err != nil {
		return nil, fmt.Errorf("quic: %w", err)
	}
	ucfg := upstream.Config{Addrs: cfg.Upstreams, Client: e.client, CallTimeout: cfg.CallTimeout, FeedLease: cfg.FeedLease, Logger: cfg.Logger, Route: true, ProbeInterval: upstream.DefaultProbeInterval}
	if e.cache != nil {
		ucfg.OnChanges = e.cache.Apply
	}
	if e.upstream, err = upstream.New(ucfg); err != nil {
		return nil, err
	}
	be := e.upstream
	h, err := httpapi.NewHandler(hcfg, be)
	if err != nil {
		return nil, err
	}
	e.srv = httpapi.NewServer(httpapi.ServerConfig{MaxConnsPerIP: cfg.MaxConnsPerIP}, h)
	if e.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.DebugAddr != "" {
		if e.debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return nil, fmt.Errorf("--debug-addr: %w", err)
		}
		e.log.Info("serving profiles", "component", "main", "debug_addr", e.debugLn.Addr().String())
		go http.Serve(e.debugLn, daemon.DebugMux())
	}
	ok = true
	return e, nil
}

// credentials returns the edge's mutual-TLS configuration. An edge never
// makes a CA of its own (one made here would be trusted by no core). With
// no TLS setting and only loopback cores, it issues itself an edge
// certificate from this user's per-host secret, as the cores on this host
// derive theirs (daemon.HostSecret): nothing to copy, and the CA it
// derives stays in memory.
func credentials(ctx context.Context, cfg Config) (*tls.Config, error) {
	files := daemon.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, Secret: []byte(cfg.ClusterSecret)}
	if files.Cert == "" && files.Key == "" && files.CA == "" && len(files.Secret) == 0 {
		if cfg.JoinToken != "" {
			if err := enrol(ctx, cfg); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.TLSDir, pki.CACertFile)); err != nil {
			if !allLoopback(cfg.Upstreams) {
				return nil, fmt.Errorf("%w: --tls-dir %s holds no %s: enrol with --join-token (run `brainy-core edge-token` on a core), or pass --tls-cert, --tls-key and --tls-ca",
					errNoCredentials, cfg.TLSDir, pki.CACertFile)
			}
			return hostCredentials(cfg)
		}
	}
	tlsConf, err := daemon.ClusterTLS(files, pki.RoleEdge, cfg.TLSDir, cfg.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("cluster credentials: %w", err)
	}
	return tlsConf, nil
}

// hostCredentials issues the edge a certificate from the per-host secret.
func hostCredentials(cfg Config) (*tls.Config, error) {
	secret, path, err := daemon.HostSecret()
	if err != nil {
		return nil, fmt.Errorf("cluster credentials: %w", err)
	}
	ca, err := pki.DeriveCA(secret)
	if err != nil {
		return nil, fmt.Errorf("cluster credentials from %s: %w", path, err)
	}
	b, err := ca.NewBundleRole(pki.RoleEdge, cfg.Name, nil)
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("edge certificate issued from the per-host secret", "component", "main", "file", path)
	return b.TLSConfig(), nil
}

func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		if !daemon.IsLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}

// HTTPAddr returns the address the HTTP API listens on.
func (e *Edge) HTTPAddr() string { return e.ln.Addr().String() }

// Run serves until ctx ends, then shuts down: in-flight requests finish
// (within ShutdownTimeout), the connections to the cores close.
func (e *Edge) Run(ctx context.Context) error {
	e.log.Info("listening", "component", "main", "http_addr", e.HTTPAddr())
	err := daemon.ServeUntil(ctx, e.ln, e.srv, e.cfg.ShutdownTimeout, e.log)
	e.close()
	if err == nil {
		e.log.Info("stopped", "component", "main")
	}
	return err
}

func (e *Edge) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	if e.debugLn != nil {
		e.debugLn.Close()
	}
	if e.upstream != nil {
		e.upstream.Close()
	}
	if e.client != nil {
		e.client.Close()
	}
	if e.cache != nil {
		e.cache.Close()
	}
}

// clientHost picks the local address the QUIC client binds: loopback for
// loopback cores (so an edge on loopback never sends elsewhere), any
// address otherwise.
func clientHost(upstream string) string {
	if daemon.IsLoopback(upstream) {
		return "127.0.0.1"
	}
	return "0.0.0.0"
}
