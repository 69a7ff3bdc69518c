package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchrun"
)

// failoverSample is one leader kill.
type failoverSample struct {
	partition      int
	killed, client string
	newLeader      string
	took           time.Duration // kill to first successful PUT sent after it
	failed         int           // PUTs sent after the kill that failed
	heal           time.Duration // restart to a healthy cluster
	ok             bool          // a PUT succeeded within FailoverGiveUp
}

// pacedWriter PUTs the keys of one partition through one node, launching a
// request every interval whatever happened to the earlier ones.
type pacedWriter struct {
	mu        sync.Mutex
	since     time.Time // requests launched at or after it are counted
	first     time.Duration
	got       bool
	okBefore  int
	failed    int
	lastError string
	signal    chan struct{} // closed at the first counted success
}

func (w *pacedWriter) arm(at time.Time) {
	w.mu.Lock()
	w.since, w.got, w.failed, w.signal = at, false, 0, make(chan struct{})
	w.mu.Unlock()
}

func (w *pacedWriter) done(launched time.Time, ok bool, why string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	counted := !w.since.IsZero() && !launched.Before(w.since)
	switch {
	case ok && counted:
		if d := now.Sub(w.since); !w.got || d < w.first {
			w.first = d
		}
		if !w.got {
			w.got = true
			close(w.signal)
		}
	case ok:
		w.okBefore++
	case counted:
		w.failed++
		w.lastError = why
	}
}

// run launches PUTs until ctx ends and waits for those in flight.
func (w *pacedWriter) run(ctx context.Context, n *node, keys []string, body []byte, interval, timeout time.Duration) {
	var wg sync.WaitGroup
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
		url := n.URL("/v1/items/" + keys[i%len(keys)])
		wg.Go(func() {
			launched := time.Now()
			// Not ctx: a request in flight when the writer stops still
			// reports its outcome.
			code, resp, err := api.Do(context.Background(), "PUT", url, body, timeout)
			switch {
			case err != nil:
				w.done(launched, false, err.Error())
			case code == 200 || code == 201:
				w.done(launched, true, "")
			default:
				w.done(launched, false, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(resp))))
			}
		})
	}
}

// failovers kills the leader of a partition Failovers times, rotating the
// node killed and the partition, and restarts it after each kill.
func (b *bench) failovers(ctx context.Context, c *brainyCluster) error {
	body := []byte(fmt.Sprintf(`{"type":"bench","data":{"v":%q}}`, strings.Repeat("x", b.cfg.ValueSize)))
	for i := 0; len(b.res.failover) < b.cfg.Failovers; i++ {
		if i >= 2*b.cfg.Failovers {
			return fmt.Errorf("failover: only %d of %d kills could be aimed at a partition leader", len(b.res.failover), b.cfg.Failovers)
		}
		snaps, err := c.snapshots(ctx)
		if err != nil {
			return err
		}
		leaders, why := healthy(snaps, c.ids())
		if leaders == nil {
			return fmt.Errorf("failover: cluster not healthy before kill %d: %s", i+1, why)
		}
		victim := c.nodes[i%len(c.nodes)]
		var led []int
		for p, l := range leaders {
			if l == victim.ID {
				led = append(led, p)
			}
		}
		if len(led) == 0 {
			b.log.Warn("node leads no partition; trying the next one", "node", victim.ID)
			continue
		}
		slices.Sort(led)
		part := led[(i/len(c.nodes))%len(led)]
		client := c.nodes[(i+1)%len(c.nodes)]
		s, err := b.failoverOnce(ctx, c, part, victim, client, body)
		if err != nil {
			return err
		}
		if s == nil {
			continue // leadership moved just before the kill
		}
		b.res.failover = append(b.res.failover, *s)
		b.log.Info("failover", "n", len(b.res.failover), "partition", part, "killed", s.killed, "through", s.client,
			"new_leader", s.newLeader, "took_ms", ms(s.took), "failed_puts", s.failed, "heal_s", fmt.Sprintf("%.1f", s.heal.Seconds()))
	}
	return nil
}

// failoverOnce measures one kill; it returns nil, nil if part's leader was
// no longer victim just before the kill.
func (b *bench) failoverOnce(ctx context.Context, c *brainyCluster, part int, victim, client *node, body []byte) (*failoverSample, error) {
	b.waitQuiet(ctx, 5*time.Second)
	keys := keysOf(part, 32)
	w := &pacedWriter{}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.run(wctx, client, keys, body, b.cfg.FailoverInterval, b.cfg.RequestTimeout) })
	defer func() { stop(); wg.Wait() }()

	// Writes must be flowing before the kill, or the kill measures nothing.
	w.arm(time.Now())
	select {
	case <-w.signal:
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("failover: PUTs to partition %d through %s fail before any kill: %s", part, client.ID, w.lastError)
	case <-ctx.Done():
		return nil, benchrun.ErrStopped
	}
	time.Sleep(200 * time.Millisecond)
	m, err := metrics(ctx, client)
	if err != nil {
		return nil, err
	}
	for _, p := range m.Partitions {
		if p.ID == part && p.Leader != victim.ID {
			b.log.Warn("leader moved before the kill; choosing again", "partition", part, "leader", p.Leader)
			return nil, nil
		}
	}

	s := &failoverSample{partition: part, killed: victim.ID, client: client.ID}
	killAt := time.Now()
	w.arm(killAt)
	victim.Proc.Kill()
	select {
	case <-w.signal:
		s.ok = true
	case <-time.After(b.cfg.FailoverGiveUp):
	case <-ctx.Done():
		return nil, benchrun.ErrStopped
	}
	// Let requests launched before the first success finish, so the
	// earliest success among them is the one recorded.
	time.Sleep(b.cfg.RequestTimeout)
	stop()
	wg.Wait()
	w.mu.Lock()
	s.took, s.failed = w.first, w.failed
	if !s.ok {
		s.took = b.cfg.FailoverGiveUp
		b.log.Warn("no PUT succeeded after the kill", "partition", part, "give_up", b.cfg.FailoverGiveUp, "last_error", w.lastError)
	}
	w.mu.Unlock()
	if m, err := metrics(ctx, client); err == nil {
		for _, p := range m.Partitions {
			if p.ID == part {
				s.newLeader = p.Leader
			}
		}
	}

	restart := time.Now()
	if err := c.startNode(ctx, victim); err != nil {
		return nil, fmt.Errorf("restart %s: %w", victim.ID, err)
	}
	if err := c.waitHealthy(ctx, b.cfg.HealTimeout); err != nil {
		return nil, fmt.Errorf("after restarting %s: %w", victim.ID, err)
	}
	s.heal = time.Since(restart)
	return s, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
