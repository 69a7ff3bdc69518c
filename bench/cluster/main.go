// Command cluster is the cluster benchmark driver behind `make
// bench-cluster` (scripts/bench-cluster.sh builds it and brainy-core, then
// runs it). It starts real processes on loopback addresses and measures,
// in one run:
//
//  1. Failover: in a 3-node brainy-core cluster, PUTs aimed at one
//     partition P go through a node that does not lead P; P's leader is
//     killed with SIGKILL, and the time from the kill to the first PUT sent
//     after it that succeeds is one failover time. The killed node is then
//     restarted with the same command and the cluster waited for until it
//     is healthy again (every partition with 3 voters, no learners, an
//     agreed leader that stays put). Repeated for several partitions,
//     rotating the node killed.
//  2. Replicated durable writes: the same wrk load (scripts/bench/kv.lua,
//     PUT of 100-byte values at 64 connections) against the 3-node brainy
//     cluster and against a 3-member etcd 3.4 cluster (default fsync), each
//     through its first node.
//  3. Rebalance: a fourth node joins a 3-node cluster holding 100,000
//     items; the time until every partition has exactly the voters
//     rendezvous placement gives it among the 4 nodes (so the new node
//     holds its share) and no learners, while a light paced foreground load
//     of reads and writes runs, whose latency is reported.
//
// Design notes and invariants:
//
//   - Every process is started by this program and recorded in a registry;
//     all of them are stopped by PID on every exit path (including SIGINT
//     and SIGTERM), and the work directory is removed. Nothing else is ever
//     signalled.
//   - Every wait is bounded (Config.MaxRun overall, and a deadline per
//     wait), so a cluster that never heals ends the run with an error
//     instead of hanging it.
//   - Failover load is paced, not closed-loop: a PUT is launched every
//     FailoverInterval whatever happened to earlier ones, each with the
//     short RequestTimeout. A closed-loop writer stuck in a request sent
//     just after the kill would only notice the new leader when its
//     timeout expires, adding up to a whole timeout to the measurement;
//     paced launches bound that error by the interval instead.
//   - Only requests sent after the kill count, so a request acknowledged
//     by the old leader just before it died never shortens a failover.
//   - Progress goes to stderr, the markdown summary to stdout.
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

