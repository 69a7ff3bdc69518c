package buffered

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/tierstest"
)

// counting counts the Applies that reach the store below.
type counting struct {
	tiers.Store
	applies int
}

func (c *counting) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	c.applies++
	return c.Store.Apply(ctx, b, sync)
}

func TestConformance(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store { return New(memory.New(), time.Hour) })
}

// TestConformanceUnsynced runs the suite with every Apply unsynced, so all
// reads go through the buffer.
func TestConformanceUnsynced(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store { return unsynced{New(memory.New(), time.Hour)} })
}

type unsynced struct{ *Store }

func (u unsynced) Apply(ctx context.Context, b *tiers.Batch, _ bool) error {
	return u.Store.Apply(ctx, b, false)
}

// TestUnsyncedRideAlong: unsynced writes are visible at once, reach the
// store below only with the next synced Apply, in one Apply, in order.
func TestUnsyncedRideAlong(t *testing.T) {
	ctx := context.Background()
	below := &counting{Store: memory.New()}
	s := New(below, time.Hour)
	defer s.Close()
	var b tiers.Batch
	b.Set([]byte("a"), []byte("1"))
	b.Set([]byte("b"), []byte("1"))
	if err := s.Apply(ctx, &b, false); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	b.Delete([]byte("b"))
	if err := s.Apply(ctx, &b, false); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, []byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("an unsynced write is not visible: %q %v", v, err)
	}
	if _, err := s.Get(ctx, []byte("b")); err != tiers.ErrNotFound {
		t.Fatalf("an unsynced delete is not visible: %v", err)
	}
	if below.applies != 0 {
		t.Fatalf("unsynced writes reached the store below (%d applies)", below.applies)
	}
	b.Reset()
	b.Set([]byte("a"), []byte("2"))
	if err := s.Apply(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	if below.applies != 1 {
		t.Fatalf("a synced Apply with buffered writes made %d applies below, want 1", below.applies)
	}
	if v, _ := below.Get(ctx, []byte("a")); string(v) != "2" {
		t.Fatalf("below holds a=%q: the synced write must come after the buffered one", v)
	}
	if _, err := below.Get(ctx, []byte("b")); err != tiers.ErrNotFound {
		t.Fatalf("the buffered delete did not reach the store below: %v", err)
	}
}

// TestFlushAfter: buffered writes reach the store below on their own.
func TestFlushAfter(t *testing.T) {
	below := &counting{Store: memory.New()}
	s := New(below, 10*time.Millisecond)
	defer s.Close()
	var b tiers.Batch
	b.Set([]byte("k"), []byte("v"))
	if err := s.Apply(context.Background(), &b, false); err != nil {
		t.Fatal(err)
	}
	waitBelow(t, below, "k", "a buffered write never reached the store below")
}

// TestUnsyncedNeverAloneWhileSyncsCome: with the default wait, unsynced
// writes cost no write below of their own for far longer than a raft
// node's writes are apart; the next synced Apply carries them. With a
// negative wait they go only with a synced Apply or at Close.
func TestUnsyncedNeverAloneWhileSyncsCome(t *testing.T) {
	ctx := context.Background()
	for _, flushAfter := range []time.Duration{0, -1} {
		below := &slowApply{Store: memory.New()}
		s := New(below, flushAfter)
		for i := range 3 {
			var b tiers.Batch
			b.Set(fmt.Appendf(nil, "applied%d", i), []byte("v"))
			if err := s.Apply(ctx, &b, false); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond) // longer than the old 100 ms wait
			if n := below.count(); n != i {
				t.Fatalf("flushAfter %v: %d writes below after %d unsynced and %d synced Applies", flushAfter, n, i+1, i)
			}
			b.Reset()
			b.Set(fmt.Appendf(nil, "log%d", i), []byte("v"))
			if err := s.Apply(ctx, &b, true); err != nil {
				t.Fatal(err)
			}
			if v, err := below.Get(ctx, fmt.Appendf(nil, "applied%d", i)); err != nil || string(v) != "v" {
				t.Fatalf("flushAfter %v: the synced Apply did not carry the unsynced write: %q %v", flushAfter, v, err)
			}
		}
		var b tiers.Batch
		b.Set([]byte("last"), []byte("v"))
		if err := s.Apply(ctx, &b, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := below.count(); n != 4 {
			t.Fatalf("flushAfter %v: %d writes below, want 4 (3 synced, 1 at Close)", flushAfter, n)
		}
		if _, err := below.Get(ctx, []byte("last")); err != nil {
			t.Fatalf("flushAfter %v: Close did not flush: %v", flushAfter, err)
		}
	}
}

// TestSizeBoundFlushes: unsynced writes that reach maxPending are flushed
// without a synced Apply, even when the age never triggers.
func TestSizeBoundFlushes(t *testing.T) {
	ctx := context.Background()
	below := &counting{Store: memory.New()}
	s := New(below, -1)
	defer s.Close()
	s.maxPending = 1 << 10
	for i := range 20 {
		var b tiers.Batch
		b.Set(fmt.Appendf(nil, "k%02d", i), make([]byte, 100))
		if err := s.Apply(ctx, &b, false); err != nil {
			t.Fatal(err)
		}
	}
	waitBelow(t, below, "k00", "2 KB of unsynced writes over a 1 KiB bound never reached the store below")
}

