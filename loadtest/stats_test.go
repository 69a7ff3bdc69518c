package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Statistical tests: seeded generators, tolerances of several standard
// deviations, so they are deterministic and not flaky.

func TestMixRatio(t *testing.T) {
	tests := []struct {
		spec string
		want map[Op]float64
	}{
		{"read=90,write=10", map[Op]float64{OpRead: 0.9, OpWrite: 0.1}},
		{"read=50,write=30,add=20", map[Op]float64{OpRead: 0.5, OpWrite: 0.3, OpAdd: 0.2}},
		{"write=1", map[Op]float64{OpWrite: 1}},
	}
	const n = 100000
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			m, err := ParseMix(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			var counts [numOps]int
			for range n {
				counts[m.Pick(r)]++
			}
			for op := range numOps {
				p := tt.want[op]
				got := float64(counts[op]) / n
				sd := math.Sqrt(p * (1 - p) / n)
				if math.Abs(got-p) > 5*sd+1e-9 {
					t.Errorf("%s: share %.4f, want %.4f ± %.4f", op, got, p, 5*sd)
				}
			}
		})
	}
}

func keyCounts(t *testing.T, dist string, keys, n int) []int {
	t.Helper()
	d, err := ParseKeyDist(dist)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewKeyGen(d, keys)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 11))
	counts := make([]int, keys)
	for range n {
		k := g.Next(r)
		if k >= uint64(keys) {
			t.Fatalf("%s: key %d outside key space %d", dist, k, keys)
		}
		counts[k]++
	}
	return counts
}

func TestUniformKeys(t *testing.T) {
	const keys, n = 100, 200000
	counts := keyCounts(t, "uniform", keys, n)
	// Chi-square with 99 degrees of freedom: mean 99, sd 14; 99+6*14 = 183.
	exp := float64(n) / keys
	chi := 0.0
	for _, c := range counts {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	if chi > 183 {
		t.Errorf("chi-square %.1f over 100 keys: not uniform", chi)
	}
}

func TestZipfianKeys(t *testing.T) {
	const keys, n = 1000, 200000
	for _, theta := range []float64{0.5, 0.8, 0.99} {
		d := KeyDist{Kind: "zipf", Theta: theta}
		counts := keyCounts(t, d.String(), keys, n)
		zeta := 0.0
		for i := 1; i <= keys; i++ {
			zeta += 1 / math.Pow(float64(i), theta)
		}
		// The head of the distribution follows 1/(i+1)^theta / zeta.
		for _, i := range []int{0, 1, 9} {
			p := 1 / math.Pow(float64(i+1), theta) / zeta
			got := float64(counts[i]) / n
			sd := math.Sqrt(p * (1 - p) / n)
			if math.Abs(got-p) > 6*sd+0.002 {
				t.Errorf("theta %.2f: key %d share %.4f, want %.4f", theta, i, got, p)
			}
		}
		// Skew: the hottest 10% of keys take the share the model predicts.
		top, want := 0, 0.0
		for i := range keys / 10 {
			top += counts[i]
			want += 1 / math.Pow(float64(i+1), theta) / zeta
		}
		if got := float64(top) / n; math.Abs(got-want) > 0.03 {
			t.Errorf("theta %.2f: top 10%% of keys take %.3f, want %.3f", theta, got, want)
		}
		// Every key is reachable in a large enough sample at mild skew.
		if theta == 0.5 {
			for i, c := range counts {
				if c == 0 {
					t.Errorf("theta 0.5: key %d never drawn", i)
					break
				}
			}
		}
	}
}

func TestSequentialAndHotKeys(t *testing.T) {
	counts := keyCounts(t, "sequential", 10, 1000)
	for i, c := range counts {
		if c != 100 {
			t.Errorf("sequential: key %d drawn %d times, want 100", i, c)
		}
	}
	counts = keyCounts(t, "hot", 10, 1000)
	if counts[0] != 1000 {
		t.Errorf("hot: key 0 drawn %d times, want all 1000", counts[0])
	}
}

// TestKeySpaceCoverage checks that a workload with a key space of n only
// addresses keys [0, n), through the generated URIs.
func TestKeySpaceCoverage(t *testing.T) {
	cfg := LocalConfig("http://127.0.0.1:1")
	cfg.Workload = WorkloadItems
	cfg.Mix = "read=1"
	cfg.Keys = 50
	cfg.KeyPrefix = "k"
	wl, err := newWorkload(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	g := newRequestGen(wl, 1, 0)
	seen := map[string]bool{}
	for range 5000 {
		req, op := g.next()
		if op != OpRead {
			t.Fatalf("op %s", op)
		}
		seen[string(req.RequestURI())] = true
	}
	if len(seen) != 50 {
		t.Errorf("saw %d distinct URIs, want 50", len(seen))
	}
	for u := range seen {
		var k int
		if _, err := fmtSscanf(u, &k); err != nil || k < 0 || k >= 50 {
			t.Errorf("URI %q outside the key space", u)
		}
	}
}

func fmtSscanf(u string, k *int) (int, error) { return fmt.Sscanf(u, "/v1/items/k%d", k) }
