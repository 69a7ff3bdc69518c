package segment

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
	"github.com/soullabs/brainy/tiers/s3"
	"github.com/soullabs/brainy/tiers/tierstest"
)

// The S3 tests run against the server named by BRAINY_TEST_S3_*, or one
// objstoretest provisions (versitygw) and TestMain stops afterwards.
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

func testConfig(objs objstore.Store) Config {
	return Config{Objects: objs, Location: "test", CompactInterval: -1, CacheBytes: 1 << 20}
}

func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.backoff = time.Millisecond
	t.Cleanup(func() { s.Close() })
	return s
}

// openS3 returns an objstore on the test S3 server under a fresh prefix.
func openS3(t testing.TB) objstore.Store {
	env := objstoretest.Use(t, objstoretest.S3)
	cfg := s3.LocalConfig(env["BRAINY_TEST_S3_ENDPOINT"], env["BRAINY_TEST_S3_BUCKET"],
		env["BRAINY_TEST_S3_ACCESS_KEY"], env["BRAINY_TEST_S3_SECRET_KEY"])
	cfg.Region = env["BRAINY_TEST_S3_REGION"]
	cfg.Prefix = fmt.Sprintf("segment-%s/", rand.Text()[:12])
	o, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("s3.Open: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		_ = o.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			_ = o.Delete(ctx, k)
		}
		o.Close()
	})
	return o
}

func TestConformanceMemory(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store { return open(t, testConfig(objstore.NewMemory())) })
}

func TestConformanceDir(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store {
		d, err := objstore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(d)
		cfg.CacheBytes = -1 // every read goes to the objects
		return open(t, cfg)
	})
}

func TestReopenDir(t *testing.T) {
	tierstest.Reopen(t, func(t *testing.T, dir string) tiers.Store {
		d, err := objstore.NewDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(d)
		cfg.CheckpointEvery = 7 // some opens replay segments, some load a checkpoint
		return open(t, cfg)
	})
}

func TestConformanceS3(t *testing.T) {
	objstoretest.Use(t, objstoretest.S3) // fail (CI) or skip once, not per case
	tierstest.Run(t, func(t *testing.T) tiers.Store {
		cfg := testConfig(openS3(t))
		cfg.CacheBytes = -1 // every read goes to the server
		return open(t, cfg)
	})
}

// model is the set of acknowledged writes.
type model struct {
	mu sync.Mutex
	kv map[string]string
}

func (m *model) check(t *testing.T, s tiers.Store) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.kv {
		got, err := s.Get(t.Context(), []byte(k))
		if err != nil || string(got) != v {
			t.Fatalf("Get(%q) = %q, %v; want %q", k, got, err, v)
		}
	}
	it, err := s.NewIter(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.Next() {
		if v, ok := m.kv[string(it.Key())]; !ok || v != string(it.Value()) {
			t.Fatalf("store holds %q=%q; acknowledged writes say %q (present %v)", it.Key(), it.Value(), v, ok)
		}
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(m.kv) {
		t.Fatalf("store holds %d keys, want %d", n, len(m.kv))
	}
}

// writeConcurrently applies batches from several goroutines; each batch
// sets a few keys of its writer's own range and deletes one, and is
// recorded in m once acknowledged.
func writeConcurrently(t *testing.T, s tiers.Store, m *model, writers, batches int, round string) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				var b tiers.Batch
				sets := map[string]string{}
				for j := range 3 {
					k := fmt.Sprintf("w%02d/k%03d", w, (i*3+j)%40)
					v := fmt.Sprintf("%s-%d-%d", round, i, j)
					b.Set([]byte(k), []byte(v))
					sets[k] = v
				}
				del := fmt.Sprintf("w%02d/k%03d", w, (i*7)%40)
				b.Delete([]byte(del))
				if err := s.Apply(t.Context(), &b, true); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
				m.mu.Lock()
				for k, v := range sets {
					m.kv[k] = v
				}
				delete(m.kv, del)
				m.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// backends are the object stores the behaviour tests run on.
var backends = []struct {
	name string
	new  func(t *testing.T) objstore.Store
}{
	{"Memory", func(t *testing.T) objstore.Store { return objstore.NewMemory() }},
	{"Dir", func(t *testing.T) objstore.Store {
		d, err := objstore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}},
	{"S3", func(t *testing.T) objstore.Store { return openS3(t) }},
}

func forBackends(t *testing.T, fn func(t *testing.T, objs objstore.Store)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.new(t)) })
	}
}

