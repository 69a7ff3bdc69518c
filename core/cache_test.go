package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers"
)

func TestRecordCacheFillLosesToCommitterWrites(t *testing.T) {
	c := newRecordCache(1 << 20)
	key := []byte("k")
	gen := c.generation(key)
	c.set("k", []byte("new")) // a commit lands between a reader's store read and its fill
	c.fill(key, []byte("old"), gen)
	if v, _ := c.get(key); string(v) != "new" {
		t.Fatalf("a stale fill replaced a committed write: %q", v)
	}
	// A committer write to another key of the same shard also voids a
	// fill: the shard's generation is all a reader can check.
	other := "k2"
	for i := 3; c.shard([]byte(other)) != c.shard(key); i++ {
		other = fmt.Sprint("k", i)
	}
	c.set("k", nil)
	gen = c.generation(key)
	c.set(other, []byte("x"))
	c.fill(key, []byte("maybe stale"), gen)
	if v, ok := c.get(key); ok {
		t.Fatalf("fill after a write to the shard was accepted: %q", v)
	}
	gen = c.generation(key)
	c.fill(key, []byte("fresh"), gen)
	if v, _ := c.get(key); string(v) != "fresh" {
		t.Fatalf("an undisturbed fill was dropped: %q", v)
	}
}

// TestRecordCacheFillWaitsForPendingWrite: while a write is in flight
// (perhaps stored, not yet set), some reader may already have read the
// newer value from the store, so nobody may read the older one from the
// cache: neither one cached before nor one a reader read before the write
// and fills during it.
func TestRecordCacheFillWaitsForPendingWrite(t *testing.T) {
	c := newRecordCache(1 << 20)
	key := []byte("k")
	write := []itemWrite{{key: "k", val: []byte("new")}}
	c.set("k", []byte("old"))
	c.begin(write) // the committer's store write begins
	if v, ok := c.get(key); ok {
		t.Fatalf("the older value stays cached while the store may hold the newer: %q", v)
	}
	c.set("k", nil)
	gen := c.generation(key) // a reader looks, misses, reads "old"
	c.begin(write)
	c.fill(key, []byte("old"), gen)
	if v, ok := c.get(key); ok {
		t.Fatalf("a fill during a pending write was accepted: %q", v)
	}
	gen = c.generation(key) // a reader looks while the write is pending
	c.set("k", []byte("new"))
	c.fill(key, []byte("old"), gen)
	if v, _ := c.get(key); string(v) != "new" {
		t.Fatalf("after the write: %q", v)
	}
	// A write that failed ends its mark: fills work again.
	c.set("k", nil)
	c.begin(write)
	c.abort(write)
	gen = c.generation(key)
	c.fill(key, []byte("stored"), gen)
	if v, _ := c.get(key); string(v) != "stored" {
		t.Fatalf("fill after an aborted write: %q", v)
	}
	if n := len(c.shard(key).pending); n != 0 {
		t.Fatalf("%d pending marks left", n)
	}
}

func TestRecordCacheStaysWithinBounds(t *testing.T) {
	c := newRecordCache(64 << 10)
	for i := range 10_000 {
		c.set(fmt.Sprintf("key-%d", i), make([]byte, 100))
	}
	if b, n := c.size(); b > 64<<10 || n == 0 {
		t.Fatalf("cache holds %d bytes in %d entries, bound 64 KiB", b, n)
	}
	if d := newRecordCache(-1); d.maxBytes.Load() != 0 {
		t.Fatal("a negative size should disable the cache")
	}
}

// TestReadsNeverGoBackwards: a writer overwrites items with increasing
// counters; readers must never see a value older than one already
// acknowledged. The cache is tiny, so evictions and read fills race with
// committed writes all the time.
func TestReadsNeverGoBackwards(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n, err := Open(ctx, Config{Store: s, CacheBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		const keys = 64
		var acked [keys]atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for k := range keys {
			wg.Go(func() { // one writer per key, so "acknowledged" is ordered
				for i := int64(1); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					data := json.RawMessage(strconv.FormatInt(i, 10))
					if _, _, err := n.Put(ctx, "t", &item.Item{ID: fmt.Sprint("k", k), Data: data}, item.Cond{}); err != nil {
						t.Error(err)
						return
					}
					acked[k].Store(i)
				}
			})
		}
		var readers sync.WaitGroup
		for r := range 4 {
			readers.Go(func() {
				for i := 0; i < 3000; i++ {
					// Each key twice in a row: the second read may hit
					// what the first filled, while writes race with both.
					k := (i/2 + r) % keys
					floor := acked[k].Load()
					it, err := n.Get(ctx, "t", fmt.Sprint("k", k))
					if floor == 0 {
						continue
					}
					if err != nil {
						t.Errorf("k%d: %v after %d was acknowledged", k, err, floor)
						return
					}
					got, _ := strconv.ParseInt(string(it.Data), 10, 64)
					if got < floor {
						t.Errorf("k%d: read %d after %d was acknowledged", k, got, floor)
						return
					}
				}
			})
		}
		readers.Wait()
		close(stop)
		wg.Wait()
		if m := n.Metrics(); m.Cache.Hits == 0 || m.Cache.Misses == 0 {
			t.Fatalf("the test should exercise both hits and misses: %+v", m.Cache)
		}
	})
}
