// Package tierstest is the conformance suite for tiers.Store
// implementations. A backend's test calls Run with a constructor that
// returns a fresh, empty store; Run checks the contract of tiers.Store
// (reads, batches, iterators, snapshots, statistics and Close) with
// sub-tests, each on its own store. Reopen adds a durability check for
// stores that persist to a directory.
//
// The suite asserts behaviour only, never timing, so it runs the same
// against an in-memory store and a remote object store.
package tierstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/soullabs/brainy/tiers"
)

// A Known names a sub-test that a backend is known to fail and why; Run
// skips it with that reason, so the deviation shows in the test output
// instead of hiding in a missing case.
type Known struct {
	// Case is the sub-test's name, e.g. "Stats".
	Case string
	// Why explains the deviation (and names the issue tracking it).
	Why string
}

// Run runs the conformance suite. open returns a new, empty store for one
// sub-test; Run closes it (closing twice must be harmless, since some
// sub-tests close the store themselves and open may also register a
// cleanup that closes it). Sub-tests named in known are skipped.
func Run(t *testing.T, open func(t *testing.T) tiers.Store, known ...Known) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s tiers.Store)
	}{
		{"SetGet", testSetGet},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"Missing", testMissing},
		{"BatchOrder", testBatchOrder},
		{"EmptyBatch", testEmptyBatch},
		{"EmptyValue", testEmptyValue},
		{"LargeValue", testLargeValue},
		{"BinaryKeys", testBinaryKeys},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"BatchReuse", testBatchReuse},
		{"IterBounds", testIterBounds},
		{"IterSnapshot", testIterSnapshot},
		{"IterMany", testIterMany},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Stats", testStats},
		{"Closed", testClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range known {
				if k.Case == c.name {
					t.Skip("known deviation: " + k.Why)
				}
			}
			s := open(t)
			defer s.Close()
			c.fn(t, s)
		})
	}
}

