package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	started  time.Time
	profile  []*profileRun
	reader   *readerResult
	problems []string
}

// profileRun is one configuration's run of the profile part.
type profileRun struct {
	round   int
	config  string // "A" or "B"
	args    []string
	preload time.Duration
	load    *loadResult
	// tuning is each node's "tuning" section of /v1/metrics at the end
	// of the run, verbatim, by node id; empty when no node has one.
	tuning map[string]string
	err    error
}

// readerResult is the reader part.
type readerResult struct {
	preload       time.Duration
	before, after *loadResult
	// joined is how long the reader took from its start until it was a
	// learner of every partition on n1; caughtUp until it held every
	// item.
	joined, caughtUp time.Duration
}

func (b *bench) run(ctx context.Context) error {
	b.res.started = time.Now()
	if err := os.MkdirAll(b.cfg.WorkDir, 0o755); err != nil {
		return err
	}
	var errs []error
	fail := func(part string, err error) {
		b.log.Error(part+" failed", "err", err)
		b.res.problems = append(b.res.problems, part+": "+err.Error())
		errs = append(errs, fmt.Errorf("%s: %w", part, err))
	}
	if b.cfg.Has("profile") {
		if err := b.profile(ctx); err != nil {
			fail("profile", err)
		}
	}
	if b.cfg.Has("reader") && ctx.Err() == nil {
		if err := b.reader(ctx); err != nil {
			fail("reader", err)
		}
	}
	if ctx.Err() != nil && !errors.Is(errors.Join(errs...), benchrun.ErrStopped) {
		errs = append(errs, benchrun.ErrStopped)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d part(s) failed: %v", len(errs), errs)
	}
	return nil
}

// profile runs A, B, A, B, ... each on a fresh 3-node cluster.
func (b *bench) profile(ctx context.Context) error {
	sides := []struct{ name, args string }{{"A", b.cfg.AArgs}, {"B", b.cfg.BArgs}}
	for round := 1; round <= b.cfg.Rounds; round++ {
		for _, s := range sides {
			if ctx.Err() != nil {
				return benchrun.ErrStopped
			}
			r := &profileRun{round: round, config: s.name, args: strings.Fields(s.args)}
			b.res.profile = append(b.res.profile, r)
			if r.err = b.profileRun(ctx, r); r.err != nil {
				return fmt.Errorf("%s round %d: %w", s.name, round, r.err)
			}
		}
	}
	return nil
}

// profileRun starts a fresh 3-node cluster with r's flags, preloads it,
// runs the warm-up and the measured read-heavy load through Entry of its
// nodes, reads the nodes' tuning sections and stops the cluster.
func (b *bench) profileRun(ctx context.Context, r *profileRun) error {
	name := fmt.Sprintf("%s%d", r.config, r.round)
	b.log.Info("profile run", "config", r.config, "round", r.round, "extra_flags", strings.Join(r.args, " "))
	c := b.newCluster(name, 3, r.args, nil)
	defer c.stop()
	if err := c.startVoters(ctx, c.nodes); err != nil {
		return err
	}
	var err error
	if r.preload, err = b.preload(ctx, c.nodes); err != nil {
		return err
	}
	b.log.Info("preloaded", "items", b.cfg.Items, "took_s", fmt.Sprintf("%.1f", r.preload.Seconds()),
		"per_s", fmt.Sprintf("%.0f", float64(b.cfg.Items)/r.preload.Seconds()))
	if err := c.waitItems(ctx, c.nodes, b.cfg.Items); err != nil {
		return fmt.Errorf("replicating the items: %w", err)
	}
	// Same seed for every run: A and B see the same requests.
	r.load, err = b.runLoad(ctx, name, loadMixed, c.nodes[:b.cfg.Entry], 1)
	if err != nil {
		return err
	}
	for _, n := range c.nodes {
		v, err := metrics(ctx, n)
		if err != nil {
			b.log.Warn("reading the tuning section", "node", n.ID, "err", err)
			continue
		}
		if v.Tuning != nil {
			if r.tuning == nil {
				r.tuning = map[string]string{}
			}
			r.tuning[n.ID] = string(v.Tuning)
		}
	}
	return nil
}

// reader measures stale-read throughput through 3 voters, then through
// them and a fourth node of the reader role.
func (b *bench) reader(ctx context.Context) error {
	c := b.newCluster("reader", 4, nil, map[int]string{3: "reader"})
	defer c.stop()
	voters, rd := c.nodes[:3], c.nodes[3]
	r := &readerResult{}
	b.res.reader = r
	if err := c.startVoters(ctx, voters); err != nil {
		return err
	}
	var err error
	if r.preload, err = b.preload(ctx, voters); err != nil {
		return err
	}
	b.log.Info("preloaded", "items", b.cfg.Items, "took_s", fmt.Sprintf("%.1f", r.preload.Seconds()))
	if err := c.waitItems(ctx, voters, b.cfg.Items); err != nil {
		return fmt.Errorf("replicating the items: %w", err)
	}
	if r.before, err = b.runLoad(ctx, "stale reads, 3 voters", loadStaleReads, voters, 1); err != nil {
		return err
	}

	start := time.Now()
	if err := c.startNode(ctx, rd, b.cfg.ReadyTimeout); err != nil {
		return err
	}
	logged := time.Now()
	if err := api.WaitFor(ctx, b.cfg.ReadyTimeout, func() (bool, string) {
		v, err := metrics(ctx, voters[0])
		if err != nil {
			return false, err.Error()
		}
		why := learnerWhy(v, rd.ID, c.partitions)
		if why != "" && time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			b.log.Info("waiting for the reader", "why", why)
		}
		return why == "", why
	}); err != nil {
		return fmt.Errorf("the reader joining: %w", err)
	}
	r.joined = time.Since(start)
	b.log.Info("the reader is a learner of every partition", "took_s", fmt.Sprintf("%.1f", r.joined.Seconds()))
	// A learner may still be copying its partitions; reads of items it
	// does not hold yet would fail, so wait for them all.
	if err := c.waitItems(ctx, []*node{rd}, b.cfg.Items); err != nil {
		return fmt.Errorf("the reader catching up: %w", err)
	}
	r.caughtUp = time.Since(start)
	b.log.Info("the reader holds every item", "took_s", fmt.Sprintf("%.1f", r.caughtUp.Seconds()))
	if r.after, err = b.runLoad(ctx, "stale reads, 3 voters + reader", loadStaleReads, c.nodes, 1); err != nil {
		return err
	}
	return nil
}
