package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tuning"
)

// TestSelfTuning: nodes on auto under a read-heavy zipf load move to
// read-heavy — a larger cache, hot items cached on every node — with the
// reason in their metrics, stay there while the mix holds, and move to
// write-heavy (cache back, hot reads off) once writes dominate.
func TestSelfTuning(t *testing.T) {
	c := newTestCluster(t)
	c.profile, c.tuneWindow = tuning.Auto, 2*time.Second
	nodes := []*member{c.start("a"), c.start("b"), c.start("c")}
	c.waitPlacement(3)
	const items = 200
	for i := range items {
		if _, _, err := nodes[i%3].node.Put(context.Background(), "t", &item.Item{ID: fmt.Sprint("k", i), Data: []byte(`1`)}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
	}

	// load runs a closed-loop mix through every node until stopped.
	load := func(readShare float64) (stop func()) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 12 {
			m := nodes[w%3]
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				zipf := rand.NewZipf(rng, 1.1, 1, items-1)
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					id := fmt.Sprint("k", zipf.Uint64())
					if rng.Float64() < readShare {
						_, _ = m.node.Get(context.Background(), "t", id)
					} else {
						_, _, _ = m.node.Put(context.Background(), "t", &item.Item{ID: id, Data: fmt.Appendf(nil, "%d", i)}, item.Cond{})
					}
				}
			})
		}
		return func() { close(done); wg.Wait() }
	}
	tunings := func() []*nodestats.Tuning {
		var out []*nodestats.Tuning
		for _, m := range nodes {
			out = append(out, m.node.Metrics().Tuning)
		}
		return out
	}
	waitAll := func(what string, ok func(*nodestats.Tuning) bool) []*nodestats.Tuning {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			ts := tunings()
			all := true
			for _, tu := range ts {
				all = all && ok(tu)
			}
			if all {
				return ts
			}
			if time.Now().After(deadline) {
				for i, tu := range ts {
					t.Logf("%s: %+v", nodes[i].id, *tu)
				}
				t.Fatalf("never %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stop := load(0.97)
	ts := waitAll("read-heavy everywhere, hot items leased", func(tu *nodestats.Tuning) bool {
		return tu.Active == tuning.ReadHeavy && tu.HotReads && tu.CacheBytes == 256<<20
	})
	for i, tu := range ts {
		t.Logf("%s: %s", nodes[i].id, tu.Reason)
		if tu.Decisions == 0 || tu.Reason == "" {
			t.Errorf("%s switched without a reason: %+v", nodes[i].id, *tu)
		}
	}
	if cap := nodes[0].node.Core().CacheBytes(); cap != 256<<20 {
		t.Errorf("read-heavy, the record cache holds %d bytes", cap)
	}
	// The same mix for five more windows: no decision.
	time.Sleep(5 * c.tuneWindow)
	hits := uint64(0)
	for i, tu := range tunings() {
		hits += tu.HotHits
		if tu.Decisions != ts[i].Decisions || tu.Active != tuning.ReadHeavy {
			t.Errorf("%s flapped under a steady mix: %+v, then %+v", nodes[i].id, *ts[i], *tu)
		}
	}
	stop()
	if hits == 0 {
		t.Error("read-heavy, no read was answered from a leased copy")
	}

	stop = load(0.2)
	defer stop()
	waitAll("write-heavy everywhere, hot reads off", func(tu *nodestats.Tuning) bool {
		return tu.Active == tuning.WriteHeavy && !tu.HotReads && tu.CacheBytes == 64<<20
	})
	if cap := nodes[0].node.Core().CacheBytes(); cap != 64<<20 {
		t.Errorf("write-heavy, the record cache holds %d bytes", cap)
	}
}