// Reopen checks durability across Close: open(t, dir) must open the store
// kept in dir (a fresh directory the first time). Synced writes, including
// deletes, must be there after reopening, and nothing else.
func Reopen(t *testing.T, open func(t *testing.T, dir string) tiers.Store) {
	dir := t.TempDir()
	s := open(t, dir)
	want := map[string]string{}
	for i := range 50 {
		var b tiers.Batch
		k := fmt.Sprintf("k%03d", i)
		b.Set([]byte(k), []byte(fmt.Sprintf("v%d", i)))
		want[k] = fmt.Sprintf("v%d", i)
		if i%5 == 0 && i > 0 {
			d := fmt.Sprintf("k%03d", i-1)
			b.Delete([]byte(d))
			delete(want, d)
		}
		mustApply(t, s, &b)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	checkContents(t, s, want)
	// The reopened store accepts writes and keeps them over another reopen.
	var b tiers.Batch
	b.Set([]byte("after"), []byte("reopen"))
	want["after"] = "reopen"
	mustApply(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	checkContents(t, s, want)
}

// checkContents asserts that the store holds exactly want, through both
// Get and a full iteration.
func checkContents(t *testing.T, s tiers.Store, want map[string]string) {
	t.Helper()
	for k, v := range want {
		mustGet(t, s, k, v)
	}
	got := scan(t, s, nil, nil)
	if len(got) != len(want) {
		t.Fatalf("store holds %d keys, want %d", len(got), len(want))
	}
	for _, kv := range got {
		if v, ok := want[kv[0]]; !ok || v != kv[1] {
			t.Fatalf("store holds %q=%q, want it absent or %q", kv[0], kv[1], v)
		}
	}
}

func mustApply(t *testing.T, s tiers.Store, b *tiers.Batch) {
	t.Helper()
	if err := s.Apply(t.Context(), b, true); err != nil {
		t.Fatalf("Apply(%d writes): %v", b.Len(), err)
	}
}

func set(t *testing.T, s tiers.Store, kv ...string) {
	t.Helper()
	var b tiers.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	mustApply(t, s, &b)
}

func mustGet(t *testing.T, s tiers.Store, key, want string) {
	t.Helper()
	got, err := s.Get(t.Context(), []byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %.60q, want %.60q", key, got, want)
	}
}

func mustMiss(t *testing.T, s tiers.Store, key string) {
	t.Helper()
	got, err := s.Get(t.Context(), []byte(key))
	if !errors.Is(err, tiers.ErrNotFound) {
		t.Fatalf("Get(%q) = %.60q, %v; want tiers.ErrNotFound", key, got, err)
	}
}

// scan returns the [key, value] pairs of an iteration over [lower, upper).
func scan(t *testing.T, s tiers.Store, lower, upper []byte) [][2]string {
	t.Helper()
	it, err := s.NewIter(t.Context(), lower, upper)
	if err != nil {
		t.Fatalf("NewIter(%q, %q): %v", lower, upper, err)
	}
	var out [][2]string
	for it.Next() {
		out = append(out, [2]string{string(it.Key()), string(it.Value())})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterating [%q, %q): %v", lower, upper, err)
	}
	if err := it.Close(); err != nil {
		t.Fatalf("closing iterator: %v", err)
	}
	return out
}

func testSetGet(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1", "b", "2")
	mustGet(t, s, "a", "1")
	mustGet(t, s, "b", "2")
}

func testOverwrite(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1")
	set(t, s, "a", "two")
	mustGet(t, s, "a", "two")
	set(t, s, "a", "3")
	mustGet(t, s, "a", "3")
	if got := scan(t, s, nil, nil); len(got) != 1 || got[0] != [2]string{"a", "3"} {
		t.Fatalf("after overwrites the store holds %q, want one key a=3", got)
	}
}

func testDelete(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1", "b", "2")
	var b tiers.Batch
	b.Delete([]byte("a"))
	b.Delete([]byte("never-written")) // deleting a missing key is not an error
	mustApply(t, s, &b)
	mustMiss(t, s, "a")
	mustGet(t, s, "b", "2")
	set(t, s, "a", "again")
	mustGet(t, s, "a", "again")
}

func testMissing(t *testing.T, s tiers.Store) {
	mustMiss(t, s, "nothing")
	mustMiss(t, s, "")
	set(t, s, "ab", "1")
	mustMiss(t, s, "a")   // a prefix of a stored key
	mustMiss(t, s, "abc") // an extension of a stored key
}

// testBatchOrder checks that the writes of one batch apply in order, so the
// last write to a key wins.
func testBatchOrder(t *testing.T, s tiers.Store) {
	set(t, s, "gone", "old")
	var b tiers.Batch
	b.Set([]byte("x"), []byte("1"))
	b.Delete([]byte("x")) // set then delete: absent
	b.Delete([]byte("y"))
	b.Set([]byte("y"), []byte("2")) // delete then set: present
	b.Set([]byte("z"), []byte("first"))
	b.Set([]byte("z"), []byte("second")) // set twice: the second
	b.Delete([]byte("gone"))             // delete of an earlier batch's key
	b.Set([]byte("w"), []byte("1"))
	b.Delete([]byte("w"))
	b.Set([]byte("w"), []byte("3")) // set, delete, set: the last
	mustApply(t, s, &b)
	mustMiss(t, s, "x")
	mustGet(t, s, "y", "2")
	mustGet(t, s, "z", "second")
	mustMiss(t, s, "gone")
	mustGet(t, s, "w", "3")
	want := [][2]string{{"w", "3"}, {"y", "2"}, {"z", "second"}}
	if got := scan(t, s, nil, nil); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("scan = %q, want %q", got, want)
	}
}

func testEmptyBatch(t *testing.T, s tiers.Store) {
	var b tiers.Batch
	mustApply(t, s, &b)
	if err := s.Apply(t.Context(), &b, false); err != nil {
		t.Fatalf("Apply(empty, sync=false): %v", err)
	}
	if got := scan(t, s, nil, nil); len(got) != 0 {
		t.Fatalf("after an empty batch the store holds %q", got)
	}
}

func testEmptyValue(t *testing.T, s tiers.Store) {
	var b tiers.Batch
	b.Set([]byte("empty"), nil)
	b.Set([]byte("zero"), []byte{})
	mustApply(t, s, &b)
	for _, k := range []string{"empty", "zero"} {
		v, err := s.Get(t.Context(), []byte(k))
		if err != nil {
			t.Fatalf("Get(%q) of an empty value: %v (an empty value is not a missing key)", k, err)
		}
		if len(v) != 0 {
			t.Fatalf("Get(%q) = %q, want empty", k, v)
		}
	}
	if got := scan(t, s, nil, nil); len(got) != 2 {
		t.Fatalf("scan = %q, want the two keys with empty values", got)
	}
}

func testLargeValue(t *testing.T, s tiers.Store) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>8)
	}
	var b tiers.Batch
	b.Set([]byte("big"), big)
	b.Set([]byte("small"), []byte("s"))
	mustApply(t, s, &b)
	got, err := s.Get(t.Context(), []byte("big"))
	if err != nil {
		t.Fatalf("Get(big): %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("Get(big) returned %d bytes that differ from the 1 MiB written", len(got))
	}
	mustGet(t, s, "small", "s")
	it, err := s.NewIter(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.Next() || string(it.Key()) != "big" || !bytes.Equal(it.Value(), big) {
		t.Fatalf("iterator did not return the 1 MiB value intact (err %v)", it.Err())
	}
}

func testBinaryKeys(t *testing.T, s tiers.Store) {
	keys := [][]byte{
		{0x00},
		{0x00, 0x00},
		{0x00, 0xff},
		{0x01},
		{'a', 0x00, 'b'},
		{0x7f},
		{0x80},
		{0xfe, 0xff},
		{0xff},
		{0xff, 0xff, 0xff},
		bytes.Repeat([]byte{0xab}, 1000),
	}
	var b tiers.Batch
	for i, k := range keys {
		b.Set(k, []byte{byte(i)})
	}
	mustApply(t, s, &b)
	for i, k := range keys {
		v, err := s.Get(t.Context(), k)
		if err != nil || !bytes.Equal(v, []byte{byte(i)}) {
			t.Fatalf("Get(%x) = %x, %v; want %x", k, v, err, []byte{byte(i)})
		}
	}
	// Iteration is in bytewise order.
	got := scan(t, s, nil, nil)
	if len(got) != len(keys) {
		t.Fatalf("scan returned %d keys, want %d", len(got), len(keys))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1][0] >= got[i][0] {
			t.Fatalf("scan out of order: %x before %x", got[i-1][0], got[i][0])
		}
	}
	// Bounds are bytewise too: [0x00 0xff, 0x80) holds 0x00ff .. 0x7f.
	if got := scan(t, s, []byte{0x00, 0xff}, []byte{0x80}); len(got) != 4 {
		t.Fatalf("scan [00ff, 80) returned %d keys, want 4: %x", len(got), got)
	}
}