// TestCrashRecovery abandons a store without Close (no final checkpoint)
// and checks that a new Open over the same objects holds every
// acknowledged write and nothing else, three times over.
func TestCrashRecovery(t *testing.T) { forBackends(t, testCrashRecovery) }

func testCrashRecovery(t *testing.T, objs objstore.Store) {
	cfg := testConfig(objs)
	cfg.CheckpointEvery = 5
	m := &model{kv: map[string]string{}}
	for round := range 3 {
		s := open(t, cfg)
		m.check(t, s)
		writeConcurrently(t, s, m, 4, 25, fmt.Sprint("r", round))
		m.check(t, s)
		if err := s.shutdown(false); err != nil {
			t.Fatal(err)
		}
	}
	// The log was checkpointed along the way, so recovery combined a
	// checkpoint with replay.
	body, _, err := objs.Get(t.Context(), manifestKey)
	if err != nil {
		t.Fatal(err)
	}
	if mf, err := decodeManifest(body); err != nil || mf.Checkpoint == 0 {
		t.Fatalf("MANIFEST = %+v, %v; want a checkpoint", mf, err)
	}
	s := open(t, cfg)
	m.check(t, s)
}

// failingPuts makes Puts of segments fail, counting them.
type failingPuts struct {
	objstore.Store
	fail   atomic.Int32 // number of segment Puts still to fail; < 0 fails all
	stored atomic.Bool  // store the object before failing (an ambiguous failure)
	fails  atomic.Int32
}

func (f *failingPuts) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	if len(key) > 4 && key[:4] == segPrefix {
		n := f.fail.Load()
		if n < 0 || (n > 0 && f.fail.CompareAndSwap(n, n-1)) {
			f.fails.Add(1)
			if f.stored.Load() {
				if _, err := f.Store.Put(ctx, key, body, cond); err != nil {
					return "", err
				}
			}
			return "", fmt.Errorf("injected failure of %s: %w", key, objstore.ErrUnavailable)
		}
	}
	return f.Store.Put(ctx, key, body, cond)
}

func TestFailingPut(t *testing.T) {
	objs := &failingPuts{Store: objstore.NewMemory()}
	s := open(t, testConfig(objs))
	set := func(k, v string) error {
		var b tiers.Batch
		b.Set([]byte(k), []byte(v))
		return s.Apply(t.Context(), &b, true)
	}
	if err := set("a", "1"); err != nil {
		t.Fatal(err)
	}

	// Transient failures are retried with the same bytes.
	objs.fail.Store(2)
	if err := set("b", "2"); err != nil {
		t.Fatalf("Apply after 2 transient failures: %v", err)
	}
	if objs.fails.Load() != 2 {
		t.Fatalf("%d injected failures, want 2", objs.fails.Load())
	}

	// A Put that stored the object but reported failure: the retry finds
	// identical bytes and counts it as success.
	objs.stored.Store(true)
	objs.fail.Store(1)
	if err := set("c", "3"); err != nil {
		t.Fatalf("Apply after an ambiguous failure: %v", err)
	}
	objs.stored.Store(false)

	// Persistent failure: Apply fails, the write is invisible, and the
	// store refuses every later write.
	objs.fail.Store(-1)
	err := set("d", "4")
	if err == nil || !errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Apply with every Put failing: %v, want an ErrUnavailable", err)
	}
	if _, err := s.Get(t.Context(), []byte("d")); !errors.Is(err, tiers.ErrNotFound) {
		t.Fatalf("Get of the failed write: %v, want ErrNotFound", err)
	}
	objs.fail.Store(0)
	if err := set("e", "5"); err == nil {
		t.Fatal("Apply on a failed store succeeded")
	}
	m := &model{kv: map[string]string{"a": "1", "b": "2", "c": "3"}}
	m.check(t, s)
	s.shutdown(false)

	// The acknowledged writes survive; the failed ones never happened.
	m.check(t, open(t, testConfig(objs)))
}

