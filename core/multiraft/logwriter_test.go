package multiraft

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// gatedLog lets the first synced write after armed through and holds
// every later synced one until release is closed.
type gatedLog struct {
	logStore
	armed   atomic.Bool
	syncs   atomic.Int32
	first   chan struct{} // closed once the first armed sync is done
	release chan struct{}
}

func (l *gatedLog) writeOps(ctx context.Context, ops *logOps, sync bool) error {
	if sync && l.armed.Load() {
		if l.syncs.Add(1) == 1 {
			err := l.logStore.writeOps(ctx, ops, sync)
			close(l.first)
			return err
		}
		<-l.release
	}
	return l.logStore.writeOps(ctx, ops, sync)
}

// TestAnswerDoesNotWaitForLaterSync: a write is answered once its own log
// write is synced, while the next write's sync is still running — the
// driver does not hold a cycle's answers behind that cycle's sync. Here
// the second sync never ends until the test lets it.
func TestAnswerDoesNotWaitForLaterSync(t *testing.T) {
	c := emptyCluster(t, true, []GroupID{1}, 0)
	c.ids = []NodeID{1}
	gl := &gatedLog{first: make(chan struct{}), release: make(chan struct{})}
	n := c.startWith(1, func(cfg *Config) {
		cfg.wrapLog = func(ls logStore) logStore { gl.logStore = ls; return gl }
	})
	c.propose(1, "warm-up") // elected, every election write done
	defer close(gl.release)
	gl.armed.Store(true)

	propose := func(data string) <-chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := n.Propose(ctx, 1, []byte(data))
			done <- err
		}()
		return done
	}
	a := propose("a")
	<-gl.first // a's entry is synced; b goes into a later write
	b := propose("b")
	if err := <-a; err != nil {
		t.Fatalf("a, synced, was not answered while b's sync hangs: %v", err)
	}
	select {
	case err := <-b:
		t.Fatalf("b was answered before its log write was synced: %v", err)
	default:
	}
	if got := c.sms[1].commands(1); len(got) != 2 || got[1] != "a" {
		t.Fatalf("applied %q, want warm-up and a", got)
	}
}
