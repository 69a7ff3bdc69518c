// Command brainy-edge serves the HTTP API v1 at the edge, sending every
// request to the regional cores over QUIC.
//
//	brainy-edge --upstream core1:7071,core2:7071 --tls-dir ./edge-tls
//
// The edge authenticates to the cores with a certificate from the cluster
// CA: copy ca.crt and ca.key from a core's STORAGE/tls into --tls-dir
// before the first start, and the edge issues its own certificate from
// them. Every flag can also be set as BRAINY_EDGE_<NAME> or in a YAML file
// given by --config; run with --help for the list.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/cliconfig"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/upstream"
)

const envPrefix = "BRAINY_EDGE_"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type settings struct {
	bind, httpAddr, upstreams, name, apiKeys, config string
	tlsDir, tlsCert, tlsKey, tlsCA, clusterSecret    string
	logLevel, logFormat                              string
	maxBody, rateBurst                               int
	rateLimit                                        float64
	insecure                                         bool
	callTimeout, writeTimeout, shutdownTimeout       time.Duration
	cacheSize                                        int64
	cacheTTL, negativeTTL                            time.Duration
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-edge", flag.ContinueOnError)
	fs.StringVar(&s.bind, "bind", "127.0.0.1", "`address` the HTTP API binds to (port 8080)")
	fs.StringVar(&s.httpAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:8080")
	fs.StringVar(&s.upstreams, "upstream", "127.0.0.1:7071", "the cores' QUIC `addresses`, comma-separated, tried in order")
	fs.StringVar(&s.tlsDir, "tls-dir", "./brainy-edge-tls", "`directory` holding the cluster's ca.crt and ca.key (copied from a core's STORAGE/tls);\nthe edge's own certificate is created there on first start")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "edge certificate `file` (PEM), with --tls-key and --tls-ca, instead of --tls-dir")
	fs.StringVar(&s.tlsKey, "tls-key", "", "edge private key `file` (PEM)")
	fs.StringVar(&s.tlsCA, "tls-ca", "", "cluster CA certificate `file` (PEM)")
	fs.StringVar(&s.clusterSecret, "cluster-secret", "", "the cores' shared `secret`: the cluster CA is derived from it, instead of --tls-dir")
	fs.StringVar(&s.name, "name", "", "the edge's `name` in its certificate; empty means edge-HOSTNAME")
	fs.StringVar(&s.apiKeys, "api-keys", "", "`file` of \"KEY TENANT\" lines; turns on authentication")
	fs.BoolVar(&s.insecure, "insecure", false, "allow a non-loopback address without API keys")
	fs.Int64Var(&s.cacheSize, "cache-size", daemon.DefaultCacheBytes(), "RAM for cached answers, in `bytes` (default: a quarter of RAM, at most 1 GiB); 0 turns the cache off")
	fs.DurationVar(&s.cacheTTL, "cache-ttl", 60*time.Second, "how long a cached answer is served; only a backstop, since the cores push every change")
	fs.DurationVar(&s.negativeTTL, "negative-ttl", 2*time.Second, "how long a 404 is cached")
	fs.Float64Var(&s.rateLimit, "rate-limit", 0, "item requests per second allowed to each tenant (429 beyond); 0 means no limit")
	fs.IntVar(&s.rateBurst, "rate-burst", 0, "requests a tenant may make at once above its rate; 0 means one second's worth")
	fs.IntVar(&s.maxBody, "max-body-bytes", item.DefaultLimits().MaxBodyBytes, "largest request body accepted, in `bytes`")
	fs.DurationVar(&s.callTimeout, "call-timeout", 5*time.Second, "how long one call to one core may take before the next core is tried")
	fs.DurationVar(&s.writeTimeout, "write-timeout", 10*time.Second, "how long a write may take in all before 503")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for in-flight requests")
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
		cliconfig.Usage(stderr, fs, envPrefix, "Usage: brainy-edge [flags]\n\nServes the HTTP API v1 from the regional cores, over QUIC.")
	}
	if _, err := cliconfig.Parse(fs, args, envPrefix, "config", nil); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "brainy-edge:", err)
		return 2
	}
	log, err := daemon.NewLogger(stderr, s.logLevel, s.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "brainy-edge:", err)
		return 2
	}
	if err := serve(s, log); err != nil {
		log.Error("brainy-edge stopped", "err", err)
		return 1
	}
	return 0
}

func serve(s settings, log *slog.Logger) error {
	if s.httpAddr == "" {
		s.httpAddr = net.JoinHostPort(s.bind, "8080")
	}
	if s.name == "" {
		host, _ := os.Hostname()
		s.name = "edge-" + host
	}
	var addrs []string
	for _, a := range strings.Split(s.upstreams, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("--upstream %q: want host:port", a)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("--upstream: no core address")
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
	files := daemon.TLSFiles{Cert: s.tlsCert, Key: s.tlsKey, CA: s.tlsCA, Secret: []byte(s.clusterSecret)}
	if files.Cert == "" && files.Key == "" && files.CA == "" && len(files.Secret) == 0 {
		// A CA made here would be trusted by no core: insist on the cluster's.
		if _, err := os.Stat(filepath.Join(s.tlsDir, pki.CACertFile)); err != nil {
			return fmt.Errorf("--tls-dir %s holds no %s: copy ca.crt and ca.key from a core's STORAGE/tls there, pass the cores' --cluster-secret, or pass --tls-cert, --tls-key and --tls-ca",
				s.tlsDir, pki.CACertFile)
		}
	}
	tlsConf, err := daemon.ClusterTLS(files, s.tlsDir, s.name, nil)
	if err != nil {
		return fmt.Errorf("cluster credentials: %w", err)
	}
	log.Info("starting", "component", "main", "http_addr", s.httpAddr, "upstream", strings.Join(addrs, ","),
		"name", s.name, "api_keys", keys.Len(), "insecure", s.insecure, "call_timeout", s.callTimeout,
		"cache_bytes", s.cacheSize, "cache_ttl", s.cacheTTL, "negative_ttl", s.negativeTTL)
	var cache *edge.Cache
	if s.cacheSize > 0 {
		if cache, err = edge.NewCache(edge.CacheConfig{MaxBytes: s.cacheSize, TTL: s.cacheTTL, NegativeTTL: s.negativeTTL}); err != nil {
			return err
		}
		defer cache.Close()
	}

	qcfg := transport.DefaultConfig(tlsConf)
	qcfg.ListenAddr = net.JoinHostPort(clientHost(addrs[0]), "0")
	qcfg.Logger = log
	client, err := transport.NewClient(qcfg)
	if err != nil {
		return fmt.Errorf("quic: %w", err)
	}
	defer client.Close()
	ucfg := upstream.Config{Addrs: addrs, Client: client, CallTimeout: s.callTimeout, Logger: log}
	if cache != nil {
		ucfg.OnChanges = cache.Apply
	}
	be, err := upstream.New(ucfg)
	if err != nil {
		return err
	}
	h, err := edge.NewHandler(edge.Config{Limits: limits, APIKeys: keys, WriteTimeout: s.writeTimeout, Logger: log,
		RateLimit: s.rateLimit, RateBurst: s.rateBurst, Cache: cache}, be)
	if err != nil {
		return err
	}
	srv := edge.NewServer(edge.ServerConfig{}, h)
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "component", "main", "http_addr", ln.Addr().String())
	if err := daemon.Run(ln, srv, s.shutdownTimeout, log); err != nil {
		return err
	}
	log.Info("stopped", "component", "main")
	return nil
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