func countObjects(t *testing.T, objs objstore.Store, prefix string) int {
	t.Helper()
	n := 0
	if err := objs.List(t.Context(), prefix, func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCompaction(t *testing.T) { forBackends(t, testCompaction) }

func testCompaction(t *testing.T, objs objstore.Store) {
	cfg := testConfig(objs)
	cfg.CheckpointEvery = 1000 // only Compact and Close checkpoint
	s := open(t, cfg)
	m := &model{kv: map[string]string{}}
	// A segment of 20 keys, then 15 of them overwritten many times, one
	// batch (so one segment) at a time.
	var b tiers.Batch
	for k := range 20 {
		key, val := fmt.Sprintf("k%02d", k), fmt.Sprintf("first-%d-%s", k, make([]byte, 100))
		b.Set([]byte(key), []byte(val))
		m.kv[key] = val
	}
	if err := s.Apply(t.Context(), &b, true); err != nil {
		t.Fatal(err)
	}
	for round := range 30 {
		b.Reset()
		for k := range 15 {
			key, val := fmt.Sprintf("k%02d", k), fmt.Sprintf("r%d-%d", round, k)
			b.Set([]byte(key), []byte(val))
			m.kv[key] = val
		}
		if err := s.Apply(t.Context(), &b, true); err != nil {
			t.Fatal(err)
		}
	}
	before := countObjects(t, objs, segPrefix)
	if before != 31 {
		t.Fatalf("%d segments before compaction, want 31", before)
	}
	if err := s.Compact(t.Context()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	// What is left: the last overwrite and the rewrite of the first
	// segment's five untouched keys.
	if after := countObjects(t, objs, segPrefix); after != 2 {
		t.Fatalf("%d segments after compaction, want 2", after)
	}
	if _, _, err := objs.Get(t.Context(), segKey(1)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("the sparse first segment still exists after compaction (err %v)", err)
	}
	if n := countObjects(t, objs, ckptPrefix); n != 1 {
		t.Fatalf("%d checkpoints after compaction, want only the latest", n)
	}
	m.check(t, s)
	s.shutdown(false)
	m.check(t, open(t, cfg))
}

// TestRewriteDoesNotResurrect queues a compaction rewrite of a value that
// is overwritten (and of one deleted) before the rewrite reaches the
// writer: the writer must drop those records.
func TestRewriteDoesNotResurrect(t *testing.T) {
	s := open(t, testConfig(objstore.NewMemory()))
	set := func(del bool, k, v string) {
		var b tiers.Batch
		if del {
			b.Delete([]byte(k))
		} else {
			b.Set([]byte(k), []byte(v))
		}
		if err := s.Apply(t.Context(), &b, true); err != nil {
			t.Fatal(err)
		}
	}
	set(false, "a", "old")
	set(false, "b", "old")
	set(false, "c", "old")
	s.mu.RLock()
	var from []entry
	for _, k := range []string{"a", "b", "c"} {
		e, _ := s.tree.Get(entry{key: []byte(k)})
		from = append(from, e)
	}
	s.mu.RUnlock()
	set(false, "a", "new")
	set(true, "b", "")
	r := &request{done: make(chan error, 1)}
	for _, e := range from {
		if err := r.add(false, e.key, []byte("old")); err != nil {
			t.Fatal(err)
		}
		r.from = append(r.from, loc{e.seq, e.off})
	}
	if err := s.enqueue(r); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	m := &model{kv: map[string]string{"a": "new", "c": "old"}}
	m.check(t, s)
	e, _ := s.tree.Get(entry{key: []byte("c")})
	if e.seq == from[2].seq {
		t.Fatalf("c was not rewritten (still in segment %d)", e.seq)
	}
}

// TestFencing opens two stores on one prefix: the second writer to claim a
// seq fails instead of overwriting, and the log keeps the first's writes.
func TestFencing(t *testing.T) { forBackends(t, testFencing) }

func testFencing(t *testing.T, objs objstore.Store) {
	cfg := testConfig(objs)
	a := open(t, cfg)
	set := func(s *Store, k, v string) error {
		var b tiers.Batch
		b.Set([]byte(k), []byte(v))
		return s.Apply(t.Context(), &b, true)
	}
	if err := set(a, "k", "a1"); err != nil {
		t.Fatal(err)
	}
	b := open(t, cfg) // replays a's segment
	if err := set(a, "k", "a2"); err != nil {
		t.Fatal(err)
	}
	if err := set(b, "k", "b1"); !errors.Is(err, ErrFenced) {
		t.Fatalf("second writer's Apply: %v, want ErrFenced", err)
	}
	if err := set(b, "x", "b2"); !errors.Is(err, ErrFenced) {
		t.Fatalf("second writer's next Apply: %v, want ErrFenced", err)
	}
	if err := set(a, "k", "a3"); err != nil {
		t.Fatalf("first writer after the second was fenced: %v", err)
	}
	// The loser must not checkpoint over the winner either.
	if err := b.Close(); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced store's Close: %v, want ErrFenced", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	m := &model{kv: map[string]string{"k": "a3"}}
	m.check(t, open(t, cfg))
}

// TestFencingManifest: a store whose MANIFEST was advanced by another
// writer fails instead of overwriting it.
func TestFencingManifest(t *testing.T) { forBackends(t, testFencingManifest) }

func testFencingManifest(t *testing.T, objs objstore.Store) {
	cfg := testConfig(objs)
	a := open(t, cfg)
	b := open(t, cfg)
	var batch tiers.Batch
	batch.Set([]byte("k"), []byte("b"))
	if err := b.Apply(t.Context(), &batch, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // checkpoints: MANIFEST moves
		t.Fatal(err)
	}
	batch.Reset()
	batch.Set([]byte("k"), []byte("a"))
	if err := a.Apply(t.Context(), &batch, true); !errors.Is(err, ErrFenced) {
		t.Fatalf("Apply on a stale store: %v, want ErrFenced", err)
	}
	if err := a.Close(); !errors.Is(err, ErrFenced) {
		t.Fatalf("Close of a stale store: %v, want ErrFenced", err)
	}
}

// slowPuts delays every Put, as a remote store does, so that concurrent
// Applies queue behind the one in flight.
type slowPuts struct {
	objstore.Store
	delay time.Duration
}

func (s slowPuts) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	time.Sleep(s.delay)
	return s.Store.Put(ctx, key, body, cond)
}

// TestFewObjects checks group commit: many concurrent one-item Applies
// share segments, so the bucket holds far fewer objects than items and
// the store issued far fewer Puts.
func TestFewObjects(t *testing.T) {
	mem := objstore.NewMemory()
	cfg := testConfig(slowPuts{mem, 2 * time.Millisecond})
	cfg.CheckpointEvery = 16
	s := open(t, cfg)
	const writers, each = 64, 40
	m := &model{kv: map[string]string{}}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var b tiers.Batch
				k, v := fmt.Sprintf("w%02d-%03d", w, i), fmt.Sprintf("%0100d", i)
				b.Set([]byte(k), []byte(v))
				if err := s.Apply(t.Context(), &b, true); err != nil {
					t.Error(err)
					return
				}
				m.mu.Lock()
				m.kv[k] = v
				m.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	items := writers * each
	objects := countObjects(t, mem, "")
	puts := s.Requests().Puts
	t.Logf("%d items: %d objects in the bucket, %d Puts", items, objects, puts)
	if objects > items/20 {
		t.Fatalf("%d objects for %d items, want at most %d", objects, items, items/20)
	}
	if float64(puts)/float64(items) > 0.05 {
		t.Fatalf("%d Puts for %d items (%.3f per item), want at most 0.05", puts, items, float64(puts)/float64(items))
	}
	m.check(t, open(t, testConfig(mem)))
}

// TestMissingSegment: recovery names the missing segment rather than
// silently skipping it.
func TestMissingSegment(t *testing.T) {
	objs := objstore.NewMemory()
	s := open(t, testConfig(objs))
	for i := range 3 {
		var b tiers.Batch
		b.Set([]byte("k"), []byte{byte(i)})
		if err := s.Apply(t.Context(), &b, true); err != nil {
			t.Fatal(err)
		}
	}
	s.shutdown(false)
	if err := objs.Delete(t.Context(), segKey(2)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), testConfig(objs))
	if err == nil || !containsAll(err.Error(), segKey(2), "missing") {
		t.Fatalf("Open with seg 2 missing: %v, want an error naming %s", err, segKey(2))
	}
}

// TestCorruptSegment: a damaged segment fails recovery with ErrCorrupt and
// a Get of a damaged record fails too; neither panics.
func TestCorruptSegment(t *testing.T) {
	objs := objstore.NewMemory()
	s := open(t, testConfig(objs))
	var b tiers.Batch
	b.Set([]byte("key"), []byte("value"))
	if err := s.Apply(t.Context(), &b, true); err != nil {
		t.Fatal(err)
	}
	body, _, _ := objs.Get(t.Context(), segKey(1))
	body[len(body)-trailerLen-1] ^= 0x40 // last byte of the value
	if _, err := objs.Put(t.Context(), segKey(1), body, objstore.Cond{}); err != nil {
		t.Fatal(err)
	}
	s.cache = nil
	if _, err := s.Get(t.Context(), []byte("key")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of a damaged record: %v, want ErrCorrupt", err)
	}
	s.shutdown(false)
	if _, err := Open(t.Context(), testConfig(objs)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open over a damaged segment: %v, want ErrCorrupt", err)
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	c.CompactRatio = 2
	c.CheckpointEvery = -1
	err := c.Validate()
	if err == nil || !containsAll(err.Error(), "Objects is required", "CompactRatio (2)", "CheckpointEvery (-1)") {
		t.Fatalf("Validate = %v, want every problem named", err)
	}
	c = Config{Objects: objstore.NewMemory()}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestIteratorPinsSegments: segments an open iterator's snapshot needs are
// not collected until it closes, even after they are overwritten and a
// checkpoint makes them collectable.
func TestIteratorPinsSegments(t *testing.T) {
	objs := objstore.NewMemory()
	cfg := testConfig(objs)
	cfg.CacheBytes = -1 // the iterator must read the segments
	s := open(t, cfg)
	write := func(v string) {
		var b tiers.Batch
		for k := range 10 {
			b.Set(fmt.Appendf(nil, "k%d", k), []byte(v))
		}
		if err := s.Apply(t.Context(), &b, true); err != nil {
			t.Fatal(err)
		}
	}
	write("old")
	it, err := s.NewIter(t.Context(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write("new")
	if err := s.Compact(t.Context()); err != nil { // checkpoints and collects
		t.Fatal(err)
	}
	if _, _, err := objs.Get(t.Context(), segKey(1)); err != nil {
		t.Fatalf("segment 1 was collected under an open iterator: %v", err)
	}
	n := 0
	for it.Next() {
		if string(it.Value()) != "old" {
			t.Fatalf("iterator saw %q=%q, want the old value", it.Key(), it.Value())
		}
		n++
	}
	if it.Err() != nil || n != 10 {
		t.Fatalf("iterator saw %d keys, err %v; want 10", n, it.Err())
	}
	it.Close()
	if err := s.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := objs.Get(t.Context(), segKey(1)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("segment 1 still exists after its iterator closed and a checkpoint: %v", err)
	}
}

// TestCollectKeepsCheckpointSegments: a segment the current index no
// longer references, but the checkpoint in MANIFEST still does, must
// survive collection, or recovery from that checkpoint would fail.
func TestCollectKeepsCheckpointSegments(t *testing.T) {
	objs := objstore.NewMemory()
	cfg := testConfig(objs)
	s := open(t, cfg)
	set := func(v string) {
		var b tiers.Batch
		b.Set([]byte("k"), []byte(v))
		if err := s.Apply(t.Context(), &b, true); err != nil {
			t.Fatal(err)
		}
	}
	set("1")
	if err := s.checkpoint(t.Context()); err != nil { // MANIFEST → checkpoint 1, which references seg 1
		t.Fatal(err)
	}
	set("2") // seg 2; the index no longer references seg 1
	s.ckptMu.Lock()
	err := s.collect(t.Context()) // as a checkpoint racing the write would
	s.ckptMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := objs.Get(t.Context(), segKey(1)); err != nil {
		t.Fatalf("seg 1, referenced by MANIFEST's checkpoint, was collected: %v", err)
	}
	s.shutdown(false)
	m := &model{kv: map[string]string{"k": "2"}}
	m.check(t, open(t, cfg))
}

// TestCrashDuringMaintenance writes over a small key space (so segments
// die quickly) while checkpoints run every few segments and compaction
// runs continuously, reads all the while, then abandons the store and
// checks that recovery holds exactly the acknowledged writes.
func TestCrashDuringMaintenance(t *testing.T) { forBackends(t, testCrashDuringMaintenance) }

func testCrashDuringMaintenance(t *testing.T, objs objstore.Store) {
	cfg := testConfig(objs)
	cfg.CheckpointEvery = 3
	cfg.CompactRatio = 0.9
	m := &model{kv: map[string]string{}}
	for round := range 2 {
		s := open(t, cfg)
		stop := make(chan struct{})
		var bg sync.WaitGroup
		bg.Add(2)
		go func() { // compactor
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Compact(t.Context()); err != nil {
					t.Errorf("Compact: %v", err)
					return
				}
			}
		}()
		go func() { // reader: every key it finds must read back whole
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				it, err := s.NewIter(t.Context(), nil, nil)
				if err != nil {
					t.Errorf("NewIter: %v", err)
					return
				}
				for it.Next() {
					if _, err := s.Get(t.Context(), it.Key()); err != nil && !errors.Is(err, tiers.ErrNotFound) {
						t.Errorf("Get(%q) during compaction: %v", it.Key(), err)
					}
				}
				if err := it.Err(); err != nil {
					t.Errorf("iterating during compaction: %v", err)
				}
				it.Close()
			}
		}()
		writeConcurrently(t, s, m, 4, 30, fmt.Sprint("r", round))
		close(stop)
		bg.Wait()
		m.check(t, s)
		if err := s.shutdown(false); err != nil {
			t.Fatal(err)
		}
		m.check(t, open(t, cfg))
	}
}

// TestApplyCancelled: an Apply whose context ends either withdraws its
// batch (and returns the context's error) or waits and reports it applied;
// never an error for a batch that was applied.
func TestApplyCancelled(t *testing.T) {
	mem := objstore.NewMemory()
	s := open(t, testConfig(slowPuts{mem, time.Millisecond}))
	var wg sync.WaitGroup
	results := make([]error, 200)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(t.Context())
			if i%2 == 0 {
				cancel() // already over when Apply starts
			} else {
				defer cancel()
			}
			var b tiers.Batch
			b.Set(fmt.Appendf(nil, "k%03d", i), []byte("v"))
			results[i] = s.Apply(ctx, &b, true)
		}()
	}
	wg.Wait()
	m := &model{kv: map[string]string{}}
	withdrawn := 0
	for i, err := range results {
		switch {
		case err == nil:
			m.kv[fmt.Sprintf("k%03d", i)] = "v"
		case errors.Is(err, context.Canceled):
			withdrawn++
		default:
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	t.Logf("%d of %d cancelled Applies withdrew their batch", withdrawn, len(results)/2)
	m.check(t, s)
	s.shutdown(false)
	m.check(t, open(t, testConfig(mem)))
}

// TestIteratorsReadSmallSegmentsWhole: two key ranges written
// interleaved, one small segment per write (as a raft node writes its
// groups' logs, one segment per cycle). Iterating the first range reads
// each segment once, whole; iterating the second then finds every value
// cached and reads nothing — rather than one range read per record each
// time, which made loading every group's log at start cost a round trip
// per entry.
func TestIteratorsReadSmallSegmentsWhole(t *testing.T) {
	forBackends(t, testIteratorsReadSmallSegmentsWhole)
}

func testIteratorsReadSmallSegmentsWhole(t *testing.T, objs objstore.Store) {
	s := open(t, testConfig(objs))
	ctx := context.Background()
	const n = 40
	for i := range n {
		var b tiers.Batch
		b.Set(fmt.Appendf(nil, "a/%03d", i), fmt.Appendf(nil, "value a %d", i))
		b.Set(fmt.Appendf(nil, "b/%03d", i), fmt.Appendf(nil, "value b %d", i))
		if err := s.Apply(ctx, &b, true); err != nil {
			t.Fatal(err)
		}
	}
	// A reopened store: nothing cached from the writes.
	s.Close()
	s = open(t, testConfig(objs))
	scan := func(prefix string) {
		t.Helper()
		it, err := s.NewIter(ctx, []byte(prefix), []byte(prefix+"\xff"))
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		i := 0
		for ; it.Next(); i++ {
			if want := fmt.Sprintf("value %s %d", prefix[:1], i); string(it.Value()) != want {
				t.Fatalf("%s: value %q, want %q", it.Key(), it.Value(), want)
			}
		}
		if it.Err() != nil || i != n {
			t.Fatalf("scan of %s: %d keys, err %v", prefix, i, it.Err())
		}
	}
	r0 := s.Requests()
	scan("a/")
	r1 := s.Requests()
	scan("b/")
	r2 := s.Requests()
	if reads := r1.Gets + r1.RangeGets - r0.Gets - r0.RangeGets; reads > n {
		t.Errorf("the first scan made %d reads for %d records in %d segments", reads, n, n)
	}
	if reads := r2.Gets + r2.RangeGets - r1.Gets - r1.RangeGets; reads != 0 {
		t.Errorf("the second scan made %d reads; its values came with the first scan's segments", reads)
	}
}
