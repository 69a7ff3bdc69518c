package objstoretest

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
)

// BenchSizes are the object sizes Bench measures: a small record and a segment-sized blob.
var BenchSizes = []int{4 << 10, 1 << 20}

// Bench measures unconditional Put and whole-object Get of each of BenchSizes against
// the store newStore returns, one operation at a time (latency, not throughput).
// Sub-benchmarks are named Put/4KiB, Get/1MiB and so on; b.SetBytes makes the MB/s
// column the payload rate.
func Bench(b *testing.B, newStore func(b *testing.B) objstore.Store) {
	ctx := context.Background()
	for _, op := range []string{"Put", "Get"} {
		for _, size := range BenchSizes {
			b.Run(fmt.Sprintf("%s/%s", op, sizeName(size)), func(b *testing.B) {
				s := newStore(b)
				body := make([]byte, size)
				_, _ = rand.Read(body)
				key := fmt.Sprintf("bench/%s-%d", op, size)
				if _, err := s.Put(ctx, key, body, objstore.Cond{}); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if op == "Put" {
						_, err = s.Put(ctx, key, body, objstore.Cond{})
					} else {
						_, _, err = s.Get(ctx, key)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
