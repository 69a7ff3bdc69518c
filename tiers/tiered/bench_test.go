package tiered_test

import (
	"fmt"
	"testing"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/tiered"
)

// BenchmarkGet measures what the tiered layer adds to a read that hits
// hot (its access bookkeeping), against the bare hot store.
func BenchmarkGet(b *testing.B) {
	fill := func(s tiers.Store) [][]byte {
		var batch tiers.Batch
		keys := make([][]byte, 1024)
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "p\x00\x01iacme\x00item-%04d", i)
			batch.Set(keys[i], make([]byte, 256))
		}
		if err := s.Apply(b.Context(), &batch, true); err != nil {
			b.Fatal(err)
		}
		return keys
	}
	run := func(b *testing.B, s tiers.Store) {
		keys := fill(s)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(b.Context(), keys[i%len(keys)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, memory.New()) })
	b.Run("tiered-hot-hit", func(b *testing.B) {
		s, err := tiered.Open(tiered.Config{Hot: memory.New(), Warm: memory.New(), Interval: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
}

// BenchmarkDemote measures a pass demoting keys from hot to warm, both in
// memory: the cost of the tiered layer itself per key moved.
func BenchmarkDemote(b *testing.B) {
	const n = 4096
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		clk := newClock()
		s, err := tiered.Open(tiered.Config{Hot: memory.New(), Warm: memory.New(), Interval: -1, MaxMoveRate: -1, Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		var batch tiers.Batch
		for i := range n {
			batch.Set(fmt.Appendf(nil, "k%06d", i), make([]byte, 256))
		}
		if err := s.Apply(b.Context(), &batch, true); err != nil {
			b.Fatal(err)
		}
		clk.Advance(tiered.DefaultDemoteAfter)
		b.StartTimer()
		if err := s.MoveNow(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st := s.TierStats()[0]; st.Demoted != n {
			b.Fatalf("demoted %d keys, want %d", st.Demoted, n)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}
