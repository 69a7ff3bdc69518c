package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
)

// TestWritesThroughLeadershipMoves: leaderships move again and again while
// writers write through every member. A write that reaches a replica which
// no longer leads its partition is refused unmade there and routed to the
// new leader, so every write succeeds — none fails, and none ends with an
// unknown outcome, as when a follower handed it to a leader that dropped
// it mid-transfer — and every one is read back.
func TestWritesThroughLeadershipMoves(t *testing.T) {
	c := newTestCluster(t)
	for _, id := range []string{"a", "b", "c"} {
		c.start(id)
	}
	c.waitPlacement(3)
	ms := []*member{c.members["a"], c.members["b"], c.members["c"]}

	stop := make(chan struct{})
	var mu sync.Mutex
	var written []string
	var failures []error
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				data, _ := json.Marshal(id)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, _, err := ms[(w+i)%len(ms)].node.Put(ctx, "t", &item.Item{ID: id, Data: data}, item.Cond{})
				cancel()
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("%s: %w", id, err))
				} else {
					written = append(written, id)
				}
				mu.Unlock()
			}
		})
	}
	moves := 0
	for round := range 40 {
		part := round % 8
		for _, m := range ms {
			if m.node.core.Leader(part) != core.RaftID(m.id) {
				continue
			}
			to := ms[(round+1)%len(ms)]
			if to == m {
				to = ms[(round+2)%len(ms)]
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if m.node.core.TransferLeadership(ctx, part, core.RaftID(to.id)) == nil {
				moves++
			}
			cancel()
		}
		time.Sleep(25 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d writes during %d leadership transfers", len(written), moves)
	for _, err := range failures {
		t.Error(err)
	}
	if len(written) == 0 || moves == 0 {
		t.Fatalf("%d writes, %d transfers: the test tested nothing", len(written), moves)
	}
	c.readAll(written, ms[0])
}
