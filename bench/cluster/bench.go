package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchproc"
	"github.com/soullabs/brainy/bench/internal/benchrun"
)

// bench is one run: its settings, the processes it started and what it
// measured.
type bench struct {
	cfg   Config
	log   *slog.Logger
	procs *benchproc.Registry
	res   results
}

// results holds every measurement; a part that failed part-way keeps what
// it measured before.
type results struct {
	started   time.Time
	failover  []failoverSample
	brainy    *wrkResult
	etcd      *wrkResult
	rebalance *rebalanceResult
	problems  []string
	// commits and commitWrites are the brainy nodes' storage commits and
	// the writes they carried during the write load (warm-up included),
	// summed over the nodes.
	commits, commitWrites uint64
	// busyWaits counts measurements started on a machine that other
	// work kept busy.
	busyWaits int
}

func (b *bench) run(ctx context.Context) error {
	b.res.started = time.Now()
	if err := mkdirs(b.cfg.WorkDir); err != nil {
		return err
	}
	var errs []error
	fail := func(part string, err error) {
		b.log.Error(part+" failed", "err", err)
		b.res.problems = append(b.res.problems, part+": "+err.Error())
		errs = append(errs, fmt.Errorf("%s: %w", part, err))
	}
	if b.cfg.Has("throughput") || b.cfg.Has("failover") {
		if err := b.threeNodes(ctx); err != nil {
			fail("brainy 3-node cluster", err)
		}
	}
	if b.cfg.Has("throughput") && ctx.Err() == nil {
		if err := b.throughputEtcd(ctx); err != nil {
			fail("etcd throughput", err)
		}
	}
	if b.cfg.Has("rebalance") && ctx.Err() == nil {
		if err := b.rebalance(ctx); err != nil {
			fail("rebalance", err)
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, benchrun.ErrStopped)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d part(s) failed: %v", len(errs), errs)
	}
	return nil
}

// threeNodes runs the brainy throughput measurement on a fresh 3-node
// cluster, then the failovers on the same cluster.
func (b *bench) threeNodes(ctx context.Context) error {
	c := b.newBrainyCluster("brainy3", 3)
	defer c.stop()
	if err := c.start(ctx); err != nil {
		return err
	}
	if b.cfg.Has("throughput") {
		var servers []*benchproc.Proc
		for _, n := range c.nodes {
			servers = append(servers, n.Proc)
		}
		before, _ := c.snapshots(ctx)
		r, err := b.runWrk(ctx, "brainy", "brainy-put", c.nodes[0].URL(""), servers)
		if err != nil {
			return err
		}
		if after, err := c.snapshots(ctx); err == nil && len(after) == len(before) {
			var commits, writes uint64
			for i := range after {
				commits += after[i].Operations.Commits - before[i].Operations.Commits
				writes += after[i].Operations.StoredWrites - before[i].Operations.StoredWrites
			}
			// Counted over the warm-up too; a rate over the measured run
			// only would need a reading between them.
			b.res.commits, b.res.commitWrites = commits, writes
		}
		r.target += " (node n1)"
		b.res.brainy = &r
		if err := c.waitHealthy(ctx, b.cfg.HealTimeout); err != nil {
			return fmt.Errorf("after the write load: %w", err)
		}
	}
	if b.cfg.Has("failover") && b.cfg.Failovers > 0 {
		return b.failovers(ctx, c)
	}
	return nil
}

// percentile returns the nearest-rank q-quantile of d (0 if empty).
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func mkdirs(dir string) error { return os.MkdirAll(dir, 0o755) }

