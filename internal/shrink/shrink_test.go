package shrink

import (
	"runtime"
	"testing"
)

func TestMapKeepsEntries(t *testing.T) {
	m := map[int]string{}
	peak := 0
	for i := range 1000 {
		m[i] = "v"
		m = Map(m, &peak)
	}
	if peak != 1000 {
		t.Fatalf("peak %d after 1000 inserts, want 1000", peak)
	}
	for i := range 900 {
		delete(m, i)
		m = Map(m, &peak)
	}
	if len(m) != 100 {
		t.Fatalf("%d entries left, want 100", len(m))
	}
	for i := 900; i < 1000; i++ {
		if m[i] != "v" {
			t.Fatalf("entry %d lost in a copy", i)
		}
	}
	if peak > 250 {
		t.Fatalf("peak %d after falling to 100 entries: the map was never copied", peak)
	}
}

// TestMapGivesMemoryBack checks the point of the package: a map that grew
// to many entries and fell to a few holds little memory once passed
// through Map, and a plain map does not.
func TestMapGivesMemoryBack(t *testing.T) {
	grow := func(n int) map[int][64]byte {
		m := map[int][64]byte{}
		for i := range n {
			m[i] = [64]byte{}
		}
		for i := 10; i < n; i++ {
			delete(m, i)
		}
		return m
	}
	live := func(f func() any) uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		keep := f()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		runtime.KeepAlive(keep)
		return ms.HeapAlloc - min(before, ms.HeapAlloc)
	}
	plain := live(func() any { return grow(100_000) })
	shrunk := live(func() any {
		peak := 100_000
		return Map(grow(100_000), &peak)
	})
	if plain < 1<<20 {
		t.Fatalf("a map that held 100,000 entries of 64 bytes keeps %d bytes: the premise no longer holds", plain)
	}
	if shrunk*10 > plain {
		t.Fatalf("shrunk map keeps %d bytes, the plain one %d: want a tenth or less", shrunk, plain)
	}
}