func testGetReturnsCopy(t *testing.T, s tiers.Store) {
	key, val := []byte("k"), []byte("value")
	var b tiers.Batch
	b.Set(key, val)
	mustApply(t, s, &b)
	b.Reset()
	key[0], val[0] = 'X', 'X' // the batch copied them
	mustGet(t, s, "k", "value")
	got, _ := s.Get(t.Context(), []byte("k"))
	got[0] = 'Y'
	mustGet(t, s, "k", "value") // Get returned a copy
}

func testBatchReuse(t *testing.T, s tiers.Store) {
	var b tiers.Batch
	b.Set([]byte("a"), []byte("1"))
	mustApply(t, s, &b)
	b.Reset()
	b.Set([]byte("b"), []byte("2"))
	mustApply(t, s, &b)
	b.Reset()
	mustApply(t, s, &b)
	mustGet(t, s, "a", "1")
	mustGet(t, s, "b", "2")
	if got := scan(t, s, nil, nil); len(got) != 2 {
		t.Fatalf("scan = %q, want a and b", got)
	}
}

func testIterBounds(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1", "b", "2", "ba", "3", "c", "4", "d", "5")
	cases := []struct {
		lower, upper []byte
		want         string
	}{
		{nil, nil, "a b ba c d"},
		{[]byte("b"), []byte("c"), "b ba"}, // lower inclusive, upper exclusive
		{[]byte("b"), nil, "b ba c d"},     // nil upper: no bound
		{nil, []byte("b"), "a"},
		{[]byte("bb"), []byte("cc"), "c"}, // bounds between keys
		{[]byte("c"), []byte("c"), ""},    // empty range
		{[]byte("e"), nil, ""},            // past the end
		{nil, []byte("a"), ""},
		{[]byte("a"), []byte("a\x00"), "a"},
	}
	for _, c := range cases {
		var keys []string
		for _, kv := range scan(t, s, c.lower, c.upper) {
			keys = append(keys, kv[0])
		}
		if got := fmt.Sprint(keys); got != "["+c.want+"]" {
			t.Errorf("scan [%q, %q) = %s, want [%s]", c.lower, c.upper, got, c.want)
		}
	}
	// Values travel with their keys.
	for _, kv := range scan(t, s, nil, nil) {
		mustGet(t, s, kv[0], kv[1])
	}
}

// testIterSnapshot checks that an iterator sees the store as of NewIter:
// not later sets, overwrites or deletes.
func testIterSnapshot(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1", "b", "2", "c", "3")
	it, err := s.NewIter(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var b tiers.Batch
	b.Set([]byte("a"), []byte("changed"))
	b.Delete([]byte("b"))
	b.Set([]byte("bb"), []byte("new"))
	b.Set([]byte("d"), []byte("new"))
	mustApply(t, s, &b)
	var got [][2]string
	for it.Next() {
		got = append(got, [2]string{string(it.Key()), string(it.Value())})
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("iterator opened before a batch saw %q, want %q", got, want)
	}
	want = [][2]string{{"a", "changed"}, {"bb", "new"}, {"c", "3"}, {"d", "new"}}
	if got := scan(t, s, nil, nil); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("iterator opened after the batch saw %q, want %q", got, want)
	}
}

