package tuning

import "testing"

// mix is a window of ops operations, share of them reads.
func mix(share float64, ops uint64) Sample {
	reads := uint64(share * float64(ops))
	return Sample{Reads: reads, Writes: ops - reads, CacheHits: 90, CacheMisses: 10}
}

// TestTunerSwitchesWithHysteresis: a read-heavy mix moves the tuner to
// read-heavy after Confirm windows, not one; a mix between the leave and
// enter thresholds keeps whatever is in force (no flapping); a
// write-heavy mix reverses it; idle windows change nothing.
func TestTunerSwitchesWithHysteresis(t *testing.T) {
	tu := NewTuner()
	if p, changed := tu.Observe(mix(0.95, 10000)); changed || p != Balanced {
		t.Fatalf("one read-heavy window: %s %v, want balanced until confirmed", p, changed)
	}
	if p, changed := tu.Observe(mix(0.95, 10000)); !changed || p != ReadHeavy {
		t.Fatalf("two read-heavy windows: %s %v, want read-heavy", p, changed)
	}
	if n, reason := tu.Decisions(); n != 1 || reason == "" {
		t.Fatalf("decisions %d, reason %q", n, reason)
	}
	// Steady around 85%: between leaving (80%) and entering (90%).
	for i := range 50 {
		share := 0.83
		if i%2 == 0 {
			share = 0.89
		}
		if p, changed := tu.Observe(mix(share, 10000)); changed || p != ReadHeavy {
			t.Fatalf("window %d at %.2f: %s %v, want read-heavy kept", i, share, p, changed)
		}
	}
	// One dip below the leave threshold is not enough.
	tu.Observe(mix(0.7, 10000))
	if p, _ := tu.Observe(mix(0.95, 10000)); p != ReadHeavy {
		t.Fatalf("one dip: %s", p)
	}
	// Idle: nothing counts.
	for range 10 {
		if p, changed := tu.Observe(mix(0.1, 10)); changed || p != ReadHeavy {
			t.Fatalf("idle windows: %s %v", p, changed)
		}
	}
	// Write-heavy reverses it.
	tu.Observe(mix(0.3, 10000))
	if p, changed := tu.Observe(mix(0.3, 10000)); !changed || p != WriteHeavy {
		t.Fatalf("write-heavy windows: %s %v", p, changed)
	}
	for i := range 50 {
		share := 0.52
		if i%2 == 0 {
			share = 0.58
		}
		if p, changed := tu.Observe(mix(share, 10000)); changed || p != WriteHeavy {
			t.Fatalf("window %d at %.2f: %s %v, want write-heavy kept", i, share, p, changed)
		}
	}
	tu.Observe(mix(0.7, 10000))
	if p, changed := tu.Observe(mix(0.7, 10000)); !changed || p != Balanced {
		t.Fatalf("a balanced mix: %s %v", p, changed)
	}
	if n, _ := tu.Decisions(); n != 3 {
		t.Fatalf("%d decisions, want 3", n)
	}
}

func TestProfiles(t *testing.T) {
	for _, name := range []string{Auto, Balanced, ReadHeavy, WriteHeavy} {
		p, err := Lookup(name)
		if err != nil || p.CacheBytes <= 0 || p.LeaseDuration <= 0 || p.HotShare <= 0 || p.String() == "" {
			t.Fatalf("%s: %+v %v", name, p, err)
		}
	}
	if _, err := Lookup("fast"); err == nil {
		t.Fatal("an unknown profile was accepted")
	}
	rh, _ := Lookup(ReadHeavy)
	b, _ := Lookup(Balanced)
	if !rh.HotReads || b.HotReads || rh.CacheBytes <= b.CacheBytes {
		t.Fatalf("read-heavy %+v against balanced %+v", rh, b)
	}
}
