package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchhttp"
	"github.com/soullabs/brainy/bench/internal/benchnode"
	"github.com/soullabs/brainy/bench/internal/benchproc"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers/s3"
)

// result is one run's measurement.
type result struct {
	Nodes, Writers int
	Pace           time.Duration
	Sent, Acked    int
	Errors         map[string]int // answers other than 201, by status or error
	Elapsed        time.Duration  // first add sent to last answer
	Load           counts         // requests from the first add until Settle after the last answer
	Startup        counts         // requests from the start of the nodes until the load began
	Idle           counts         // requests during Config.Idle after the load
	IdleFor        time.Duration
}

// node is one brainy-core process.
type node struct {
	id, ip  string
	storage string // the --storage URL (through the proxy)
	prefix  string // the node's prefix in the bucket
	proc    *benchproc.Proc
}

func (n *node) url(path string) string { return "http://" + n.ip + ":7070" + path }

// api makes every request the driver makes; its waits, cut short by their
// context, return the context's error.
var api = &benchhttp.Client{HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}}}

// runOne runs nodes brainy-core processes and one load of cfg.Items adds
// from writers concurrent writers, and measures it.
func runOne(ctx context.Context, log *slog.Logger, cfg *Config, nodes, writers int) (res result, err error) {
	res = result{Nodes: nodes, Writers: writers, Pace: cfg.Pace, Errors: map[string]int{}}
	px, err := startProxy(cfg.Endpoint)
	if err != nil {
		return res, err
	}
	defer px.close()
	run := "objw-" + strings.ToLower(rand.Text()[:8]) + fmt.Sprintf("-%dn-c%d", nodes, writers)
	secret := rand.Text() + rand.Text()
	var ns []*node
	procs := benchproc.NewRegistry(log)
	defer func() {
		procs.StopAll(20 * time.Second)
		if derr := deleteObjects(cfg, ns); derr != nil {
			log.Warn("deleting the run's objects", "err", derr)
		}
	}()
	log.Info("starting nodes", "run", run, "nodes", nodes, "writers", writers, "proxy", px.URL())
	for i := range nodes {
		n := &node{id: fmt.Sprintf("n%d", i+1), ip: fmt.Sprintf("127.0.0.%d", cfg.FirstIP+i)}
		n.prefix = run + "-" + n.id
		n.storage = fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s", cfg.Bucket, n.prefix, url.QueryEscape(px.URL()), cfg.Region)
		args := []string{"--bind", n.ip, "--storage", n.storage, "--node-id", n.id, "--cluster-secret", secret,
			"--log-format", "json"}
		if i > 0 {
			args = append(args, "--peers", ns[0].ip+":7946")
		}
		n.proc = &benchproc.Proc{Name: n.id, Path: cfg.BrainyCore, Args: args, Log: filepath.Join(cfg.WorkDir, run+"-"+n.id+".log"),
			Env: []string{"AWS_ACCESS_KEY_ID=" + cfg.AccessKey, "AWS_SECRET_ACCESS_KEY=" + cfg.SecretKey, "AWS_EC2_METADATA_DISABLED=true"}}
		if err := n.portsFree(); err != nil {
			return res, err
		}
		if err := procs.Start(n.proc); err != nil {
			return res, err
		}
		ns = append(ns, n)
		if err := benchnode.WaitReady(ctx, api, n.proc, n.url("/readyz"), 60*time.Second); err != nil {
			return res, fmt.Errorf("%s: %w", n.id, err)
		}
	}
	if nodes > 1 {
		log.Info("waiting for a healthy cluster")
		if err := api.WaitFor(ctx, 5*time.Minute, func() (bool, string) { return healthy(ctx, ns) }); err != nil {
			return res, err
		}
	}
	// Wait until the bucket is quiet: startup writes (claims, manifests,
	// raft bootstrap, placement) are not the load's.
	last, since := px.snapshot(), time.Now()
	if err := api.WaitFor(ctx, 2*time.Minute, func() (bool, string) {
		now := px.snapshot()
		if puts(now.sub(last)).N > 0 {
			last, since = now, time.Now()
			return false, "still writing"
		}
		return time.Since(since) >= cfg.Settle, "settling"
	}); err != nil {
		return res, err
	}
	res.Startup = last

	log.Info("loading", "items", cfg.Items, "writers", writers)
	value := strings.Repeat("x", cfg.ValueSize)
	body := []byte(`{"type":"bench","data":{"v":"` + value + `"}}`)
	var next, acked atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		n := ns[w%len(ns)]
		wg.Go(func() {
			for i := 0; next.Add(1) <= int64(cfg.Items); i++ {
				if i > 0 && cfg.Pace > 0 {
					time.Sleep(cfg.Pace)
				}
				code, _, err := api.Do(ctx, "POST", n.url("/v1/items"), body, 30*time.Second)
				if err == nil && code == http.StatusCreated {
					acked.Add(1)
					continue
				}
				why := fmt.Sprint(code)
				if err != nil {
					why = err.Error()
				}
				mu.Lock()
				res.Errors[why]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Sent, res.Acked = cfg.Items, int(acked.Load())
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Load = px.snapshot().sub(res.Startup)
	for _, n := range ns {
		if !n.proc.Running() {
			return res, fmt.Errorf("during the load: %w", n.proc.ExitErr())
		}
	}
	if cfg.Idle > 0 {
		before := px.snapshot()
		select {
		case <-time.After(cfg.Idle):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		res.Idle, res.IdleFor = px.snapshot().sub(before), cfg.Idle
	}
	log.Info("done", "acked", res.Acked, "elapsed", res.Elapsed.Round(time.Millisecond),
		"puts", puts(res.Load).N, "puts_per_item", float64(puts(res.Load).N)/float64(max(res.Acked, 1)))
	return res, nil
}

// puts keeps the Put requests of c.
func puts(c counts) tally { return c.sum(func(k reqKind) bool { return k.Op == opPut }) }

// portsFree checks that nothing listens on the node's ports already.
func (n *node) portsFree() error {
	if err := benchproc.CheckFree(n.ip, benchnode.Ports...); err != nil {
		return fmt.Errorf("%w (pick other addresses with -first-ip)", err)
	}
	return nil
}

// healthy reports whether every node sees every other healthy and every
// partition with min(nodes, 3) voters, no learners and one agreed leader.
func healthy(ctx context.Context, ns []*node) (bool, string) {
	want := min(len(ns), 3)
	leaders := map[int]string{}
	for _, n := range ns {
		code, body, err := api.Do(ctx, "GET", n.url("/v1/metrics"), nil, 2*time.Second)
		if err != nil || code != 200 {
			return false, fmt.Sprintf("%s: metrics %d %v", n.id, code, err)
		}
		var s nodestats.Snapshot
		if err := json.Unmarshal(body, &s); err != nil {
			return false, err.Error()
		}
		if s.Nodes.Healthy != len(ns) {
			return false, fmt.Sprintf("%s sees %d healthy nodes", n.id, s.Nodes.Healthy)
		}
		for _, p := range s.Partitions {
			if len(p.Voters) != want || len(p.Learners) > 0 || p.Leader == "" {
				return false, fmt.Sprintf("%s: partition %d: voters %v, learners %v, leader %q", n.id, p.ID, p.Voters, p.Learners, p.Leader)
			}
			if l, ok := leaders[p.ID]; ok && l != p.Leader {
				return false, fmt.Sprintf("partition %d: leader %s or %s", p.ID, l, p.Leader)
			}
			leaders[p.ID] = p.Leader
		}
	}
	if len(leaders) != core.DefaultPartitions {
		return false, fmt.Sprintf("%d of %d partitions seen", len(leaders), core.DefaultPartitions)
	}
	return true, ""
}

// deleteObjects removes what the run's nodes wrote, directly (not through
// the proxy).
func deleteObjects(cfg *Config, ns []*node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, n := range ns {
		c := s3.LocalConfig(cfg.Endpoint, cfg.Bucket, cfg.AccessKey, cfg.SecretKey)
		c.Region, c.Prefix = cfg.Region, n.prefix+"/"
		st, err := s3.Open(ctx, c)
		if err != nil {
			return err
		}
		var keys []string
		err = st.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			if derr := st.Delete(ctx, k); derr != nil {
				err = errors.Join(err, derr)
				break
			}
		}
		errs = append(errs, err, st.Close())
	}
	return errors.Join(errs...)
}
