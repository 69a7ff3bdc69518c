package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport/pki"
	"github.com/soullabs/brainy/tuning"
)

// TestLeaseTable: a write between a read's prepare and its grant denies
// the lease; a write takes the live leases on its item (and only live
// ones) and no lease is granted while it is in flight.
func TestLeaseTable(t *testing.T) {
	lt := newLeaseTable()
	now := time.Now()
	seq, ok := lt.prepare("k")
	if !ok || !lt.grant("k", seq, "h1", now.Add(time.Second)) || !lt.grant("k", seq, "h2", now.Add(-time.Second)) {
		t.Fatal("a lease with no write about was refused")
	}
	seq, _ = lt.prepare("k")
	hs := lt.begin("k", now)
	if len(hs) != 1 || hs[0].node != "h1" {
		t.Fatalf("a write took %+v, want h1's live lease only", hs)
	}
	if lt.grant("k", seq, "h3", now.Add(time.Second)) {
		t.Fatal("a lease prepared before a write was granted during it")
	}
	if _, ok := lt.prepare("k"); ok {
		t.Fatal("prepare during a write")
	}
	lt.end("k")
	if lt.grant("k", seq, "h3", now.Add(time.Second)) {
		t.Fatal("a lease prepared before a write was granted after it")
	}
	seq, ok = lt.prepare("k")
	if !ok || !lt.grant("k", seq, "h3", now.Add(time.Second)) {
		t.Fatal("a lease after the write was refused")
	}
	taken := lt.take(0, func(string) int { return 0 }, now)
	if len(taken["k"]) != 1 || lt.size() != 0 {
		t.Fatalf("a transfer took %+v, left %d", taken, lt.size())
	}
}

// TestHotReadsStayLinearizable: with hot reads on, a node that does not
// lead a hot item answers reads of it from a leased copy, and yet no read
// that starts after a write was acknowledged returns an older value:
// writes (through the leader and through a third node) invalidate the
// copies first, and so does a leadership hand-over in the middle.
func TestHotReadsStayLinearizable(t *testing.T) {
	c := newTestCluster(t)
	c.profile = tuning.ReadHeavy
	c.start("a")
	c.start("b")
	c.start("c")
	c.waitPlacement(3)
	const key = "hot"
	put := func(via *member, v int) error {
		_, _, err := via.node.Put(context.Background(), "t", &item.Item{ID: key, Data: []byte(strconv.Itoa(v))}, item.Cond{})
		return err
	}
	if err := put(c.members["a"], 0); err != nil {
		t.Fatal(err)
	}
	part := core.PartitionOf("t", key, 8)
	// Wait for the leadership to settle where placement prefers it, so
	// that it stays put until the test moves it.
	var ms []Member
	for _, id := range []string{"a", "b", "c"} {
		ms = append(ms, Member{ID: id, Raft: core.RaftID(id)})
	}
	preferred := Place(part, ms, 3)[0]
	for deadline := time.Now().Add(20 * time.Second); c.members["a"].node.Core().Leader(part) != preferred; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("partition %d never led by its preferred leader", part)
		}
	}
	var leader, holder, other *member
	for _, id := range []string{"a", "b", "c"} {
		m := c.members[id]
		switch {
		case m.node.Core().Leader(part) == core.RaftID(id):
			leader = m
		case holder == nil:
			holder = m
		default:
			other = m
		}
	}
	if leader == nil {
		t.Fatal("no leader")
	}
	read := func() int {
		t.Helper()
		it, err := holder.node.Get(context.Background(), "t", key)
		for deadline := time.Now().Add(5 * time.Second); errors.Is(err, item.ErrUnavailable) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			it, err = holder.node.Get(context.Background(), "t", key)
		}
		if err != nil {
			t.Fatalf("reading at %s: %v", holder.id, err)
		}
		v, err := strconv.Atoi(string(it.Data))
		if err != nil {
			t.Fatalf("read %q", it.Data)
		}
		return v
	}
	// The leader counts the item hot after enough of its reads.
	for range 1500 {
		read()
	}
	if h := holder.node.Metrics().Tuning.HotHits; h == 0 {
		t.Fatalf("%s answered no read from a lease; leader %s granted %d", holder.id, leader.id, leader.node.Metrics().Tuning.LeasesGranted)
	}

	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failure atomic.Pointer[string]
	fail := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		failure.CompareAndSwap(nil, &s)
	}
	wg.Go(func() { // the writer, alternately through the leader and a third node
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			via := leader
			if i%2 == 0 {
				via = other
			}
			err := put(via, i)
			for errors.Is(err, item.ErrUnavailable) {
				time.Sleep(5 * time.Millisecond)
				err = put(via, i)
			}
			if err != nil {
				fail("writing %d via %s: %v", i, via.id, err)
				return
			}
			acked.Store(int64(i))
		}
	})
	hitsBefore := holder.node.Metrics().Tuning.HotHits
	reads := 0
	left := false
	for start := time.Now(); time.Since(start) < 3*time.Second && failure.Load() == nil; reads++ {
		if !left && time.Since(start) > time.Second {
			// Hand the leaderships over: leases end first.
			left = true
			go leader.node.Leave(context.Background())
		}
		floor := acked.Load()
		if v := read(); int64(v) < floor {
			fail("read %d at %s after %d was acknowledged", v, holder.id, floor)
		}
	}
	close(stop)
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(*f)
	}
	hits := holder.node.Metrics().Tuning.HotHits - hitsBefore
	t.Logf("%d reads at %s, %d from leases, while %d writes went on", reads, holder.id, hits, acked.Load())
	if hits == 0 {
		t.Fatal("no read under writes came from a lease: the test proves nothing")
	}
}

