package backend_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// The storage benchmarks measure each backend as a node uses it, through
// backend.Open: many goroutines each applying one-item synced batches,
// point reads (alone and while a writer commits), and the reads of a
// tiered store that hit each tier. Object stores run against
// the local test servers (versitygw, fake-gcs-server, Azurite), so their
// figures are the store's own cost plus loopback HTTP, not a cloud's.
//
//	make bench-storage
//	go test -run '^$' -bench . -benchtime 3s ./tiers/backend

func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// Workload constants.
const (
	benchWriters   = 64  // concurrent one-item synced writers
	benchValueSize = 100 // bytes per value
	preloadBatch   = 256 // items per batch when a benchmark preloads keys
	benchNodeID    = "bench"
)

// A benchBackend names a storage setting and makes one for a benchmark.
type benchBackend struct {
	name   string
	object bool // an object store: report its requests
	// setting returns the storage setting of a fresh, empty store, setting
	// the credentials it needs in the environment.
	setting func(b testing.TB) string
}

var benchBackends = []benchBackend{
	{"memory", false, func(testing.TB) string { return "memory" }},
	{"disk", false, func(b testing.TB) string { return b.TempDir() }},
	{"s3", true, s3Setting},
	{"gcs", true, gcsSetting},
	{"azure", true, azureSetting},
}

// benchPrefix is a fresh object prefix, so runs never see each other's data.
func benchPrefix() string { return "bench-" + strings.ToLower(rand.Text()[:10]) }

func s3Setting(b testing.TB) string {
	e := objstoretest.Use(b, objstoretest.S3)
	b.Setenv("AWS_ACCESS_KEY_ID", e["BRAINY_TEST_S3_ACCESS_KEY"])
	b.Setenv("AWS_SECRET_ACCESS_KEY", e["BRAINY_TEST_S3_SECRET_KEY"])
	return dropAfter(b, fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s", e["BRAINY_TEST_S3_BUCKET"], benchPrefix(),
		e["BRAINY_TEST_S3_ENDPOINT"], e["BRAINY_TEST_S3_REGION"]))
}

func gcsSetting(b testing.TB) string {
	e := objstoretest.Use(b, objstoretest.GCS)
	return dropAfter(b, fmt.Sprintf("gs://%s/%s?endpoint=http://%s/storage/v1/&anonymous=true",
		e["BRAINY_TEST_GCS_BUCKET"], benchPrefix(), e["BRAINY_TEST_GCS_EMULATOR_HOST"]))
}

func azureSetting(b testing.TB) string {
	e := objstoretest.Use(b, objstoretest.Azurite)
	b.Setenv("AZURE_STORAGE_CONNECTION_STRING", e["BRAINY_TEST_AZURE_CONNSTR"])
	return dropAfter(b, "azure://brainy-bench/"+benchPrefix()+"?create_container=true")
}

// dropAfter deletes what a benchmark left under an object-store URL when
// it ends, so that repeated runs do not fill the test servers' disks.
func dropAfter(b testing.TB, url string) string {
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		objs, err := backend.OpenObjects(ctx, url, nil)
		if err != nil {
			b.Logf("cleanup of %s: %v", url, err)
			return
		}
		defer objs.Close()
		var keys []string
		if err := objs.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil }); err != nil {
			b.Logf("cleanup of %s: %v", url, err)
			return
		}
		for _, k := range keys {
			if err := objs.Delete(ctx, k); err != nil {
				b.Logf("cleanup of %s: %v", url, err)
				return
			}
		}
	})
	return url
}

func openSpec(b testing.TB, spec backend.Spec, opts backend.Options) *backend.Store {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := backend.Open(ctx, spec, opts)
	if err != nil {
		b.Fatalf("open %s: %v", spec, err)
	}
	b.Cleanup(func() { closeStore(b, st) })
	return st
}

