package main

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rebalanceResult is one fourth node joining.
type rebalanceResult struct {
	items      int
	loadTook   time.Duration // writing the items into the 3-node cluster
	start      time.Time     // the fourth node's start
	settle     time.Duration // fourth node started to placement settled
	moved      int           // partitions whose voters change
	newItems   uint64        // items the new node holds once settled
	newVoters  int           // partitions the new node votes in
	baseline   latencies     // foreground before the join
	during     latencies     // foreground while placement moves
	foreground int           // requests per second
}

// latencies collects request outcomes.
type latencies struct {
	d      []time.Duration
	errors int
	// slowest are the slowest requests (at most keepSlowest), to tell
	// what a long tail is made of.
	slowest []slowRequest
}

// slowRequest is one request of the tail.
type slowRequest struct {
	what   string        // method, node, item
	at     time.Time     // launch
	took   time.Duration // until the answer
	status int
}

const keepSlowest = 5

// note keeps r if it is among the slowest.
func (l *latencies) note(r slowRequest) {
	l.slowest = append(l.slowest, r)
	slices.SortFunc(l.slowest, func(a, b slowRequest) int { return cmp.Compare(b.took, a.took) })
	if len(l.slowest) > keepSlowest {
		l.slowest = l.slowest[:keepSlowest]
	}
}

// foreground is a paced load of reads and writes of existing items.
type foreground struct {
	mu      sync.Mutex
	cur     *latencies
	lastErr string
}

func (f *foreground) into(l *latencies) {
	f.mu.Lock()
	f.cur = l
	f.mu.Unlock()
}

func (f *foreground) record(r slowRequest, err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == nil {
		return
	}
	if err != "" {
		f.cur.errors++
		f.lastErr = err
		return
	}
	f.cur.d = append(f.cur.d, r.took)
	f.cur.note(r)
}

// run launches rate requests per second through nodes, alternately GET
// and PUT of a random existing item, until ctx ends. Latency counts from
// the request's launch, with a 5 s timeout.
func (f *foreground) run(ctx context.Context, nodes []*node, items, rate int, body []byte) {
	var wg sync.WaitGroup
	t := time.NewTicker(time.Second / time.Duration(rate))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
		n := nodes[i%len(nodes)]
		url := n.URL("/v1/items/" + itemID(rand.IntN(items)))
		method, b := "GET", []byte(nil)
		if i%2 == 1 {
			method, b = "PUT", body
		}
		wg.Go(func() {
			r := slowRequest{what: method + " " + url, at: time.Now()}
			code, resp, err := api.Do(context.Background(), method, url, b, 5*time.Second)
			r.took, r.status = time.Since(r.at), code
			switch {
			case err != nil:
				f.record(r, err.Error())
			case code != 200 && code != 201:
				f.record(r, fmt.Sprintf("%s %d %s", method, code, strings.TrimSpace(string(resp))))
			default:
				f.record(r, "")
			}
		})
	}
}

func itemID(i int) string { return fmt.Sprintf("rb-%07d", i) }

