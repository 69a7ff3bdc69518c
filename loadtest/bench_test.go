package loadtest

import (
	"errors"
	"testing"
	"time"
)

func benchGen(b *testing.B, cfg Config) *requestGen {
	b.Helper()
	cfg.EnsureDefaults()
	wl, err := newWorkload(&cfg)
	if err != nil {
		b.Fatal(err)
	}
	return newRequestGen(wl, 1, 0)
}

// BenchmarkNextRequest measures request generation: mix pick, key draw,
// URI formatting and body selection. It must not allocate.
func BenchmarkNextRequest(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"items-zipf", Config{Target: "http://127.0.0.1:8080", Workload: WorkloadItems, Mix: "read=90,write=10", KeyDist: "zipf", Keys: 100000}},
		{"url-template", Config{Target: "http://127.0.0.1:8080/v1/items/k{key}?w={worker}"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := benchGen(b, tc.cfg)
			b.ReportAllocs()
			for b.Loop() {
				g.next()
			}
		})
	}
}

// BenchmarkRecord measures the per-response record path (both histograms,
// status and op counters under the shard lock).
func BenchmarkRecord(b *testing.B) {
	s := &shard{cur: newInterval(true, []Op{OpRead, OpWrite}), spare: newInterval(true, []Op{OpRead, OpWrite})}
	b.ReportAllocs()
	lat := 1234 * time.Microsecond
	for b.Loop() {
		s.record(OpRead, 200, nil, lat, lat/2)
	}
}

// BenchmarkGenerateAndRecord is the generator's whole per-request overhead
// outside the network round trip.
func BenchmarkGenerateAndRecord(b *testing.B) {
	g := benchGen(b, Config{Target: "http://127.0.0.1:8080", Workload: WorkloadItems, Mix: "read=90,write=10", Keys: 10000})
	s := &shard{cur: newInterval(false, []Op{OpRead, OpWrite}), spare: newInterval(false, []Op{OpRead, OpWrite})}
	b.ReportAllocs()
	for b.Loop() {
		_, op := g.next()
		start := time.Now()
		s.record(op, 200, nil, time.Since(start), 0)
	}
}

func BenchmarkRecordError(b *testing.B) {
	s := &shard{cur: newInterval(false, nil), spare: newInterval(false, nil)}
	err := errors.New("boom")
	b.ReportAllocs()
	for b.Loop() {
		s.record(OpURL, 0, err, 0, 0)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	cfg := Config{Target: "http://127.0.0.1:8080", Workload: WorkloadItems, Mix: "read=50,write=40,add=10", KeyDist: "zipf", Keys: 1000}
	cfg.EnsureDefaults()
	wl, err := newWorkload(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := newRequestGen(wl, 1, 0)
	s := &shard{cur: newInterval(true, []Op{OpRead, OpWrite, OpAdd}), spare: newInterval(true, nil)}
	for range 100 {
		g.next() // grow buffers
	}
	if n := testing.AllocsPerRun(1000, func() {
		_, op := g.next()
		s.record(op, 200, nil, time.Millisecond, time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}