// waitBelow waits until key is in the store below (10 s at most, else
// the test fails with why).
func waitBelow(t *testing.T, below tiers.Store, key, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := below.Get(context.Background(), []byte(key)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUnsyncedDuringAFlushWait: unsynced writes that arrive while a synced
// Apply's write is in flight are not written after it on their own; the
// next synced Apply carries them.
func TestUnsyncedDuringAFlushWait(t *testing.T) {
	ctx := context.Background()
	below := &slowApply{Store: memory.New(), delay: 50 * time.Millisecond}
	s := New(below, -1)
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		var b tiers.Batch
		b.Set([]byte("log1"), []byte("v"))
		done <- s.Apply(ctx, &b, true)
	}()
	time.Sleep(10 * time.Millisecond) // the synced write is in flight
	var b tiers.Batch
	b.Set([]byte("applied"), []byte("v"))
	if err := s.Apply(ctx, &b, false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := below.count(); n != 1 {
		t.Fatalf("%d writes below after one synced Apply: the unsynced write went alone", n)
	}
	b.Reset()
	b.Set([]byte("log2"), []byte("v"))
	if err := s.Apply(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	if v, err := below.Get(ctx, []byte("applied")); err != nil || string(v) != "v" || below.count() != 2 {
		t.Fatalf("the second synced Apply did not carry the unsynced write: %q %v, %d writes", v, err, below.count())
	}
}

// slowApply is a store below whose synced Applies take a while, like an
// object Put, and which counts them.
type slowApply struct {
	tiers.Store
	delay   time.Duration // 0: 2 ms
	mu      sync.Mutex
	applies int
}

func (s *slowApply) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	time.Sleep(cmp.Or(s.delay, 2*time.Millisecond))
	s.mu.Lock()
	s.applies++
	s.mu.Unlock()
	return s.Store.Apply(ctx, b, sync)
}

// Close leaves the store below open, so that a test can read it after.
func (s *slowApply) Close() error { return nil }

func (s *slowApply) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

// TestGroupCommitAndReadsNeverWait: concurrent synced writers share the
// writes below, and reads of buffered keys answer while a write is in
// flight.
func TestGroupCommitAndReadsNeverWait(t *testing.T) {
	ctx := context.Background()
	below := &slowApply{Store: memory.New()}
	s := New(below, time.Hour)
	defer s.Close()
	var b tiers.Batch
	b.Set([]byte("buffered"), []byte("v"))
	if err := s.Apply(ctx, &b, false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			var b tiers.Batch
			b.Set(fmt.Appendf(nil, "k%d", i), []byte("v"))
			if err := s.Apply(ctx, &b, true); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	below.mu.Lock()
	applies := below.applies
	below.mu.Unlock()
	if applies >= 32 {
		t.Errorf("32 concurrent synced writes made %d writes below: they should share them", applies)
	}
	for i := range 32 {
		if _, err := s.Get(ctx, fmt.Appendf(nil, "k%d", i)); err != nil {
			t.Fatalf("k%d: %v", i, err)
		}
	}
	if v, err := below.Get(ctx, []byte("buffered")); err != nil || string(v) != "v" {
		t.Fatalf("the buffered write did not ride along: %q %v", v, err)
	}
}

// slowIter is a store whose iterators block in their first Next until
// release is closed, as an object store's first range read would.
type slowIter struct {
	tiers.Store
	entered chan struct{} // closed when an iterator's first Next begins
	release chan struct{}
}

func (s *slowIter) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	it, err := s.Store.NewIter(ctx, lower, upper)
	return &blockingIter{Iterator: it, s: s}, err
}

type blockingIter struct {
	tiers.Iterator
	s    *slowIter
	once bool
}

func (b *blockingIter) Next() bool {
	if !b.once {
		b.once = true
		close(b.s.entered)
		<-b.s.release
	}
	return b.Iterator.Next()
}

// TestIterDoesNotBlockWrites: an iterator's first read of the store below
// happens outside the lock every write takes, so a slow one (a network
// round trip) stalls no write.
func TestIterDoesNotBlockWrites(t *testing.T) {
	inner := &slowIter{Store: memory.New(), entered: make(chan struct{}), release: make(chan struct{})}
	s := New(inner, time.Hour)
	defer s.Close()
	ctx := context.Background()
	iterDone := make(chan error, 1)
	go func() {
		it, err := s.NewIter(ctx, nil, nil)
		if err == nil {
			err = it.Close()
		}
		iterDone <- err
	}()
	<-inner.entered
	var b tiers.Batch
	b.Set([]byte("k"), []byte("v"))
	wrote := make(chan error, 1)
	go func() { wrote <- s.Apply(ctx, &b, false) }()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		close(inner.release)
		t.Fatal("a write waited for an iterator's read of the store below")
	}
	close(inner.release)
	if err := <-iterDone; err != nil {
		t.Fatal(err)
	}
}