// testIterMany iterates more keys than any page or chunk size a store is
// likely to use, with a write in the middle of the iteration.
func testIterMany(t *testing.T, s tiers.Store) {
	const n = 1500
	var b tiers.Batch
	for i := range n {
		b.Set(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%d", i))
	}
	mustApply(t, s, &b)
	it, err := s.NewIter(t.Context(), []byte("k00100"), []byte("k01400"))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	i := 100
	for it.Next() {
		if want := fmt.Sprintf("k%05d", i); string(it.Key()) != want {
			t.Fatalf("key %d = %q, want %q", i, it.Key(), want)
		}
		if want := fmt.Sprintf("v%d", i); string(it.Value()) != want {
			t.Fatalf("value of %q = %q, want %q", it.Key(), it.Value(), want)
		}
		if i == 700 {
			var b tiers.Batch
			b.Delete([]byte("k00900"))
			b.Set([]byte("k00800"), []byte("changed"))
			mustApply(t, s, &b)
		}
		i++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if i != 1400 {
		t.Fatalf("iteration ended at key %d, want 1400", i)
	}
}

// testConcurrentReaders runs Gets and iterations while batches apply. Each
// batch writes the same version to every key, so any reader that sees two
// versions in one iteration saw half a batch.
func testConcurrentReaders(t *testing.T, s tiers.Store) {
	const keys, versions, readers = 20, 30, 4
	write := func(v int) {
		var b tiers.Batch
		for k := range keys {
			b.Set(fmt.Appendf(nil, "k%02d", k), fmt.Appendf(nil, "%04d", v))
		}
		mustApply(t, s, &b)
	}
	write(0)
	ctx := t.Context()
	done := make(chan struct{})
	errs := make(chan error, readers)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- reader(ctx, s, r, keys, done)
		}()
	}
	for v := 1; v <= versions; v++ {
		write(v)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for k := range keys {
		mustGet(t, s, fmt.Sprintf("k%02d", k), fmt.Sprintf("%04d", versions))
	}
}

func reader(ctx context.Context, s tiers.Store, r, keys int, done <-chan struct{}) error {
	last := "" // versions a reader sees never go backwards
	for i := 0; ; i++ {
		select {
		case <-done:
			if i > 0 {
				return nil
			}
		default:
		}
		if (i+r)%2 == 0 {
			v, err := s.Get(ctx, fmt.Appendf(nil, "k%02d", i%keys))
			if err != nil {
				return fmt.Errorf("reader %d: Get during Apply: %w", r, err)
			}
			if string(v) < last {
				return fmt.Errorf("reader %d: Get returned version %s after %s", r, v, last)
			}
			last = string(v)
			continue
		}
		it, err := s.NewIter(ctx, nil, nil)
		if err != nil {
			return fmt.Errorf("reader %d: NewIter during Apply: %w", r, err)
		}
		n, version := 0, ""
		for it.Next() {
			if n == 0 {
				version = string(it.Value())
			} else if string(it.Value()) != version {
				it.Close()
				return fmt.Errorf("reader %d: one iteration saw versions %s and %s: a batch was half applied", r, version, it.Value())
			}
			n++
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("reader %d: iterating during Apply: %w", r, err)
		}
		it.Close()
		if n != keys {
			return fmt.Errorf("reader %d: iteration saw %d keys, want %d", r, n, keys)
		}
		if version < last {
			return fmt.Errorf("reader %d: iteration saw version %s after %s", r, version, last)
		}
		last = version
	}
}

// testStats checks that LiveBytes grows when data is written. It does not
// require an exact figure (the contract says "approximates"), nor that it
// shrinks on delete, which a log-structured store may only reflect after
// compaction.
func testStats(t *testing.T, s tiers.Store) {
	st := s.Stats()
	if st.Backend == "" {
		t.Fatalf("Stats().Backend is empty")
	}
	before := st.LiveBytes
	var b tiers.Batch
	b.Set([]byte("stats"), make([]byte, 256<<10))
	mustApply(t, s, &b)
	after := s.Stats().LiveBytes
	if after <= before {
		t.Fatalf("LiveBytes = %d after writing 256 KiB, was %d: want it to grow", after, before)
	}
}

func testClosed(t *testing.T, s tiers.Store) {
	set(t, s, "a", "1")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx := t.Context()
	if _, err := s.Get(ctx, []byte("a")); !errors.Is(err, tiers.ErrClosed) {
		t.Errorf("Get after Close: %v, want tiers.ErrClosed", err)
	}
	var b tiers.Batch
	b.Set([]byte("b"), []byte("2"))
	if err := s.Apply(ctx, &b, true); !errors.Is(err, tiers.ErrClosed) {
		t.Errorf("Apply after Close: %v, want tiers.ErrClosed", err)
	}
	if it, err := s.NewIter(ctx, nil, nil); !errors.Is(err, tiers.ErrClosed) {
		if it != nil {
			it.Close()
		}
		t.Errorf("NewIter after Close: %v, want tiers.ErrClosed", err)
	}
	_ = s.Stats() // must not panic
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}
