// Command find measures nearest-neighbour search (make bench-find): the
// index of internal/hnsw against hnswlib, the reference implementation
// (Debian python3-hnswlib), on the same vectors with the same settings,
// one thread each, in the same run; exact search is the truth both are
// judged by.
//
// The vectors are synthetic and seeded: clusters around random centres,
// the shape real embeddings have (and the one that defeats a search that
// stops early). It prints build time per vector and, per beam width ef,
// time per query and recall@k for both, and their ratios.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/internal/hnsw"
)

func main() {
	n := flag.Int("n", 20000, "vectors indexed")
	dims := flag.Int("dims", 64, "dimensions")
	nq := flag.Int("queries", 1000, "queries")
	k := flag.Int("k", 10, "neighbours per query")
	m := flag.Int("m", 16, "HNSW M")
	efc := flag.Int("ef-construction", 200, "HNSW ef at insert")
	efs := flag.String("ef", "16,32,64,128,256", "beam widths searched with")
	withFAISS := flag.Bool("faiss", true, "also run FAISS's HNSW, when the Python has it")
	rounds := flag.Int("rounds", 3, "passes over the queries per ef; each side reports its fastest (this machine is noisy)")
	clusters := flag.Int("clusters", 50, "centres the vectors gather around")
	sigma := flag.Float64("sigma", 0.3, "spread around a centre")
	anchor := flag.String("hnswlib", "scripts/bench/hnswlib_find.py", "the hnswlib script (empty: none)")
	// Debian's python3-hnswlib is for Debian's python3, which another
	// python3 earlier in PATH would not see.
	python := flag.String("python", "/usr/bin/python3", "the Python that has hnswlib and numpy")
	coreFlags := flag.String("core-flags", "", "more flags for every brainy-core of the HTTP part, space-separated (e.g. \"--vector-ef-construction 64\")")
	core := flag.String("core", "", "a brainy-core binary: also measure finds through it over HTTP: one node with its index, one without, a 3-node cluster (127.0.0.95-97)")
	httpQueries := flag.Int("http-queries", 200, "queries sent over HTTP (each also filtered)")
	flag.Parse()

	rng := rand.New(rand.NewPCG(1, 2))
	centres := gaussian(rng, *clusters, *dims, nil, 1)
	base := gaussian(rng, *n, *dims, centres, *sigma)
	queries := gaussian(rng, *nq, *dims, centres, *sigma)
	log.Printf("%d vectors of %d dimensions, %d queries: exact search for the truth", *n, *dims, *nq)
	truth := exact(base, queries, *k, nil)

	var widths []int
	for _, s := range strings.Split(*efs, ",") {
		ef, err := strconv.Atoi(s)
		if err != nil || ef <= 0 {
			log.Fatalf("-ef %q: want positive integers", *efs)
		}
		widths = append(widths, ef)
	}

	g := hnsw.New[struct{}](hnsw.Config{M: *m, EfConstruction: *efc})
	start := time.Now()
	for i, v := range base {
		if err := g.Add(strconv.Itoa(i), v, struct{}{}); err != nil {
			log.Fatal(err)
		}
		if (i+1)%5000 == 0 {
			log.Printf("brainy: %d of %d indexed", i+1, *n)
		}
	}
	ours := result{Build: time.Since(start).Seconds()}
	for _, ef := range widths {
		best, hits := time.Duration(math.MaxInt64), 0
		for range *rounds {
			start := time.Now()
			results := make([][]hnsw.Result[struct{}], len(queries))
			for i, q := range queries {
				results[i] = g.Search(q, *k, ef, nil)
			}
			best = min(best, time.Since(start))
			hits = 0
			for i, rs := range results {
				for _, r := range rs {
					id, _ := strconv.Atoi(r.Key)
					if slices.Contains(truth[i], int32(id)) {
						hits++
					}
				}
			}
		}
		ours.Searches = append(ours.Searches, search{EF: ef, Micros: float64(best.Microseconds()) / float64(*nq), Recall: float64(hits) / float64(*nq**k)})
	}

	var theirs *result
	if *anchor != "" {
		var err error
		if theirs, err = runHnswlib(*python, *anchor, base, queries, truth, *dims, *m, *efc, *k, *efs, *rounds, *withFAISS); err != nil {
			log.Printf("hnswlib: %v (install python3-hnswlib and python3-numpy)", err)
		}
	}

	fmt.Printf("%d vectors, %d dims, %d clusters (σ %.2g), %d queries, k %d, M %d, ef_construction %d, one thread each, the best of %d passes\n\n",
		*n, *dims, *clusters, *sigma, *nq, *k, *m, *efc, *rounds)
	fmt.Printf("build: brainy %.1f µs/vector", ours.Build/float64(*n)*1e6)
	var faiss *result
	if theirs != nil {
		fmt.Printf(", hnswlib %.1f µs/vector (brainy/hnswlib %.2f×)", theirs.Build/float64(*n)*1e6, ours.Build/theirs.Build)
		if faiss = theirs.FAISS; faiss != nil {
			fmt.Printf(", FAISS %.1f µs/vector", faiss.Build/float64(*n)*1e6)
		}
	}
	fmt.Println()
	fmt.Println()
	fmt.Println("| ef | brainy µs/query | brainy recall@k | hnswlib µs/query | hnswlib recall@k | FAISS µs/query | FAISS recall@k | queries/s brainy/hnswlib |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, s := range ours.Searches {
		fmt.Printf("| %d | %.1f | %.3f |", s.EF, s.Micros, s.Recall)
		if theirs != nil && i < len(theirs.Searches) {
			t := theirs.Searches[i]
			fmt.Printf(" %.1f | %.3f |", t.Micros, t.Recall)
			if faiss != nil && i < len(faiss.Searches) {
				fmt.Printf(" %.1f | %.3f |", faiss.Searches[i].Micros, faiss.Searches[i].Recall)
			} else {
				fmt.Print(" | |")
			}
			fmt.Printf(" %.2f× |\n", t.Micros/s.Micros)
		} else {
			fmt.Println(" | | | | |")
		}
	}

	if *core == "" {
		return
	}
	truthFilter := exact(base, queries, *k, func(i int) bool { return i%10 == 3 })
	res, err := runHTTP(*core, strings.Fields(*coreFlags), base, queries, truth, truthFilter, *k, *httpQueries)
	if err != nil {
		log.Fatalf("through brainy-core: %v", err)
	}
	fmt.Printf("\nThrough brainy-core over HTTP (POST /v1/find, k %d, %d queries one at a time, then 8 clients, through the nodes in turn; filtered: where metadata.bucket = 3, 10%% of the items):\n\n", *k, min(*httpQueries, *nq))
	fmt.Println("| brainy-core | p50 | p99 | finds/s (8 clients) | recall@k | filtered p50 | filtered p99 | filtered recall@k | PUT/s (16 clients) | all indexed after |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range res {
		fmt.Printf("| %s | %v | %v | %.0f | %.3f | %v | %v | %.3f | %.0f | %.1f s |\n", r.name, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond),
			r.perSecond, r.recall, r.filterP50.Round(10*time.Microsecond), r.filterP99.Round(10*time.Microsecond), r.recallFilter, float64(len(base))/r.loadSeconds, r.indexSec)
	}
	if len(res) >= 2 {
		fmt.Printf("\nindex/scan: finds/s %.1f×, p50 %.3f×, filtered p50 %.3f×, PUT/s with the index kept %.2f×\n", res[0].perSecond/res[1].perSecond,
			float64(res[0].p50)/float64(res[1].p50), float64(res[0].filterP50)/float64(res[1].filterP50), res[1].loadSeconds/res[0].loadSeconds)
	}
}

