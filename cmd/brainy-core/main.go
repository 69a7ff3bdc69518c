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
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	tlsDir, tlsCert, tlsKey, tlsCA                             string
	debugAddr, logLevel, logFormat                             string
	partitions, maxBody, rateBurst                             int
	rateLimit                                                  float64
	insecure                                                   bool
	shutdownTimeout, writeTimeout                              time.Duration
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-core", flag.ContinueOnError)
	fs.StringVar(&s.bind, "bind", "127.0.0.1", "`address` every listener binds to (HTTP API on port 7070, QUIC on 7071)")
	fs.StringVar(&s.httpAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:7070")
	fs.StringVar(&s.quicAddr, "quic-addr", "", "QUIC listen `host:port` (UDP) for edges and peers; empty means BIND:7071")
	fs.StringVar(&s.storage, "storage", "./brainy-data", "where data lives: a `directory` (durable), or \"memory\"")
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
	spec, err := backend.Parse(s.storage)
	if err != nil {
		return err
	}
	if s.tlsDir == "" && spec.Kind == "disk" {
		s.tlsDir = filepath.Join(spec.Path, "tls")
	}
	log.Info("starting", "component", "main", "http_addr", s.httpAddr, "quic_addr", s.quicAddr, "storage", spec.String(),
		"partitions", s.partitions, "api_keys", keys.Len(), "insecure", s.insecure, "tls_dir", s.tlsDir,
		"max_body_bytes", s.maxBody, "write_timeout", s.writeTimeout, "shutdown_timeout", s.shutdownTimeout,
		"config", s.config, "set_by", setBy(sources))

	store, err := backend.Open(spec, log)
	if err != nil {
		return err
	}
	defer store.Close()
	// The pebble store keeps its files beside the tls directory; pebble
	// ignores what it does not own.
	node, err := core.Open(context.Background(), core.Config{Store: store, StorageLocation: spec.Path, NodeID: s.nodeID,
		Partitions: s.partitions, Limits: limits, Logger: log})
	if err != nil {
		return err
	}
	defer node.Close()

	host, _, _ := net.SplitHostPort(s.quicAddr)
	tlsConf, err := daemon.ClusterTLS(daemon.TLSFiles{Cert: s.tlsCert, Key: s.tlsKey, CA: s.tlsCA}, s.tlsDir, node.ID(), []string{host})
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
	node.RegisterRPC(qsrv)
	go qsrv.Serve(context.Background())

	h, err := edge.NewHandler(edge.Config{Limits: limits, APIKeys: keys, WriteTimeout: s.writeTimeout, Logger: log,
		RateLimit: s.rateLimit, RateBurst: s.rateBurst}, node)
	if err != nil {
		return err
	}
	srv := edge.NewServer(edge.ServerConfig{}, h)
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if s.debugAddr != "" {
		dln, err := net.Listen("tcp", s.debugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer dln.Close()
		log.Info("serving profiles", "component", "main", "debug_addr", dln.Addr().String())
		go http.Serve(dln, debugMux())
	}
	log.Info("listening", "component", "main", "node", node.ID(), "http_addr", ln.Addr().String(), "quic_addr", qsrv.Addr().String())

	if err := daemon.Run(ln, srv, s.shutdownTimeout, log); err != nil {
		return err
	}
	// Edges' calls in flight finish; new ones are refused.
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
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