func openSetting(b testing.TB, setting string, opts backend.Options) (*backend.Store, backend.Spec) {
	b.Helper()
	spec, err := backend.Parse(setting)
	if err != nil {
		b.Fatal(err)
	}
	return openSpec(b, spec, opts), spec
}

// closed holds the stores closeStore closed, so each is closed once: by a
// benchmark that reopens it, or by the cleanup openSpec registers.
var closed sync.Map

func closeStore(b testing.TB, st *backend.Store) {
	b.Helper()
	if _, done := closed.LoadOrStore(st, true); done {
		return
	}
	if err := st.Close(); err != nil {
		b.Errorf("close: %v", err)
	}
}

// requests sums the object-store requests of st's segment logs.
func requests(st *backend.Store) (puts, reads int64) {
	for _, s := range st.Segments {
		r := s.Requests()
		puts += r.Puts
		reads += r.Gets + r.RangeGets
	}
	return puts, reads
}

func benchKey(set string, i int) []byte { return fmt.Appendf(nil, "%s-%012d", set, i) }

// benchValue is a benchValueSize-byte value that depends on its key, so
// reads can check they got the right one.
func benchValue(key []byte) []byte {
	v := bytes.Repeat([]byte{'.'}, benchValueSize)
	copy(v, key)
	return v
}

// preload writes keys set-0 .. set-(n-1) in synced batches of preloadBatch.
func preload(b *testing.B, st tiers.Store, set string, n int) {
	b.Helper()
	var batch tiers.Batch
	for i := 0; i < n; i += preloadBatch {
		batch.Reset()
		for j := i; j < min(i+preloadBatch, n); j++ {
			k := benchKey(set, j)
			batch.Set(k, benchValue(k))
		}
		if err := st.Apply(context.Background(), &batch, true); err != nil {
			b.Fatalf("preload %s: %v", set, err)
		}
	}
}

// readOnce reads key from st, checks its value, and returns how long the
// read took.
func readOnce(b *testing.B, st tiers.Store, key []byte) time.Duration {
	t0 := time.Now()
	v, err := st.Get(context.Background(), key)
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("Get(%s): %v", key, err)
	}
	if !bytes.Equal(v, benchValue(key)) {
		b.Fatalf("Get(%s) = %.40q, want %.40q", key, v, benchValue(key))
	}
	return d
}

// reportLatency reports the 50th and 99th percentiles (nearest rank) of ds
// in microseconds, under units prefix+"p50-µs" and prefix+"p99-µs".
func reportLatency(b *testing.B, prefix string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	b.ReportMetric(float64(rank(0.50).Nanoseconds())/1e3, prefix+"p50-µs")
	b.ReportMetric(float64(rank(0.99).Nanoseconds())/1e3, prefix+"p99-µs")
}

// BenchmarkAdd measures the write path under concurrent writers:
// benchWriters goroutines, each applying one-item synced batches of
// benchValueSize-byte values as fast as the store acknowledges them. It
// reports items/s and, for object stores, object Puts per
// item: group commit should keep that far below 1.
//
// For object stores, the -unbuffered variant applies the same batches to
// the segment log itself (Store.Segments[0]) rather than through the
// buffered wrapper that Open puts over it: the difference is what that
// wrapper costs the write path.
func BenchmarkAdd(b *testing.B) {
	for _, bk := range benchBackends {
		b.Run(bk.name, func(b *testing.B) { benchAdd(b, bk, false) })
		if bk.object {
			b.Run(bk.name+"-unbuffered", func(b *testing.B) { benchAdd(b, bk, true) })
		}
	}
}

