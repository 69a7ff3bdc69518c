package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/regmodel"
	"github.com/soullabs/brainy/tiers"
)

// TestLinearizable records concurrent gets, puts, compare-and-sets and
// deletes on a few keys and checks the history with porcupine against a
// register per key. A tiny record cache makes evictions and cache fills
// race with commits, which is where a stale read would come from.
func TestLinearizable(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n, err := Open(ctx, Config{Store: s, CacheBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()

		const clients, opsEach, keys = 8, 400, 3
		start := time.Now()
		var mu sync.Mutex
		var history []porcupine.Operation
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				lastSeen := map[string]string{} // versions this client read, for CAS
				for i := range opsEach {
					in := regmodel.Input{Key: fmt.Sprint("k", rng.IntN(keys)), Value: fmt.Sprintf("%d-%d", c, i)}
					call := time.Since(start).Nanoseconds()
					out, err := linearizableOp(ctx, n, &in, rng.IntN(10), lastSeen)
					if err != nil {
						t.Error(err)
						return
					}
					ret := time.Since(start).Nanoseconds()
					mu.Lock()
					history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		switch res, report := regmodel.Check(history, 60*time.Second); res {
		case porcupine.Ok:
		case porcupine.Illegal:
			t.Fatalf("the history of %d operations is not linearizable\n%s", len(history), report)
		default:
			t.Fatalf("linearizability check inconclusive (%v) for %d operations", res, len(history))
		}
	})
}

// linearizableOp makes the call of the linearizability tests that r (0-9)
// picks on n: 40% gets, 30% puts, 20% compare-and-sets against the version
// this client last saw of the key, 10% deletes. It fills in in.Op (and
// in.IfVer) and says what came of it; a refused condition or a missing
// item is an answer, not an error.
func linearizableOp(ctx context.Context, n *Node, in *regmodel.Input, r int, lastSeen map[string]string) (regmodel.Output, error) {
	var out regmodel.Output
	var it *item.Item
	var err error
	switch {
	case r < 4:
		in.Op = "get"
		if it, err = n.Get(ctx, "t", in.Key); err == nil {
			var v string
			json.Unmarshal(it.Data, &v)
			out = regmodel.Output{OK: true, Value: v, Version: it.Version}
		}
	case r < 7:
		in.Op = "put"
		data, _ := json.Marshal(in.Value)
		if it, _, err = n.Put(ctx, "t", &item.Item{ID: in.Key, Data: data}, item.Cond{}); err == nil {
			out = regmodel.Output{OK: true, Version: it.Version}
		}
	case r < 9:
		in.Op, in.IfVer = "cas", lastSeen[in.Key]
		if in.IfVer == "" {
			in.IfVer = "0"
		}
		data, _ := json.Marshal(in.Value)
		if it, _, err = n.Put(ctx, "t", &item.Item{ID: in.Key, Data: data}, item.Cond{IfMatch: in.IfVer}); err == nil {
			out = regmodel.Output{OK: true, Version: it.Version}
		}
	default:
		in.Op = "del"
		if err = n.Delete(ctx, "t", in.Key, item.Cond{}); err == nil {
			out.OK = true
		}
	}
	if out.Version != "" {
		lastSeen[in.Key] = out.Version
	}
	if errors.Is(err, item.ErrNotFound) || errors.Is(err, item.ErrPreconditionFailed) {
		err = nil
	}
	return out, err
}