// loadItems writes items into the cluster through its running nodes with
// 64 concurrent writers.
func (b *bench) loadItems(ctx context.Context, nodes []*node, items int, body []byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 64 {
		wg.Go(func() {
			n := nodes[w%len(nodes)]
			for {
				i := int(next.Add(1) - 1)
				if i >= items || ctx.Err() != nil {
					return
				}
				var last string
				ok := false
				for try := 0; try < 5 && !ok; try++ {
					code, resp, err := api.Do(ctx, "PUT", n.URL("/v1/items/"+itemID(i)), body, 10*time.Second)
					switch {
					case err != nil:
						last = err.Error()
					case code == 200 || code == 201:
						ok = true
					default:
						last = fmt.Sprintf("%d %s", code, resp)
					}
				}
				if !ok {
					errs <- fmt.Errorf("writing %s through %s: %s", itemID(i), n.ID, last)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// rebalance fills a 3-node cluster, starts a fourth node and measures how
// long placement takes to settle under a light foreground load.
func (b *bench) rebalance(ctx context.Context) error {
	c := b.newBrainyCluster("rebalance", 4)
	defer c.stop()
	if err := mkdirs(c.dir); err != nil {
		return err
	}
	three, fourth := c.nodes[:3], c.nodes[3]
	for _, n := range three {
		if err := c.startNode(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n.Proc.Name, err)
		}
	}
	if err := c.waitHealthy(ctx, b.cfg.HealTimeout); err != nil {
		return fmt.Errorf("rebalance cluster: %w", err)
	}
	r := &rebalanceResult{items: b.cfg.Items, foreground: b.cfg.ForegroundRate}
	b.res.rebalance = r
	body := []byte(fmt.Sprintf(`{"type":"bench","data":{"v":%q}}`, strings.Repeat("x", b.cfg.ValueSize)))
	b.log.Info("writing items", "items", b.cfg.Items)
	t0 := time.Now()
	if err := b.loadItems(ctx, three, b.cfg.Items, body); err != nil {
		return err
	}
	r.loadTook = time.Since(t0)
	b.log.Info("items written", "items", b.cfg.Items, "took_s", fmt.Sprintf("%.1f", r.loadTook.Seconds()),
		"per_s", fmt.Sprintf("%.0f", float64(b.cfg.Items)/r.loadTook.Seconds()))
	if err := api.WaitFor(ctx, 2*time.Minute, func() (bool, string) {
		for _, n := range three {
			m, err := metrics(ctx, n)
			if err != nil {
				return false, err.Error()
			}
			if m.Storage.Items != uint64(b.cfg.Items) {
				return false, fmt.Sprintf("%s holds %d items", n.ID, m.Storage.Items)
			}
		}
		return true, ""
	}); err != nil {
		return fmt.Errorf("replicating the items: %w", err)
	}

	before := placement(c.ids(), 3)
	target := placement(append(c.ids(), fourth.ID), 3)
	for p := range target {
		if fmt.Sprint(before[p]) != fmt.Sprint(target[p]) {
			r.moved++
		}
	}

	b.waitQuiet(ctx, 30*time.Second)
	fg := &foreground{}
	fctx, stopFG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { fg.run(fctx, three, b.cfg.Items, b.cfg.ForegroundRate, body) })
	defer func() { stopFG(); wg.Wait() }()
	fg.into(&r.baseline)
	time.Sleep(10 * time.Second)

	b.log.Info("starting the fourth node", "partitions_to_move", r.moved)
	fg.into(&r.during)
	start := time.Now()
	r.start = start
	if err := c.startNode(ctx, fourth); err != nil {
		return fmt.Errorf("%s: %w", fourth.Proc.Name, err)
	}
	var last time.Time
	err := api.WaitFor(ctx, b.cfg.SettleTimeout, func() (bool, string) {
		snaps, err := c.snapshots(ctx)
		if err != nil {
			return false, err.Error()
		}
		ok, why := settled(snaps, target)
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			b.log.Info("placement", "elapsed_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()), "settled", ok, "why", why)
		}
		return ok, why
	})
	r.settle = time.Since(start)
	fg.into(nil)
	stopFG()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("placement did not settle: %w", err)
	}
	if m, err := metrics(ctx, fourth); err == nil {
		r.newItems = m.Storage.Items
		for _, p := range m.Partitions {
			for _, v := range p.Voters {
				if v == fourth.ID {
					r.newVoters++
				}
			}
		}
	}
	b.log.Info("placement settled", "took_s", fmt.Sprintf("%.1f", r.settle.Seconds()), "new_node_items", r.newItems,
		"new_node_partitions", r.newVoters, "foreground_p99_ms", ms(percentile(r.during.d, 0.99)),
		"foreground_errors", r.during.errors, "last_error", fg.lastErr)
	for _, s := range r.during.slowest {
		b.log.Info("slow foreground request during the move", "request", s.what, "status", s.status,
			"ms", ms(s.took), "launched_after_s", fmt.Sprintf("%.3f", s.at.Sub(start).Seconds()))
	}
	return nil
}