// Config is one benchmark run. Zero fields take the defaults EnsureDefaults
// documents.
type Config struct {
	// Base: BrainyCore and WorkDir (required), KeepWorkDir, Parts (any of
	// "failover", "throughput", "rebalance"; default all three), MaxRun
	// (default 25 min), Log.
	benchrun.Base

	// Etcd is the etcd binary. Default "etcd" (from PATH).
	Etcd string
	// Wrk is the wrk binary. Default "wrk".
	Wrk string
	// WrkScript is scripts/bench/kv.lua. Required for the throughput part.
	WrkScript string

	// FirstIP is the last octet of the first 127.0.0.x address; brainy
	// nodes take FirstIP..FirstIP+3 and etcd members FirstIP+10..+12.
	// Default 41.
	FirstIP int

	// Failovers is how many leaders are killed. Default 20.
	Failovers int
	// RequestTimeout bounds each failover PUT. Default 300 ms.
	RequestTimeout time.Duration
	// FailoverInterval is the pace of failover PUTs. Default 5 ms.
	FailoverInterval time.Duration
	// FailoverGiveUp is how long after a kill a failover is declared
	// failed. Default 15 s.
	FailoverGiveUp time.Duration
	// HealTimeout bounds the wait for a healthy cluster. Default 120 s.
	HealTimeout time.Duration

	// Duration of each measured wrk run. Default 20 s.
	Duration time.Duration
	// Warmup is an unreported wrk run before each measured one. Default 3 s.
	Warmup time.Duration
	// Connections and Threads are wrk's -c and -t. Defaults 64 and 2.
	Connections, Threads int
	// Keys is the key space of the wrk PUTs. Default 10000.
	Keys int
	// ValueSize is the value size in bytes. Default 100.
	ValueSize int

	// Items is how many items the rebalance cluster holds. Default 100000.
	Items int
	// ForegroundRate is the foreground load during the rebalance, in
	// requests per second (half reads, half writes). Default 200.
	ForegroundRate int
	// SettleTimeout bounds the wait for placement to settle. Default 5 min.
	SettleTimeout time.Duration
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	c.Base.SetDefaults([]string{"failover", "throughput", "rebalance"}, 25*time.Minute)
	if c.Etcd == "" {
		c.Etcd = "etcd"
	}
	if c.Wrk == "" {
		c.Wrk = "wrk"
	}
	if c.FirstIP == 0 {
		c.FirstIP = 41
	}
	if c.Failovers == 0 {
		c.Failovers = 20
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 300 * time.Millisecond
	}
	if c.FailoverInterval == 0 {
		c.FailoverInterval = 5 * time.Millisecond
	}
	if c.FailoverGiveUp == 0 {
		c.FailoverGiveUp = 15 * time.Second
	}
	if c.HealTimeout == 0 {
		c.HealTimeout = 120 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = 20 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 3 * time.Second
	}
	if c.Connections == 0 {
		c.Connections = 64
	}
	if c.Threads == 0 {
		c.Threads = 2
	}
	if c.Keys == 0 {
		c.Keys = 10000
	}
	if c.ValueSize == 0 {
		c.ValueSize = 100
	}
	if c.Items == 0 {
		c.Items = 100000
	}
	if c.ForegroundRate == 0 {
		c.ForegroundRate = 200
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 5 * time.Minute
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	errs := c.Base.Check()
	for _, p := range c.Parts {
		switch p {
		case "failover", "rebalance":
		case "throughput":
			if c.WrkScript == "" {
				errs = append(errs, errors.New("WrkScript (scripts/bench/kv.lua) is required for the throughput part"))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown part %q: want failover, throughput or rebalance", p))
		}
	}
	if c.FirstIP < 2 || c.FirstIP+12 > 254 {
		errs = append(errs, fmt.Errorf("FirstIP %d: want 2 to 242", c.FirstIP))
	}
	if c.Failovers < 0 || c.Connections < 1 || c.Threads < 1 || c.Keys < 1 || c.ValueSize < 1 || c.Items < 1 || c.ForegroundRate < 1 {
		errs = append(errs, errors.New("counts and sizes must be positive"))
	}
	return errors.Join(errs...)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c Config
	cmd := benchrun.NewCommand("bench-cluster", stderr, &c.Base, "failover,throughput,rebalance", 25*time.Minute)
	fs := cmd.Flags
	fs.StringVar(&c.Etcd, "etcd", "etcd", "etcd `binary`")
	fs.StringVar(&c.Wrk, "wrk", "wrk", "wrk `binary`")
	fs.StringVar(&c.WrkScript, "wrk-script", "", "`path` of scripts/bench/kv.lua")
	fs.IntVar(&c.FirstIP, "first-ip", 41, "last `octet` of the first 127.0.0.x address used")
	fs.IntVar(&c.Failovers, "failovers", 20, "leaders to kill")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 300*time.Millisecond, "timeout of each failover PUT")
	fs.DurationVar(&c.FailoverInterval, "failover-interval", 5*time.Millisecond, "pace of failover PUTs")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "length of each measured wrk run")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unreported wrk run before each measured one")
	fs.IntVar(&c.Connections, "connections", 64, "wrk connections")
	fs.IntVar(&c.Threads, "threads", 2, "wrk threads")
	fs.IntVar(&c.Keys, "keys", 10000, "key space of the wrk PUTs")
	fs.IntVar(&c.ValueSize, "value-size", 100, "value size in bytes")
	fs.IntVar(&c.Items, "items", 100000, "items held by the rebalance cluster")
	fs.IntVar(&c.ForegroundRate, "foreground-rate", 200, "foreground requests per second during the rebalance")
	fs.DurationVar(&c.SettleTimeout, "settle-timeout", 5*time.Minute, "longest wait for placement to settle")
	if status, ok := cmd.Setup(args, &c); !ok {
		return status
	}
	b := &bench{cfg: c, log: c.Log, procs: benchproc.NewRegistry(c.Log)}
	return cmd.Run(b.procs, b.run, func() { b.summary(stdout) })
}
