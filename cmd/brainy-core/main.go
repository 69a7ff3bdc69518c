// Command brainy-core runs a Brainy node: the HTTP API v1 on local storage.
//
//	go run ./cmd/brainy-core                       # 127.0.0.1:7070, ./brainy-data
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
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/cliconfig"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers/backend"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

type settings struct {
	bind, httpAddr, storage, apiKeys, nodeID, config string
	debugAddr                                        string
	logLevel, logFormat                              string
	partitions, maxBody                              int
	insecure                                         bool
	shutdownTimeout, writeTimeout                    time.Duration
}

func flags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-core", flag.ContinueOnError)
	fs.StringVar(&s.bind, "bind", "127.0.0.1", "`address` every listener binds to (the HTTP API on port 7070)")
	fs.StringVar(&s.httpAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:7070")
	fs.StringVar(&s.storage, "storage", "./brainy-data", "where data lives: a `directory` (durable), or \"memory\"")
	fs.IntVar(&s.partitions, "partitions", core.DefaultPartitions, "partitions of a new store; fixed once the store exists")
	fs.StringVar(&s.apiKeys, "api-keys", "", "`file` of \"KEY TENANT\" lines; turns on authentication")
	fs.BoolVar(&s.insecure, "insecure", false, "allow a non-loopback address without API keys")
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
		cliconfig.Usage(stderr, fs, "BRAINY_", "Usage: brainy-core [flags]\n\nRuns a Brainy node serving the HTTP API v1.")
	}
	sources, err := cliconfig.Parse(fs, args, "BRAINY_", "config", nil)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "brainy-core:", err)
		return 2
	}
	log, err := newLogger(stderr, s.logLevel, s.logFormat)
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
	limits := item.DefaultLimits()
	limits.MaxBodyBytes = s.maxBody
	var keys *edge.APIKeys
	if s.apiKeys != "" {
		f, err := os.Open(s.apiKeys)
		if err != nil {
			return fmt.Errorf("--api-keys: %w", err)
		}
		keys, err = edge.ParseAPIKeys(f, &limits)
		f.Close()
		if err != nil {
			return fmt.Errorf("--api-keys %s: %w", s.apiKeys, err)
		}
	}
	if !isLoopback(s.httpAddr) && keys.Len() == 0 && !s.insecure {
		return fmt.Errorf("refusing to serve on %s without API keys: pass --api-keys FILE, or --insecure to serve unauthenticated", s.httpAddr)
	}
	if s.debugAddr != "" && !isLoopback(s.debugAddr) && !s.insecure {
		return fmt.Errorf("refusing to serve profiles on %s: --debug-addr must be a loopback address unless --insecure is given", s.debugAddr)
	}
	spec, err := backend.Parse(s.storage)
	if err != nil {
		return err
	}
	log.Info("starting", "component", "main", "http_addr", s.httpAddr, "storage", spec.String(),
		"partitions", s.partitions, "api_keys", keys.Len(), "insecure", s.insecure,
		"max_body_bytes", s.maxBody, "write_timeout", s.writeTimeout, "shutdown_timeout", s.shutdownTimeout,
		"config", s.config, "set_by", setBy(sources))

	store, err := backend.Open(spec, log)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx := context.Background()
	node, err := core.Open(ctx, core.Config{Store: store, StorageLocation: spec.Path, NodeID: s.nodeID,
		Partitions: s.partitions, Limits: limits, Logger: log})
	if err != nil {
		return err
	}
	defer node.Close()
	h, err := edge.NewHandler(edge.Config{Limits: limits, APIKeys: keys, WriteTimeout: s.writeTimeout, Logger: log}, node)
	if err != nil {
		return err
	}
	srv := edge.NewServer(edge.ServerConfig{}, h)
	ln, err := net.Listen("tcp", s.httpAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("listening", "component", "main", "node", node.ID(), "http_addr", ln.Addr().String())
	if s.debugAddr != "" {
		dln, err := net.Listen("tcp", s.debugAddr)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer dln.Close()
		log.Info("serving profiles", "component", "main", "debug_addr", dln.Addr().String())
		go http.Serve(dln, debugMux())
	}

	sig, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-sig.Done():
	}
	log.Info("shutting down", "component", "main")
	sctx, cancel := context.WithTimeout(ctx, s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in-flight requests", "component", "main", "err", err)
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

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}
