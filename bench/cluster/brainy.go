package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchhttp"
	"github.com/soullabs/brainy/bench/internal/benchnode"
	"github.com/soullabs/brainy/bench/internal/benchproc"
	"github.com/soullabs/brainy/bench/internal/benchrun"
	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/nodestats"
)

// partitions is brainy-core's default partition count, which the
// benchmark's clusters use.
const partitions = core.DefaultPartitions

// tenant is the HTTP API's tenant when no X-Brainy-Tenant is sent.
const tenant = "default"

// node is one brainy-core process.
type node = benchnode.Node

// brainyCluster is a set of brainy-core nodes on 127.0.0.x addresses.
type brainyCluster struct {
	b     *bench
	dir   string
	nodes []*node
}

// newBrainyCluster describes (does not start) count nodes n1..n<count>,
// the first founding the cluster and the others joining through it.
func (b *bench) newBrainyCluster(name string, count int) *brainyCluster {
	c := &brainyCluster{b: b, dir: filepath.Join(b.cfg.WorkDir, name)}
	for i := range count {
		ip := fmt.Sprintf("127.0.0.%d", b.cfg.FirstIP+i)
		id := fmt.Sprintf("n%d", i+1)
		args := []string{"--bind", ip, "--storage", filepath.Join(c.dir, id), "--node-id", id, "--log-format", "json"}
		if i > 0 {
			args = append(args, "--peers", fmt.Sprintf("127.0.0.%d:7946", b.cfg.FirstIP))
		}
		c.nodes = append(c.nodes, &node{ID: id, IP: ip, Proc: &benchproc.Proc{
			Name: name + "/" + id, Path: b.cfg.BrainyCore, Args: args, Log: filepath.Join(c.dir, id+".log"),
		}})
	}
	return c
}

// startNode starts n and waits for its HTTP API to answer.
func (c *brainyCluster) startNode(ctx context.Context, n *node) error {
	if err := checkFree(n.IP, benchnode.Ports...); err != nil {
		return err
	}
	c.b.log.Info("starting brainy-core", "node", n.ID, "cmd", n.Proc.Path+" "+strings.Join(n.Proc.Args, " "))
	if err := c.b.procs.Start(n.Proc); err != nil {
		return err
	}
	return benchnode.WaitReady(ctx, api, n.Proc, n.URL("/readyz"), 30*time.Second)
}

// start starts the first node, then the others, and waits until every
// node reports a healthy cluster.
func (c *brainyCluster) start(ctx context.Context) error {
	if err := mkdirs(c.dir); err != nil {
		return err
	}
	for _, n := range c.nodes {
		if err := c.startNode(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n.Proc.Name, err)
		}
	}
	return c.waitHealthy(ctx, c.b.cfg.HealTimeout)
}

func (c *brainyCluster) stop() {
	for _, n := range c.nodes {
		n.Proc.Stop(15 * time.Second)
	}
}

// metrics reads GET /v1/metrics from n.
func metrics(ctx context.Context, n *node) (*nodestats.Snapshot, error) {
	code, body, err := api.Do(ctx, "GET", n.URL("/v1/metrics"), nil, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: GET /v1/metrics: %d %s", n.ID, code, body)
	}
	var s nodestats.Snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, fmt.Errorf("%s: GET /v1/metrics: %v", n.ID, err)
	}
	return &s, nil
}

