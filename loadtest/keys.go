package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
)

// KeyDist names a key distribution; see ParseKeyDist.
type KeyDist struct {
	// Kind is "uniform", "zipf", "sequential" or "hot".
	Kind string
	// Theta is the zipfian skew in (0, 1) (Kind "zipf" only); larger is
	// more skewed. 0.99 is YCSB's default.
	Theta float64
}

// DefaultZipfTheta is the skew of "zipf" without a parameter.
const DefaultZipfTheta = 0.99

// ParseKeyDist parses "uniform", "zipf", "zipf:0.8" (alias "zipfian"),
// "sequential" (alias "seq") or "hot" (alias "single": every request uses
// key 0).
func ParseKeyDist(s string) (KeyDist, error) {
	name, param, hasParam := strings.Cut(strings.TrimSpace(s), ":")
	switch strings.ToLower(name) {
	case "uniform":
		if !hasParam {
			return KeyDist{Kind: "uniform"}, nil
		}
	case "sequential", "seq":
		if !hasParam {
			return KeyDist{Kind: "sequential"}, nil
		}
	case "hot", "single":
		if !hasParam {
			return KeyDist{Kind: "hot"}, nil
		}
	case "zipf", "zipfian":
		if !hasParam {
			return KeyDist{Kind: "zipf", Theta: DefaultZipfTheta}, nil
		}
		th, err := strconv.ParseFloat(param, 64)
		if err != nil || !(th > 0 && th < 1) {
			return KeyDist{}, fmt.Errorf("loadtest: key distribution %q: zipf theta must be a number in (0, 1)", s)
		}
		return KeyDist{Kind: "zipf", Theta: th}, nil
	}
	return KeyDist{}, fmt.Errorf("loadtest: key distribution %q: want uniform, zipf[:theta], sequential or hot", s)
}

// String returns the distribution in the form ParseKeyDist accepts.
func (d KeyDist) String() string {
	if d.Kind == "zipf" {
		return "zipf:" + strconv.FormatFloat(d.Theta, 'g', -1, 64)
	}
	return d.Kind
}

// KeyGen draws key numbers in [0, n). Implementations are safe for
// concurrent use when each goroutine passes its own *rand.Rand.
type KeyGen interface {
	Next(r *rand.Rand) uint64
}

// NewKeyGen returns a generator of d over n keys. Building a zipf generator
// costs O(n) once.
func NewKeyGen(d KeyDist, n int) (KeyGen, error) {
	if n < 1 {
		return nil, fmt.Errorf("loadtest: key space (%d) must be >= 1", n)
	}
	switch d.Kind {
	case "uniform":
		return uniformGen{n: uint64(n)}, nil
	case "sequential":
		return &sequentialGen{n: uint64(n)}, nil
	case "hot":
		return hotGen{}, nil
	case "zipf":
		if !(d.Theta > 0 && d.Theta < 1) {
			return nil, fmt.Errorf("loadtest: zipf theta (%v) must be in (0, 1)", d.Theta)
		}
		return newZipfGen(uint64(n), d.Theta), nil
	}
	return nil, fmt.Errorf("loadtest: unknown key distribution %q", d.Kind)
}

type uniformGen struct{ n uint64 }

func (g uniformGen) Next(r *rand.Rand) uint64 { return r.Uint64N(g.n) }

// sequentialGen walks the key space in order, shared by all workers.
type sequentialGen struct {
	n    uint64
	next atomic.Uint64
}

func (g *sequentialGen) Next(*rand.Rand) uint64 { return (g.next.Add(1) - 1) % g.n }

type hotGen struct{}

func (hotGen) Next(*rand.Rand) uint64 { return 0 }

// zipfGen is the zipfian generator of Gray et al., "Quickly Generating
// Billion-Record Synthetic Databases" (SIGMOD 1994), as used by YCSB. Key 0
// is the most popular; key i has probability proportional to 1/(i+1)^theta.
type zipfGen struct {
	n                  uint64
	theta, alpha, zeta float64
	eta, half          float64
}

func newZipfGen(n uint64, theta float64) *zipfGen {
	zeta := 0.0
	for i := uint64(1); i <= n; i++ {
		zeta += 1 / math.Pow(float64(i), theta)
	}
	zeta2 := 1 + 1/math.Pow(2, theta)
	g := &zipfGen{n: n, theta: theta, zeta: zeta, alpha: 1 / (1 - theta)}
	g.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/zeta)
	g.half = 1 + math.Pow(0.5, theta)
	return g
}

func (g *zipfGen) Next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * g.zeta
	if uz < 1 {
		return 0
	}
	if uz < g.half && g.n > 1 {
		return 1
	}
	k := uint64(float64(g.n) * math.Pow(g.eta*u-g.eta+1, g.alpha))
	if k >= g.n {
		k = g.n - 1
	}
	return k
}
