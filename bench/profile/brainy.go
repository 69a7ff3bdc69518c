package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchhttp"
	"github.com/soullabs/brainy/bench/internal/benchnode"
	"github.com/soullabs/brainy/bench/internal/benchproc"
	"github.com/soullabs/brainy/bench/internal/benchrun"
	"github.com/soullabs/brainy/core"
)

// keyPrefix prefixes the item ids the driver preloads and the loads use
// (the loadtest package appends the key number in decimal).
const keyPrefix = "pf-"

// node is one brainy-core process.
type node = benchnode.Node

// brainyCluster is a set of brainy-core nodes on 127.0.0.91 onwards.
type brainyCluster struct {
	b          *bench
	name       string
	dir        string
	nodes      []*node
	partitions int
}

// newCluster describes (does not start) nodes n1..n<count> on
// 127.0.0.91 onwards, each with extra appended to its flags; the first
// founds the cluster and the others join through it. roles[i], if set,
// is node i's --role. The cluster gets its own --cluster-name, so that it
// never mixes with another run's nodes.
func (b *bench) newCluster(name string, count int, extra []string, roles map[int]string) *brainyCluster {
	c := &brainyCluster{b: b, name: name, dir: filepath.Join(b.cfg.WorkDir, name),
		partitions: partitionsOf(extra, core.DefaultPartitions)}
	for i := range count {
		ip := fmt.Sprintf("127.0.0.%d", firstIP+i)
		id := fmt.Sprintf("n%d", i+1)
		args := []string{"--bind", ip, "--storage", filepath.Join(c.dir, id), "--node-id", id,
			"--cluster-name", "bench-profile-" + strings.ToLower(name), "--log-format", "json"}
		if i > 0 {
			args = append(args, "--peers", fmt.Sprintf("127.0.0.%d:7946", firstIP))
		}
		if r := roles[i]; r != "" {
			args = append(args, "--role", r)
		}
		args = append(args, extra...)
		c.nodes = append(c.nodes, &node{ID: id, IP: ip, Proc: &benchproc.Proc{
			Name: name + "/" + id, Path: b.cfg.BrainyCore, Args: args, Log: filepath.Join(c.dir, id+".log"),
		}})
	}
	return c
}

// startNode starts n and waits (up to timeout) until its /readyz answers
// 200.
func (c *brainyCluster) startNode(ctx context.Context, n *node, timeout time.Duration) error {
	if err := benchproc.CheckFree(n.IP, benchnode.Ports...); err != nil {
		return err
	}
	c.b.log.Info("starting brainy-core", "node", n.Proc.Name, "cmd", n.Proc.Path+" "+strings.Join(n.Proc.Args, " "))
	if err := c.b.procs.Start(n.Proc); err != nil {
		return err
	}
	if err := benchnode.WaitReady(ctx, api, n.Proc, n.URL("/readyz"), timeout); err != nil {
		if tail := logTail(n.Proc.Log, 5); tail != "" && !n.Proc.Running() {
			err = fmt.Errorf("%w; its log ends with:\n%s", err, tail)
		}
		return fmt.Errorf("%s: %w", n.Proc.Name, err)
	}
	return nil
}

// startVoters starts nodes (in order, each answering /readyz before the
// next starts) and waits until the cluster is ready.
func (c *brainyCluster) startVoters(ctx context.Context, nodes []*node) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	for _, n := range nodes {
		if err := c.startNode(ctx, n, c.b.cfg.ReadyTimeout); err != nil {
			return err
		}
	}
	return c.waitReady(ctx, nodes)
}

// waitReady waits until every node of nodes answers /readyz with 200,
// sees them all healthy and holds every partition with a leader, the
// nodes agree on the leaders, and the leaders have stayed put for a
// second (leaderships move to their preferred nodes shortly after a
// start).
func (c *brainyCluster) waitReady(ctx context.Context, nodes []*node) error {
	var settle benchnode.Leaders
	start, logged := time.Now(), time.Now()
	return api.WaitFor(ctx, c.b.cfg.ReadyTimeout, func() (bool, string) {
		var views []*metricsView
		for _, n := range nodes {
			if err := n.Proc.ExitErr(); err != nil {
				return false, err.Error()
			}
			code, _, err := api.Do(ctx, "GET", n.URL("/readyz"), nil, time.Second)
			if err != nil || code != 200 {
				return false, fmt.Sprintf("%s: readyz %d %v", n.ID, code, err)
			}
			v, err := metrics(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			views = append(views, v)
		}
		why, leaders := readyWhy(views, len(nodes), c.partitions)
		if leaders == nil && time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			c.b.log.Info("waiting for the cluster", "cluster", c.name, "elapsed_s", int(time.Since(start).Seconds()), "why", why)
		}
		return settle.Settled(leaders, why)
	})
}

