// Command profile is the benchmark driver behind `make bench-profile`
// (scripts/bench-profile.sh builds it and brainy-core, then runs it). It
// starts real brainy-core processes on 127.0.0.91 to 127.0.0.94 and drives
// them with the loadtest package (brainy-loadtest's engine, in process),
// measuring two things in one run:
//
//  1. profile: a read-heavy zipfian load (θ = 0.99, 95% GET / 5% PUT,
//     default consistency) through all three nodes of a fresh 3-node
//     cluster started with configuration A's extra flags, then the same on
//     a fresh cluster started with configuration B's, alternating A, B, A,
//     B for Rounds rounds. Each run preloads Items items, waits until
//     every node holds them, runs an unreported warm-up (configuration B
//     may tune itself during it; A gets the identical warm-up) and then
//     the measured load. The goal the issue states: B reaches at least
//     1.3× A's req/s with a lower p99. At the end of each B run, each
//     node's "tuning" section of GET /v1/metrics is kept verbatim, if it
//     has one.
//  2. reader: 3 voters under a read-only zipfian load of
//     ?consistency=stale GETs through all three; then a fourth node with
//     --role reader joins, and once it is a learner of every partition
//     (and holds every item), the same load (same total connections)
//     through all four. Read req/s and p99 before and after.
//
// Design notes and invariants:
//
//   - brainy-loadtest drives one target URL per run, so a load "through N
//     nodes" is N loadtest runs side by side, one per node, each with its
//     share of the connections and its own seed; their results are merged
//     with loadtest.Merge (histograms merge exactly, counts add up).
//   - The items workload cannot carry a query string (its target is a
//     base URL), so the stale-read load uses the url workload with the
//     template http://IP:7070/v1/items/PREFIX{key}?consistency=stale.
//   - Every process is started by this program and recorded in a
//     benchproc registry; all of them are stopped by PID on every exit
//     path (including SIGINT and SIGTERM). Nothing else is signalled.
//   - Every wait is bounded (Config.MaxRun overall, and a deadline per
//     wait).
//   - Only 127.0.0.91 to 127.0.0.94 are used, and a run refuses to start
//     a node whose ports are already taken.
//   - Progress goes to stderr, the markdown report to stdout.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchproc"
	"github.com/soullabs/brainy/bench/internal/benchrun"
)

// firstIP is the last octet of the first node's address; the nodes take
// firstIP to firstIP+3 (127.0.0.91 to .94).
const firstIP = 91

// Config is one benchmark run. Zero fields take the defaults EnsureDefaults
// documents.
type Config struct {
	// Base: BrainyCore and WorkDir (required), KeepWorkDir, Parts
	// ("profile", "reader"; default both), MaxRun (default 20 min), Log.
	benchrun.Base

	// AArgs and BArgs are configuration A's and B's extra brainy-core
	// flags, split on white space (no quoting).
	AArgs, BArgs string
	// Rounds is how many A, B pairs run. Default 2.
	Rounds int

	// Items is how many items each cluster is preloaded with, and the key
	// space of the loads. Default 100000.
	Items int
	// ValueSize is the size of each item's JSON body in bytes, preloaded
	// and written by the loads. Default 200.
	ValueSize int
	// PreloadConnections is how many concurrent writers preload (spread
	// over the nodes). Default 64.
	PreloadConnections int

	// Duration is each measured load's length. Default 30 s.
	Duration time.Duration
	// Warmup is an unreported load right before each measured one, with
	// the same connections and mix (part of the same loadtest runs). Zero
	// means none; the -warmup flag's default is 20 s.
	Warmup time.Duration
	// Connections is the total of the load's connections, split evenly
	// over the nodes it goes through. Default 48.
	Connections int
	// Entry is how many of the three nodes the profile part's load goes
	// through: 3 (default) spreads it, 1 sends it all to the first node,
	// as clients behind one address would.
	Entry int
	// Theta is the zipfian skew. Default 0.99.
	Theta float64
	// ReadPercent is the profile load's share of GETs (the rest PUTs).
	// Default 95.
	ReadPercent int

	// ReadyTimeout bounds each wait for a cluster (ready, items
	// replicated, reader caught up). Default 3 min.
	ReadyTimeout time.Duration
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	c.Base.SetDefaults([]string{"profile", "reader"}, 20*time.Minute)
	if c.Rounds == 0 {
		c.Rounds = 2
	}
	if c.Items == 0 {
		c.Items = 100000
	}
	if c.ValueSize == 0 {
		c.ValueSize = 200
	}
	if c.PreloadConnections == 0 {
		c.PreloadConnections = 64
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Entry == 0 {
		c.Entry = 3
	}
	if c.Connections == 0 {
		c.Connections = 48
	}
	if c.Theta == 0 {
		c.Theta = 0.99
	}
	if c.ReadPercent == 0 {
		c.ReadPercent = 95
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 3 * time.Minute
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	errs := c.Base.Check()
	for _, p := range c.Parts {
		switch p {
		case "profile", "reader":
		default:
			errs = append(errs, fmt.Errorf("unknown part %q: want profile or reader", p))
		}
	}
	if c.Rounds < 1 || c.Items < 1 || c.ValueSize < 64 || c.PreloadConnections < 1 || c.Connections < 4 || c.Entry < 1 || c.Entry > 3 {
		errs = append(errs, errors.New("rounds, items and preload connections must be positive, the value size at least 64 bytes (the JSON envelope), connections at least 4 (one per node)"))
	}
	if c.Duration <= 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("the duration must be positive and the warm-up not negative"))
	}
	if !(c.Theta > 0 && c.Theta < 1) {
		errs = append(errs, fmt.Errorf("theta %v: want a number in (0, 1)", c.Theta))
	}
	if c.ReadPercent < 1 || c.ReadPercent > 100 {
		errs = append(errs, fmt.Errorf("read percent %d: want 1 to 100", c.ReadPercent))
	}
	return errors.Join(errs...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c Config
	cmd := benchrun.NewCommand("bench-profile", stderr, &c.Base, "profile,reader", 20*time.Minute)
	cmd.NoArgs = true
	fs := cmd.Flags
	fs.StringVar(&c.AArgs, "a-args", "--profile balanced", "configuration A's extra brainy-core `flags`")
	fs.StringVar(&c.BArgs, "b-args", "--profile auto", "configuration B's extra brainy-core `flags`")
	fs.IntVar(&c.Rounds, "rounds", 2, "A, B pairs to run")
	fs.IntVar(&c.Items, "items", 100000, "items preloaded (the loads' key space)")
	fs.IntVar(&c.ValueSize, "value-size", 200, "JSON body size of each item in bytes")
	fs.IntVar(&c.PreloadConnections, "preload-connections", 64, "concurrent preload writers")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "length of each measured load")
	fs.DurationVar(&c.Warmup, "warmup", 20*time.Second, "unreported load before each measured one")
	fs.IntVar(&c.Connections, "connections", 48, "total load connections, split over the nodes")
	fs.IntVar(&c.Entry, "entry", 3, "nodes the profile load goes through (1 to 3)")
	fs.Float64Var(&c.Theta, "theta", 0.99, "zipfian skew")
	fs.IntVar(&c.ReadPercent, "read-percent", 95, "share of GETs in the profile load")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", 3*time.Minute, "longest wait for a cluster to be ready")
	if status, ok := cmd.Setup(args, &c); !ok {
		return status
	}
	b := &bench{cfg: c, log: c.Log, procs: benchproc.NewRegistry(c.Log)}
	return cmd.Run(b.procs, b.run, func() { b.summary(stdout) })
}
