// Command objwrites measures how many object-store writes brainy-core
// makes per item added, end to end: the real brainy-core binary with
// --storage s3://… on an S3-compatible server, loaded over HTTP.
// scripts/bench-objstore-writes.sh (make bench-objstore-writes) builds it
// and brainy-core, provisions versitygw and runs it.
//
// For each run (a node count and a writer count) it:
//
//  1. starts a counting reverse proxy in front of the S3 server, so that
//     every request a node makes is seen and classified: PutObject of a
//     segment (seg/), a checkpoint (ckpt/), the MANIFEST, a claim record
//     (_cluster/, a node's prefix claim and its renewals), and so on;
//  2. starts the nodes (one, or a cluster on 127.0.0.x with --peers), each
//     on its own fresh prefix of the bucket, through the proxy, and waits
//     until they are ready (a cluster: every partition with its voters and
//     one leader), then for the bucket to be quiet;
//  3. adds Items items (POST /v1/items, a ValueSize-byte value each) from
//     Writers concurrent HTTP clients, each sending its next add once the
//     last one is answered, or Pace after that (a cluster: writer w talks
//     to node w mod N);
//  4. counts the Puts from the first add until Settle after the last
//     answer (so that writes the load caused but a timer delayed count
//     too), and reports items acknowledged (201), Puts by class, Puts per
//     acknowledged item and items per second;
//  5. optionally counts the Puts of Idle more seconds without load;
//  6. stops the nodes and deletes their objects.
//
// Every process is started by this program and stopped by PID on every
// exit path; every wait is bounded. Progress goes to stderr, the markdown
// report to stdout.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is one invocation: every combination of Nodes and Writers is a run.
type Config struct {
	// BrainyCore is the brainy-core binary. Required.
	BrainyCore string
	// Endpoint, Bucket, Region, AccessKey, SecretKey name the S3 server
	// and an existing bucket. Required (the script takes them from
	// scripts/services/start-s3.sh).
	Endpoint, Bucket, Region, AccessKey, SecretKey string
	// WorkDir receives the nodes' logs. Required.
	WorkDir string
	// Nodes lists the cluster sizes to run (1: a lone node). Default [1].
	Nodes []int
	// Writers lists the concurrent HTTP writers of each run. Default [16, 64].
	Writers []int
	// Items is how many adds each run sends. Default 2000.
	Items int
	// Pace is how long a writer waits after each answer before its next
	// add. Default 0: closed loop. A pace longer than the store's flush
	// delays measures sparse writes.
	Pace time.Duration
	// ValueSize is the bytes of each item's value. Default 100.
	ValueSize int
	// FirstIP is the last octet of the first 127.0.0.x address the nodes
	// bind (HTTP 7070, QUIC 7071, gossip 7946); node i takes FirstIP+i.
	// Default 61.
	FirstIP int
	// Settle is how long after the last answer Puts still count, and how
	// long the bucket must be quiet before a load starts. Default 1 s.
	Settle time.Duration
	// Idle is how long, after the load, Puts are counted with no load at
	// all (what a quiet node costs). 0 skips it.
	Idle time.Duration
	// MaxRun bounds the whole invocation. Default 20 minutes.
	MaxRun time.Duration
}

func (c *Config) ensureDefaults() {
	if len(c.Nodes) == 0 {
		c.Nodes = []int{1}
	}
	if len(c.Writers) == 0 {
		c.Writers = []int{16, 64}
	}
	if c.Items == 0 {
		c.Items = 2000
	}
	if c.ValueSize == 0 {
		c.ValueSize = 100
	}
	if c.FirstIP == 0 {
		c.FirstIP = 61
	}
	if c.Settle == 0 {
		c.Settle = time.Second
	}
	if c.MaxRun == 0 {
		c.MaxRun = 20 * time.Minute
	}
}