func benchAdd(b *testing.B, bk benchBackend, unbuffered bool) {
	st, _ := openSetting(b, bk.setting(b), backend.Options{NodeID: benchNodeID})
	var target tiers.Store = st
	if unbuffered {
		target = st.Segments[0]
	}
	value := make([]byte, benchValueSize)
	var next atomic.Int64
	b.SetParallelism((benchWriters + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	putsBefore, _ := requests(st)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var batch tiers.Batch
		for pb.Next() {
			batch.Reset()
			batch.Set(benchKey("add", int(next.Add(1))), value)
			if err := target.Apply(context.Background(), &batch, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "items/s")
	if bk.object {
		puts, _ := requests(st)
		b.ReportMetric(float64(puts-putsBefore)/float64(b.N), "puts/item")
	}
}

// BenchmarkGet measures point reads, one at a time, each of a different
// existing key in random order, so every read is the key's first:
//
//   - cached: the store that wrote the keys reads them. Memory and disk
//     read their own structures; a segment log (the object stores) serves
//     them from its value cache (segment.Config.CacheBytes, 64 MiB by
//     default), which holds what it recently wrote.
//   - reopened: the store is closed and opened again, as after a restart,
//     so every read misses the value cache and costs a ranged GET of the
//     object store (disk: pebble's caches are empty, the OS page cache is
//     not).
//   - writing: as cached, while one goroutine applies one-item synced
//     batches back to back, as core's committer applies its cycles: what
//     a read pays for a write in flight. Reads start after a random pause
//     of up to writingPause, so that they arrive independently of the
//     writes (a reader that starts each read as the last one ends would
//     wait behind at most one write per write, whatever a write blocks);
//     ns/op includes the pauses.
//   - writing-unbuffered (object stores): as writing, with both the writer
//     and the reads on the segment log itself (Store.Segments[0]) rather
//     than through the buffered wrapper Open puts over it.
//
// It reports p50 and p99 latency and, for object stores, object reads per
// Get.
func BenchmarkGet(b *testing.B) {
	for _, bk := range benchBackends {
		for _, mode := range []string{"cached", "reopened", "writing", "writing-unbuffered"} {
			if bk.name == "memory" && mode == "reopened" {
				continue // nothing survives
			}
			if !bk.object && mode == "writing-unbuffered" {
				continue // no buffered wrapper
			}
			if bk.name == "memory" && mode == "writing" {
				continue // a writer that never waits measures the CPU, not the store
			}
			b.Run(bk.name+"/"+mode, func(b *testing.B) {
				n := max(b.N, 1000)
				opts := backend.Options{NodeID: benchNodeID}
				st, spec := openSetting(b, bk.setting(b), opts)
				preload(b, st, "get", n)
				if mode == "reopened" {
					closeStore(b, st)
					st = openSpec(b, spec, opts)
				}
				var target tiers.Store = st
				if mode == "writing-unbuffered" {
					target = st.Segments[0]
				}
				if strings.HasPrefix(mode, "writing") {
					writeInBackground(b, target)
				}
				order := mrand.Perm(n)[:b.N]
				ds := make([]time.Duration, 0, b.N)
				_, readsBefore := requests(st)
				b.ResetTimer()
				for _, i := range order {
					if strings.HasPrefix(mode, "writing") {
						time.Sleep(mrand.N(writingPause))
					}
					ds = append(ds, readOnce(b, target, benchKey("get", i)))
				}
				b.StopTimer()
				reportLatency(b, "", ds)
				if bk.object {
					_, reads := requests(st)
					b.ReportMetric(float64(reads-readsBefore)/float64(b.N), "objreads/get")
				}
			})
		}
	}
}

// writingPause bounds the pause before each read of BenchmarkGet's
// writing case.
const writingPause = 2 * time.Millisecond

// writeInBackground applies one-item synced batches to st, one after the
// other, from the first one's end until the benchmark ends.
func writeInBackground(b *testing.B, st tiers.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch tiers.Batch
		for i := 0; ctx.Err() == nil; i++ {
			batch.Reset()
			k := benchKey("background", i)
			batch.Set(k, benchValue(k))
			if err := st.Apply(ctx, &batch, true); err != nil && ctx.Err() == nil {
				b.Errorf("background write: %v", err)
				return
			}
			if i == 0 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-done:
	}
	b.Cleanup(func() { cancel(); <-done })
}

// Tier placement for BenchmarkTieredGet: keys idle for DemoteAfter move
// from hot to warm, for ColdAfter from warm to cold. Access times have a
// resolution of one second, so the sets are written tieredGap apart and
// each threshold falls in the middle of a gap.
const (
	tieredDemoteAfter = 2 * time.Second
	tieredColdAfter   = 5 * time.Second
	tieredGap         = 3 * time.Second
)

// BenchmarkTieredGet measures reads of a tiered store (a local hot
// directory, S3 as warm, Azure as cold) that hit each tier. It writes a
// cold set, waits, writes a warm set, waits, writes a hot set, and runs
// one mover pass, which leaves each set in its tier. Each op then reads
// one key of each set, each key once: a read from warm or cold promotes
// the key to hot (a synced write to hot and a delete from the tier it
// came from), which is part of what such a read costs.
//
//   - just-moved: reads right after the pass; the segment logs of warm and
//     cold still hold the values they were just given in their value
//     caches, so those reads skip the GET but not the promotion.
//   - reopened: the store is closed and opened again first, so a warm or
//     cold read fetches the value from the object store.
//
// It reports hot-, warm- and cold- p50 and p99 latency, and the object
// Puts (the delete from the tier a key left) and reads per promotion.
func BenchmarkTieredGet(b *testing.B) {
	for _, mode := range []string{"just-moved", "reopened"} {
		b.Run(mode, func(b *testing.B) {
			hot := b.TempDir()
			warm, cold := s3Setting(b), azureSetting(b)
			spec, err := backend.ParseTiered(hot, warm, cold)
			if err != nil {
				b.Fatal(err)
			}
			opts := backend.Options{NodeID: benchNodeID, Tiering: backend.Tiering{
				DemoteAfter: tieredDemoteAfter, ColdAfter: tieredColdAfter, Interval: -1}}
			st := openSpec(b, spec, opts)
			n := b.N
			preload(b, st, "cold", n)
			time.Sleep(tieredGap)
			preload(b, st, "warm", n)
			time.Sleep(tieredGap)
			preload(b, st, "hot", n)
			if err := st.Tiered.MoveNow(context.Background()); err != nil {
				b.Fatalf("mover pass: %v", err)
			}
			ts := st.Tiered.TierStats()
			if ts[0].Demoted != uint64(2*n) || ts[1].Demoted != uint64(n) {
				b.Fatalf("placement: demoted %d from hot and %d from warm, want %d and %d",
					ts[0].Demoted, ts[1].Demoted, 2*n, n)
			}
			if mode == "reopened" {
				closeStore(b, st)
				st = openSpec(b, spec, opts)
			}
			hotDs := make([]time.Duration, 0, n)
			warmDs := make([]time.Duration, 0, n)
			coldDs := make([]time.Duration, 0, n)
			putsBefore, readsBefore := requests(st)
			b.ResetTimer()
			for _, i := range mrand.Perm(n) {
				hotDs = append(hotDs, readOnce(b, st, benchKey("hot", i)))
				warmDs = append(warmDs, readOnce(b, st, benchKey("warm", i)))
				coldDs = append(coldDs, readOnce(b, st, benchKey("cold", i)))
			}
			b.StopTimer()
			ts = st.Tiered.TierStats()
			if ts[1].Promoted != uint64(n) || ts[2].Promoted != uint64(n) {
				b.Fatalf("reads promoted %d keys from warm and %d from cold, want %d each: a set was not in its tier",
					ts[1].Promoted, ts[2].Promoted, n)
			}
			reportLatency(b, "hot-", hotDs)
			reportLatency(b, "warm-", warmDs)
			reportLatency(b, "cold-", coldDs)
			puts, reads := requests(st)
			b.ReportMetric(float64(puts-putsBefore)/float64(2*n), "puts/promotion")
			b.ReportMetric(float64(reads-readsBefore)/float64(2*n), "objreads/promotion")
		})
	}
}
