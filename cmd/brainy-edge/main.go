// Command brainy-edge serves the HTTP API v1 at the edge, from a RAM cache
// in front of the regional cores, which it reaches over QUIC (package
// edge).
//
//	brainy-edge --upstream 127.0.0.1:7071                      # cores on this host: nothing else
//	brainy-edge --upstream core1:7071,core2:7071 --join-token "$TOKEN"
//
// The edge authenticates to the cores with an edge certificate from the
// cluster CA. With cores on loopback and no TLS setting, it issues itself
// one from this user's per-host secret, as those cores derive their CA.
// Elsewhere it enrols once: `brainy-core edge-token` on a core prints a
// token; given it, the edge makes a key, has a core sign it, and keeps its
// certificate in --tls-dir (never the CA key). Every flag can also be set
// as BRAINY_EDGE_<NAME> or in a YAML file given by --config; run with
// --help for the list.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/cliconfig"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/upstream"
)

func main() {
	var cfg edge.Config
	var logLevel, logFormat string
	os.Exit(daemon.Main(daemon.Command{
		Name: "brainy-edge", EnvPrefix: "BRAINY_EDGE_",
		Synopsis: "Usage: brainy-edge [flags]\n\nServes the HTTP API v1 from the regional cores, over QUIC.",
		Flags:    flags(&cfg, &logLevel, &logFormat), LogLevel: &logLevel, LogFormat: &logFormat,
		Run: func(ctx context.Context, log *slog.Logger, _ map[string]cliconfig.Source) error {
			cfg.Logger = log
			e, err := edge.New(ctx, cfg)
			if err != nil {
				return err
			}
			return e.Run(ctx)
		},
	}, os.Args[1:], os.Stderr))
}

func flags(c *edge.Config, logLevel, logFormat *string) *flag.FlagSet {
	fs := flag.NewFlagSet("brainy-edge", flag.ContinueOnError)
	fs.StringVar(&c.Bind, "bind", edge.DefaultBind, "`address` the HTTP API binds to (port "+edge.DefaultHTTPPort+")")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "HTTP API listen `host:port`; empty means BIND:"+edge.DefaultHTTPPort)
	c.Upstreams = []string{edge.DefaultUpstream}
	fs.Var((*cliconfig.List)(&c.Upstreams), "upstream", "the cores' QUIC `addresses`, comma-separated, tried in order")
	fs.StringVar(&c.TLSDir, "tls-dir", edge.DefaultTLSDir, "`directory` holding the edge's certificate and the cluster's ca.crt, written by enrolment (--join-token).\nNot needed for cores on loopback")
	fs.StringVar(&c.JoinToken, "join-token", "", "enrolment `token` from `brainy-core edge-token`: on first start the edge gets its certificate\nfrom a core (at --enrol-addr) and keeps it in --tls-dir")
	fs.StringVar(&c.EnrolAddr, "enrol-addr", "", "a core's HTTP `address` (host:port or URL) to enrol at; empty means the first upstream's host, port "+edge.DefaultCoreHTTPPort)
	fs.StringVar(&c.TLSCert, "tls-cert", "", "edge certificate `file` (PEM), with --tls-key and --tls-ca, instead of --tls-dir")
	fs.StringVar(&c.TLSKey, "tls-key", "", "edge private key `file` (PEM)")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "cluster CA certificate `file` (PEM)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", "", "the cores' shared `secret`: the cluster CA is derived from it, instead of --tls-dir.\nIt gives the edge a core's powers: prefer --join-token")
	fs.StringVar(&c.Name, "name", "", "the edge's `name` in its certificate; empty means edge-HOSTNAME")
	fs.StringVar(&c.APIKeys, "api-keys", "", "`file` of \"KEY TENANT\" lines (\"KEY TENANT admin\" may also read metrics); turns on authentication")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow a non-loopback address without API keys")
	fs.Int64Var(&c.CacheBytes, "cache-size", edge.DefaultCacheBytes(), "RAM for cached answers, in `bytes` (default: a quarter of RAM, at most 1 GiB); 0 turns the cache off")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", edge.DefaultCacheTTL, "how long a cached answer is served; only a backstop, since the cores push every change")
	fs.DurationVar(&c.NegativeTTL, "negative-ttl", edge.DefaultNegativeTTL, "how long a 404 is cached")
	fs.Float64Var(&c.RateLimit, "rate-limit", 0, "item requests per second allowed to each tenant (429 beyond); 0 means no limit")
	fs.IntVar(&c.RateBurst, "rate-burst", 0, "requests a tenant may make at once above its rate; 0 means one second's worth")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", item.DefaultLimits().MaxBodyBytes, "largest request body accepted, in `bytes`")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", httpapi.DefaultMaxConnsPerIP, "HTTP connections one client address may hold open (429 beyond); behind a proxy, its connection count")
	fs.DurationVar(&c.CallTimeout, "call-timeout", upstream.DefaultCallTimeout, "how long one call to one core may take before the next core is tried")
	fs.DurationVar(&c.FeedLease, "feed-lease", upstream.DefaultFeedLease, "how long cached answers stay trusted when the core pushing changes falls silent\n(cores push at least every "+wire.FeedHeartbeat.String()+")")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", httpapi.DefaultWriteTimeout, "how long a write may take in all before 503")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", edge.DefaultShutdownTimeout, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "`host:port` serving Go's /debug/pprof profiles; empty means off; loopback only unless --insecure")
	fs.StringVar(logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(logFormat, "log-format", "text", "text or json")
	fs.String("config", "", "YAML `file` of settings (keys are flag names)")
	return fs
}