func (c *Config) validate() error {
	var errs []error
	for name, v := range map[string]string{"-brainy-core": c.BrainyCore, "-endpoint": c.Endpoint, "-bucket": c.Bucket,
		"-access-key": c.AccessKey, "-secret-key": c.SecretKey, "-work-dir": c.WorkDir} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	for _, n := range c.Nodes {
		if n < 1 || n > 9 {
			errs = append(errs, fmt.Errorf("nodes (%d) must be 1..9", n))
		}
	}
	for _, w := range c.Writers {
		if w < 1 {
			errs = append(errs, fmt.Errorf("writers (%d) must be >= 1", w))
		}
	}
	if c.Items < 1 {
		errs = append(errs, fmt.Errorf("items (%d) must be >= 1", c.Items))
	}
	if c.FirstIP < 2 || c.FirstIP+9 > 254 {
		errs = append(errs, fmt.Errorf("first-ip (%d) must be 2..245", c.FirstIP))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg Config
	var nodes, writers string
	flag.StringVar(&cfg.BrainyCore, "brainy-core", "", "brainy-core `binary`")
	flag.StringVar(&cfg.Endpoint, "endpoint", os.Getenv("BRAINY_TEST_S3_ENDPOINT"), "S3 server `URL` (default $BRAINY_TEST_S3_ENDPOINT)")
	flag.StringVar(&cfg.Bucket, "bucket", os.Getenv("BRAINY_TEST_S3_BUCKET"), "existing `bucket` (default $BRAINY_TEST_S3_BUCKET)")
	flag.StringVar(&cfg.Region, "region", cmp.Or(os.Getenv("BRAINY_TEST_S3_REGION"), "us-east-1"), "`region` (default $BRAINY_TEST_S3_REGION)")
	flag.StringVar(&cfg.AccessKey, "access-key", os.Getenv("BRAINY_TEST_S3_ACCESS_KEY"), "access `key` (default $BRAINY_TEST_S3_ACCESS_KEY)")
	flag.StringVar(&cfg.SecretKey, "secret-key", os.Getenv("BRAINY_TEST_S3_SECRET_KEY"), "secret `key` (default $BRAINY_TEST_S3_SECRET_KEY)")
	flag.StringVar(&cfg.WorkDir, "work-dir", "", "`directory` for the nodes' logs")
	flag.StringVar(&nodes, "nodes", "1", "comma-separated cluster `sizes` to run")
	flag.StringVar(&writers, "writers", "16,64", "comma-separated concurrent writer `counts` to run")
	flag.IntVar(&cfg.Items, "items", 2000, "adds per run")
	flag.DurationVar(&cfg.Pace, "pace", 0, "each writer waits this long after an answer before its next add (0: closed loop)")
	flag.IntVar(&cfg.ValueSize, "value-size", 100, "value `bytes` of each item")
	flag.IntVar(&cfg.FirstIP, "first-ip", 61, "last `octet` of the first 127.0.0.x the nodes bind")
	flag.DurationVar(&cfg.Settle, "settle", time.Second, "Puts still count this long after the last answer")
	flag.DurationVar(&cfg.Idle, "idle", 0, "after the load, count Puts this long with no load (0: skip)")
	flag.DurationVar(&cfg.MaxRun, "max-run", 20*time.Minute, "bound on the whole invocation")
	flag.Parse()
	var err error
	if cfg.Nodes, err = parseInts(nodes); err != nil {
		fatal(fmt.Errorf("-nodes: %w", err))
	}
	if cfg.Writers, err = parseInts(writers); err != nil {
		fatal(fmt.Errorf("-writers: %w", err))
	}
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), cfg.MaxRun)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var results []result
	var failed error
	for _, n := range cfg.Nodes {
		for _, w := range cfg.Writers {
			r, err := runOne(ctx, log, &cfg, n, w)
			if err != nil {
				failed = errors.Join(failed, fmt.Errorf("%d node(s), %d writers: %w", n, w, err))
				log.Error("run failed", "nodes", n, "writers", w, "err", err)
				if ctx.Err() != nil {
					break
				}
				continue
			}
			results = append(results, r)
		}
	}
	report(os.Stdout, &cfg, results)
	if failed != nil {
		fatal(failed)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "objwrites:", err)
	os.Exit(1)
}