type result struct {
	Build    float64  `json:"build_seconds"`
	Searches []search `json:"searches"`
	// FAISS is FAISS's HNSW on the same vectors, when the script found it.
	FAISS *result `json:"faiss,omitempty"`
}

type search struct {
	EF     int     `json:"ef"`
	Micros float64 `json:"us_per_query"`
	Recall float64 `json:"recall"`
}

// gaussian returns n vectors: around a random one of centres with spread
// sigma, or, with no centres, standard normal ones.
func gaussian(rng *rand.Rand, n, dims int, centres [][]float32, sigma float64) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, dims)
		var c []float32
		if len(centres) > 0 {
			c = centres[rng.IntN(len(centres))]
		}
		for d := range out[i] {
			out[i][d] = float32(sigma * rng.NormFloat64())
			if c != nil {
				out[i][d] += c[d]
			}
		}
	}
	return out
}

// exact returns, per query, the indexes of the k base vectors (those keep
// admits; nil: all) of highest cosine similarity, ties by index. Queries
// run on every CPU.
func exact(base, queries [][]float32, k int, keep func(int) bool) [][]int32 {
	norm := func(v []float32) []float32 {
		var s float64
		for _, f := range v {
			s += float64(f) * float64(f)
		}
		out := make([]float32, len(v))
		for i, f := range v {
			out[i] = float32(float64(f) / math.Sqrt(s))
		}
		return out
	}
	nb := make([][]float32, len(base))
	for i, v := range base {
		nb[i] = norm(v)
	}
	type hit struct {
		i   int32
		sim float64
	}
	worse := func(a, b hit) bool { return a.sim < b.sim || a.sim == b.sim && a.i > b.i }
	out := make([][]int32, len(queries))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range runtime.NumCPU() {
		wg.Go(func() {
			for qi := int(next.Add(1) - 1); qi < len(queries); qi = int(next.Add(1) - 1) {
				nq := norm(queries[qi])
				var top []hit // the k best, the worst first after each insert
				for i, v := range nb {
					if keep != nil && !keep(i) {
						continue
					}
					var s float64
					for d := range v {
						s += float64(v[d]) * float64(nq[d])
					}
					h := hit{int32(i), s}
					if len(top) < k {
						top = append(top, h)
					} else if worse(top[0], h) {
						top[0] = h
					} else {
						continue
					}
					slices.SortFunc(top, func(a, b hit) int {
						if worse(a, b) {
							return -1
						}
						return 1
					})
				}
				for j := len(top) - 1; j >= 0; j-- {
					out[qi] = append(out[qi], top[j].i)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// runHnswlib writes the vectors and the truth where the script reads
// them, runs it, and returns what it measured.
func runHnswlib(python, script string, base, queries [][]float32, truth [][]int32, dims, m, efc, k int, efs string, rounds int, withFAISS bool) (*result, error) {
	dir, err := os.MkdirTemp("", "bench-find")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	write := func(name string, rows [][]float32) error {
		var b []byte
		for _, r := range rows {
			for _, f := range r {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
			}
		}
		return os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	var tb []byte
	for _, r := range truth {
		for _, i := range r {
			tb = binary.LittleEndian.AppendUint32(tb, uint32(i))
		}
	}
	if err := firstErr(write("base.f32", base), write("queries.f32", queries),
		os.WriteFile(filepath.Join(dir, "truth.i32"), tb, 0o600), os.WriteFile(filepath.Join(dir, "dims.txt"), []byte(strconv.Itoa(dims)), 0o600)); err != nil {
		return nil, err
	}
	log.Printf("hnswlib: building and searching")
	args := []string{script, dir, strconv.Itoa(m), strconv.Itoa(efc), strconv.Itoa(k), efs, strconv.Itoa(rounds)}
	if !withFAISS {
		args = append(args, "nofaiss")
	}
	out, err := exec.Command(python, args...).Output()
	if err != nil {
		return nil, err
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("its output %q: %v", out, err)
	}
	return &r, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