// TestHotMethodsRefuseGarbage: what a process holding a core certificate
// sends to the hot-read methods — truncated, oversized or random bytes —
// is refused as malformed, never a panic, and the node serves on.
func TestHotMethodsRefuseGarbage(t *testing.T) {
	c := newTestCluster(t)
	c.profile = tuning.ReadHeavy
	a := c.start("a")
	if _, _, err := a.node.Put(context.Background(), "t", &item.Item{ID: "x", Data: []byte(`1`)}, item.Cond{}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		b := make([]byte, rng.IntN(64))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 {
			b = append([]byte{byte(len(b))}, b...) // a plausible length prefix
		}
		_, _ = call(t, c, pki.RoleCore, "mallory", "a", wire.MethodHotGet, b)
		_, _ = call(t, c, pki.RoleCore, "mallory", "a", wire.MethodHotInvalidate, b)
	}
	if _, err := call(t, c, pki.RoleCore, "mallory", "a", wire.MethodHotInvalidate, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("an invalidation claiming a 4 GiB entry was accepted")
	}
	if it, err := a.node.Get(context.Background(), "t", "x"); err != nil || string(it.Data) != "1" {
		t.Fatalf("after the garbage: %v %v", it, err)
	}
	// A well-formed hot read from a stranger is answered, with no lease.
	out, err := call(t, c, pki.RoleCore, "mallory", "a", wire.MethodHotGet, wire.AppendRequest(nil, &wire.Request{Tenant: "t", ID: "x"}))
	if err != nil || len(out) == 0 || out[0] != 0 {
		t.Fatalf("a stranger's hot read: %x %v, want an answer without a lease", out, err)
	}
	if g := a.node.Metrics().Tuning.LeasesGranted; g != 0 {
		t.Fatalf("%d leases granted to a stranger", g)
	}
}

// TestInvalidationOvertakingItsLease: an invalidation that reaches the
// holder before the answer carrying the lease it ends (the leader granted,
// answered, then began a write) keeps that answer from being stored; an
// invalidation of another stripe's key does not.
func TestInvalidationOvertakingItsLease(t *testing.T) {
	h := newHotCopies()
	it := &item.Item{ID: "x", Data: []byte(`1`)}
	until := time.Now().Add(time.Minute)
	gen := h.beginGet("t\x00x")
	h.drop("t\x00x") // the invalidation, first
	h.put("t\x00x", it, until, gen)
	if _, ok := h.get("t\x00x", time.Now()); ok {
		t.Fatal("a copy whose lease was invalidated before its answer arrived was served")
	}
	gen = h.beginGet("t\x00x")
	h.put("t\x00x", it, until, gen)
	if _, ok := h.get("t\x00x", time.Now()); !ok {
		t.Fatal("a copy with no invalidation since its request was not kept")
	}
}