// snapshots reads every running node's metrics.
func (c *brainyCluster) snapshots(ctx context.Context) ([]*nodestats.Snapshot, error) {
	var out []*nodestats.Snapshot
	for _, n := range c.nodes {
		if !n.Proc.Running() {
			continue
		}
		s, err := metrics(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// healthy reports whether snaps, one per node of ids, describe a healthy
// cluster: every node sees all of ids healthy and every partition with
// len(ids) voters (at most 3), no learners, and the same leader, one of
// ids. It returns the leader of each partition, or why not.
func healthy(snaps []*nodestats.Snapshot, ids []string) (leaders map[int]string, why string) {
	want := min(len(ids), 3)
	leaders = map[int]string{}
	for _, s := range snaps {
		if s.Nodes.Healthy != len(ids) {
			return nil, fmt.Sprintf("%s sees %d healthy nodes", s.Nodes.Self, s.Nodes.Healthy)
		}
		if len(s.Partitions) == 0 {
			return nil, fmt.Sprintf("%s holds no partition", s.Nodes.Self)
		}
		for _, p := range s.Partitions {
			if len(p.Voters) != want || len(p.Learners) > 0 {
				return nil, fmt.Sprintf("%s: partition %d has voters %v, learners %v", s.Nodes.Self, p.ID, p.Voters, p.Learners)
			}
			if !slices.Contains(ids, p.Leader) {
				return nil, fmt.Sprintf("%s: partition %d has leader %q", s.Nodes.Self, p.ID, p.Leader)
			}
			if l, ok := leaders[p.ID]; ok && l != p.Leader {
				return nil, fmt.Sprintf("partition %d: leader %s or %s", p.ID, l, p.Leader)
			}
			leaders[p.ID] = p.Leader
		}
	}
	if len(leaders) != partitions {
		return nil, fmt.Sprintf("%d of %d partitions seen", len(leaders), partitions)
	}
	return leaders, ""
}

// ids lists the nodes started and not stopped or killed.
func (c *brainyCluster) ids() []string {
	var ids []string
	for _, n := range c.nodes {
		if !n.Proc.Running() {
			continue
		}
		ids = append(ids, n.ID)
	}
	return ids
}

// waitHealthy waits until the cluster is healthy and its leaders have
// stayed put for a second (the leader of a restarted node's preferred
// partitions moves back to it shortly after it rejoins).
func (c *brainyCluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	var settle benchnode.Leaders
	start, logged := time.Now(), time.Now()
	return api.WaitFor(ctx, timeout, func() (bool, string) {
		snaps, err := c.snapshots(ctx)
		if err != nil {
			return false, err.Error()
		}
		leaders, why := healthy(snaps, c.ids())
		if leaders == nil && time.Since(logged) >= 5*time.Second {
			logged = time.Now()
			c.b.log.Info("waiting for a healthy cluster", "elapsed_s", int(time.Since(start).Seconds()), "why", why)
		}
		return settle.Settled(leaders, why)
	})
}

// placement returns, for every partition, the sorted node ids rendezvous
// placement gives it among ids (what the cluster converges to).
func placement(ids []string, rf int) map[int][]string {
	var members []cluster.Member
	byRaft := map[uint64]string{}
	for _, id := range ids {
		r := core.RaftID(id)
		members = append(members, cluster.Member{ID: id, Raft: r})
		byRaft[uint64(r)] = id
	}
	out := map[int][]string{}
	for p := range partitions {
		var v []string
		for _, r := range cluster.Place(p, members, rf) {
			v = append(v, byRaft[uint64(r)])
		}
		slices.Sort(v)
		out[p] = v
	}
	return out
}

// settled reports whether every partition, as its leader sees it, has
// exactly the voters target gives it and no learners.
func settled(snaps []*nodestats.Snapshot, target map[int][]string) (bool, string) {
	seen := 0
	for _, s := range snaps {
		for _, p := range s.Partitions {
			if p.Leader != s.Nodes.Self {
				continue
			}
			seen++
			v := slices.Sorted(slices.Values(p.Voters))
			if !slices.Equal(v, target[p.ID]) || len(p.Learners) > 0 {
				return false, fmt.Sprintf("partition %d has voters %v, learners %v; placement wants %v", p.ID, v, p.Learners, target[p.ID])
			}
		}
	}
	if seen != len(target) {
		return false, fmt.Sprintf("%d of %d partitions have a leader that reports it", seen, len(target))
	}
	return true, ""
}

// keysOf returns n item ids that hash to partition part.
func keysOf(part, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("fo-%d-%d", part, i)
		if core.PartitionOf(tenant, id, partitions) == part {
			out = append(out, id)
		}
	}
	return out
}

// api makes every request the driver makes itself (wrk makes the
// throughput loads); enough idle connections are kept for the paced loads.
var api = benchhttp.NewClient(benchrun.ErrStopped)

// checkFree is benchproc.CheckFree, its error naming the way out.
func checkFree(ip string, ports ...int) error {
	if err := benchproc.CheckFree(ip, ports...); err != nil {
		return fmt.Errorf("%w (pick other addresses with -first-ip)", err)
	}
	return nil
}
