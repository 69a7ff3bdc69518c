package segment

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/objstore"
)

// benchApply runs 64 goroutines, each applying one-item batches (a 100-byte
// value, synced) as fast as the store acknowledges them, and reports
// items/s and object Puts per item.
func benchApply(b *testing.B, objs objstore.Store) {
	const writers = 64
	s := open(b, testConfig(objs))
	value := make([]byte, 100)
	var next atomic.Int64
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	before := s.Requests().Puts
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var batch tiers.Batch
		for pb.Next() {
			batch.Reset()
			batch.Set(fmt.Appendf(nil, "key-%012d", next.Add(1)), value)
			if err := s.Apply(context.Background(), &batch, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "items/s")
	b.ReportMetric(float64(s.Requests().Puts-before)/float64(b.N), "puts/item")
}

// BenchmarkApplyS3 measures group commit against the test S3 server:
//
//	go test -run '^$' -bench ApplyS3 -benchtime 3s ./tiers/segment
func BenchmarkApplyS3(b *testing.B) { benchApply(b, openS3(b)) }

// BenchmarkApplyMemory measures the same against objstore.Memory, whose
// Puts cost no I/O: the store's own overhead.
func BenchmarkApplyMemory(b *testing.B) { benchApply(b, objstore.NewMemory()) }