// summary prints the results as markdown.
func (b *bench) summary(w io.Writer) {
	c, r := b.cfg, b.res
	fmt.Fprintf(w, "## Cluster benchmark, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))

	if c.Has("failover") {
		var took []time.Duration
		failed, gaveUp := 0, 0
		var heal []time.Duration
		for _, s := range r.failover {
			took = append(took, s.took)
			heal = append(heal, s.heal)
			failed += s.failed
			if !s.ok {
				gaveUp++
			}
		}
		fmt.Fprintf(w, "### 1. Failover (3 nodes, SIGKILL of a partition leader)\n\n")
		fmt.Fprintf(w, "PUTs to one partition through a node that does not lead it, one launched every %v, each with a %v timeout; time from SIGKILL to the first PUT sent after it that succeeds.\n\n",
			c.FailoverInterval, c.RequestTimeout)
		if len(r.failover) > 0 {
			fmt.Fprintln(w, "| kill | partition | killed | through | new leader | failover ms | failed PUTs | heal s |")
			fmt.Fprintln(w, "|---:|---:|---|---|---|---:|---:|---:|")
			for i, s := range r.failover {
				note := ""
				if !s.ok {
					note = " (gave up)"
				}
				fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s%s | %d | %.1f |\n", i+1, s.partition, s.killed, s.client, s.newLeader, ms(s.took), note, s.failed, s.heal.Seconds())
			}
			fmt.Fprintln(w)
		}
		p99 := percentile(took, 0.99)
		verdict := "NOT met"
		switch {
		case len(took) == 0:
			verdict = "not measured"
		case p99 <= 500*time.Millisecond && gaveUp == 0:
			verdict = "goal <= 500 ms met"
		case p99 < time.Second && gaveUp == 0:
			verdict = "under 1 s, goal 500 ms not met"
		}
		fmt.Fprintf(w, "Failover over %d kills: p50 %s ms, p99 %s ms, max %s ms (%s); %d PUTs failed or timed out in all; %d kills with no success within %v. Heal after restart: p50 %.1f s, max %.1f s.\n\n",
			len(took), ms(percentile(took, 0.5)), ms(p99), ms(percentile(took, 1)), verdict, failed, gaveUp, c.FailoverGiveUp,
			percentile(heal, 0.5).Seconds(), percentile(heal, 1).Seconds())
	}

	if c.Has("throughput") {
		fmt.Fprintf(w, "### 2. Replicated durable PUT: brainy (3 nodes) vs etcd 3.4 (3 members)\n\n")
		fmt.Fprintf(w, "wrk -t%d -c%d -d%ds --latency -s scripts/bench/kv.lua (modes brainy-put / etcd-put), %d keys, %d-byte values, %v unreported warm-up.\n\n",
			c.Threads, c.Connections, int(c.Duration.Seconds()), c.Keys, c.ValueSize, c.Warmup)
		fmt.Fprintln(w, "| store | through | req/s | p50 ms | p99 ms | CPU store | CPU machine | CPU other | errors |")
		fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---|")
		for _, x := range []*wrkResult{r.brainy, r.etcd} {
			if x == nil {
				continue
			}
			errs := "none"
			if x.non2xx > 0 || x.sockErrors != "" {
				errs = strings.TrimSpace(fmt.Sprintf("%d non-2xx %s", x.non2xx, x.sockErrors))
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %.2f | %.2f | %.2f | %s |\n", x.store, x.target, x.rps, ms(x.p50), ms(x.p99), x.serverCores, x.busyCores, x.otherCores, errs)
		}
		if r.commits > 0 {
			fmt.Fprintf(w, "\nbrainy storage commits during the write load (warm-up included, all 3 nodes): %d commits carrying %d writes, %.1f writes per commit; %d acknowledged PUTs need at least %d replica writes.\n",
				r.commits, r.commitWrites, float64(r.commitWrites)/float64(r.commits), int(r.brainy.rps*c.Duration.Seconds()), 3*int(r.brainy.rps*c.Duration.Seconds()))
		}
		fmt.Fprintf(w, "\nCPU columns: average cores busy during the run (of %d), the store's processes (all its nodes), the whole machine (store, wrk, kernel, anything else), and the machine minus the store and wrk (kernel and other processes).\n", runtime.NumCPU())
		if r.brainy != nil && r.etcd != nil && r.etcd.rps > 0 && r.etcd.p99 > 0 {
			fmt.Fprintf(w, "\nbrainy/etcd: req/s %.2f, p50 %.2f, p99 %.2f\n",
				r.brainy.rps/r.etcd.rps, float64(r.brainy.p50)/float64(r.etcd.p50), float64(r.brainy.p99)/float64(r.etcd.p99))
		}
		fmt.Fprintln(w)
	}

	if c.Has("rebalance") && r.rebalance != nil {
		x := r.rebalance
		fmt.Fprintf(w, "### 3. Rebalance: a fourth node joins 3 nodes holding %d items\n\n", x.items)
		fmt.Fprintf(w, "Items written (PUT, 64 writers, %d-byte values) in %.1f s (%.0f/s replicated). %d of %d partitions change voters.\n\n",
			c.ValueSize, x.loadTook.Seconds(), float64(x.items)/x.loadTook.Seconds(), x.moved, partitions)
		fmt.Fprintln(w, "| | value |")
		fmt.Fprintln(w, "|---|---:|")
		fmt.Fprintf(w, "| time until placement settles | %.1f s |\n", x.settle.Seconds())
		fmt.Fprintf(w, "| partitions the new node votes in | %d |\n", x.newVoters)
		fmt.Fprintf(w, "| items on the new node | %d |\n", x.newItems)
		for _, l := range []struct {
			name string
			l    latencies
		}{{"before the join (10 s)", x.baseline}, {"during the move", x.during}} {
			fmt.Fprintf(w, "| foreground %s: requests, p50 / p99 / max ms, errors | %d, %s / %s / %s, %d |\n", l.name, len(l.l.d),
				ms(percentile(l.l.d, 0.5)), ms(percentile(l.l.d, 0.99)), ms(percentile(l.l.d, 1)), l.l.errors)
		}
		fmt.Fprintf(w, "\nForeground: %d req/s, half GET and half PUT of random existing items, through the 3 original nodes; latency from launch.\n", x.foreground)
		if len(x.during.slowest) > 0 {
			fmt.Fprintln(w, "Slowest during the move (launched after the fourth node's start):")
			for _, s := range x.during.slowest {
				fmt.Fprintf(w, "- %s ms: %s (+%.3f s)\n", ms(s.took), s.what, s.at.Sub(x.start).Seconds())
			}
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "### Summary")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | value |")
	fmt.Fprintln(w, "|---|---:|")
	if len(r.failover) > 0 {
		took := make([]time.Duration, 0, len(r.failover))
		for _, s := range r.failover {
			took = append(took, s.took)
		}
		fmt.Fprintf(w, "| failover p50 / p99 / max (n=%d) | %s / %s / %s ms |\n", len(took), ms(percentile(took, 0.5)), ms(percentile(took, 0.99)), ms(percentile(took, 1)))
	}
	for _, x := range []*wrkResult{r.brainy, r.etcd} {
		if x != nil {
			fmt.Fprintf(w, "| %s durable PUT req/s, p50 / p99 | %.0f, %s / %s ms |\n", x.store, x.rps, ms(x.p50), ms(x.p99))
		}
	}
	if r.brainy != nil && r.etcd != nil && r.etcd.rps > 0 {
		fmt.Fprintf(w, "| brainy/etcd req/s | %.2f |\n", r.brainy.rps/r.etcd.rps)
	}
	if x := r.rebalance; x != nil && x.settle > 0 {
		fmt.Fprintf(w, "| rebalance to 4 nodes (%d items) | %.1f s |\n", x.items, x.settle.Seconds())
		fmt.Fprintf(w, "| foreground p99 during the move | %s ms |\n", ms(percentile(x.during.d, 0.99)))
	}
	if r.busyWaits > 0 {
		fmt.Fprintf(w, "\n%d measurement(s) started while other processes kept the machine busy (see the log).\n", r.busyWaits)
	}
	if len(r.problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range r.problems {
			fmt.Fprintf(w, "- %s\n", p)
		}
	}
}