// stop stops every node of c (SIGTERM, SIGKILL after 15 s) and removes
// their data directories, keeping the logs.
func (c *brainyCluster) stop() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { n.Proc.Stop(15 * time.Second) })
	}
	wg.Wait()
	for _, n := range c.nodes {
		os.RemoveAll(filepath.Join(c.dir, n.ID))
	}
}

// metrics reads GET /v1/metrics from n.
func metrics(ctx context.Context, n *node) (*metricsView, error) {
	code, body, err := api.Do(ctx, "GET", n.URL("/v1/metrics"), nil, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: GET /v1/metrics: %w", n.ID, err)
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: GET /v1/metrics: %d %s", n.ID, code, body)
	}
	v, err := parseMetrics(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.ID, err)
	}
	return v, nil
}

// itemBody returns the JSON body of preloaded item i, exactly size bytes
// when size is at least the envelope's (as the loadtest package's
// generated bodies are).
func itemBody(size, i int) []byte {
	head := fmt.Sprintf(`{"type":"bench","data":{"n":%d,"pad":"`, i%8)
	const tail = `"}}`
	pad := max(size-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// preload PUTs items pf-0 .. pf-<items-1> through nodes, the writers
// spread evenly over them. A failed PUT is retried, through the next node
// and with a growing pause, for up to preloadRetryFor: on a loaded
// machine a node may find a peer unreachable for a few seconds.
func (b *bench) preload(ctx context.Context, nodes []*node) (time.Duration, error) {
	start := time.Now()
	var next, done, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, b.cfg.PreloadConnections)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { // progress
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				b.log.Info("preloading", "written", done.Load(), "of", b.cfg.Items, "retried", retries.Load())
			}
		}
	}()
	for w := range b.cfg.PreloadConnections {
		wg.Go(func() {
			for pctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= b.cfg.Items {
					return
				}
				id := fmt.Sprintf("%s%d", keyPrefix, i)
				body := itemBody(b.cfg.ValueSize, i)
				giveUp := time.Now().Add(preloadRetryFor)
				pause := 50 * time.Millisecond
				var last string
				for try := 0; ; try++ {
					n := nodes[(w+try)%len(nodes)]
					code, resp, err := api.Do(pctx, "PUT", n.URL("/v1/items/"+id), body, 15*time.Second)
					if err == nil && (code == 200 || code == 201) {
						break
					}
					if err != nil {
						last = fmt.Sprintf("through %s: %v", n.ID, err)
					} else {
						last = fmt.Sprintf("through %s: %d %s", n.ID, code, strings.TrimSpace(string(resp)))
					}
					if pctx.Err() != nil {
						return
					}
					if time.Now().After(giveUp) {
						errs <- fmt.Errorf("preloading %s: failing for %v, last %s", id, preloadRetryFor, last)
						stop()
						return
					}
					retries.Add(1)
					select {
					case <-pctx.Done():
						return
					case <-time.After(pause):
					}
					pause = min(2*pause, 2*time.Second)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return time.Since(start), err
	}
	if retries.Load() > 0 {
		b.log.Warn("preload needed retries", "retried_puts", retries.Load())
	}
	return time.Since(start), ctx.Err()
}

// preloadRetryFor is how long one preloaded item's PUT is retried.
const preloadRetryFor = time.Minute

// waitItems waits until every node of nodes holds at least items items.
func (c *brainyCluster) waitItems(ctx context.Context, nodes []*node, items int) error {
	logged := time.Now()
	return api.WaitFor(ctx, c.b.cfg.ReadyTimeout, func() (bool, string) {
		for _, n := range nodes {
			v, err := metrics(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			if v.Storage.Items < uint64(items) {
				why := fmt.Sprintf("%s holds %d of %d items", n.ID, v.Storage.Items, items)
				if time.Since(logged) >= 5*time.Second {
					logged = time.Now()
					c.b.log.Info("waiting for the items", "why", why)
				}
				return false, why
			}
		}
		return true, ""
	})
}

// api makes every request the driver makes itself (not the loads, which
// the loadtest package makes).
var api = benchhttp.NewClient(benchrun.ErrStopped)

// logTail returns the last n lines of the file at path ("" if unreadable).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
