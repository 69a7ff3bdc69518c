package raftlog

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// TestCrash runs random workloads on a file system that loses what was
// not synced when the machine "dies" — at a random call, which may be in
// the middle of a write, a sync, a move to a new segment or a deletion —
// and checks that Open, after the crash, recovers exactly the state after
// some prefix of the writes, at least up to the last synced Write that
// returned; that it never fails; and that the recovered log goes on
// working (more writes, a clean reopen). Some runs crash a second time,
// during the recovery itself.
func TestCrash(t *testing.T) {
	runs := 300
	if testing.Short() {
		runs = 60
	}
	for seed := range uint64(runs) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { crashRun(t, seed) })
	}
}

func crashRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	fs := newMemFS()
	cfg := Config{Dir: "/log", SegmentBytes: 4 << 10, RewriteSegments: 3, RewriteBytes: 2 << 10, fs: fs}
	frag := maxRecordBytes
	if seed%3 == 1 {
		frag = 300 // batches split into records
	}
	l := openT(t, cfg)
	l.fragBytes = frag
	gn := &gen{rng: rng, groups: 6, maxData: 200, term: 1}
	states := []model{{}} // states[k]: after k writes returned
	acked := 0            // the writes up to states[acked] are durable
	var pending model     // the state with the write that failed, if one did
	if rng.IntN(5) > 0 {
		fs.budget = rng.IntN(600)
	}
	var b Batch
	for range 150 {
		next := states[len(states)-1].clone()
		ops := gn.batch(next)
		sync := rng.IntN(3) > 0
		if err := l.Write(toBatch(&b, ops), sync); err != nil {
			if !errors.Is(err, errCrash) {
				t.Fatalf("write: %v", err)
			}
			pending = next
			break
		}
		states = append(states, next)
		if sync {
			acked = len(states) - 1
		}
	}
	crashed := fs.crash(rng)
	cfg.fs = crashed
	if rng.IntN(4) == 0 {
		// Crash again while recovering.
		crashed.budget = rng.IntN(8)
		if l, err := Open(cfg); err == nil {
			l.Close()
		} else if !errors.Is(err, errCrash) {
			t.Fatalf("open, crashing: %v", err)
		}
		crashed = crashed.crash(rng)
		cfg.fs = crashed
	}
	l2, err := Open(cfg)
	if err != nil {
		t.Fatalf("open after a crash: %v", err)
	}
	l2.fragBytes = frag
	got := dump(t, l2).String()
	var m model
	for k := len(states) - 1; k >= acked; k-- {
		if states[k].String() == got {
			m = states[k]
			break
		}
	}
	if m == nil && pending != nil && pending.String() == got {
		m = pending
	}
	if m == nil {
		t.Fatalf("recovered a state that is no prefix of the writes from %d (synced) to %d: %s", acked, len(states)-1,
			diffStates(states[acked].String(), got))
	}
	// The recovered log goes on.
	for range 30 {
		ops := gn.batch(m)
		if err := l2.Write(toBatch(&b, ops), rng.IntN(2) == 0); err != nil {
			t.Fatalf("write after recovery: %v", err)
		}
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	l3 := openT(t, cfg)
	defer l3.Close()
	if got := dump(t, l3).String(); got != m.String() {
		t.Fatalf("after recovery and more writes: %s", diffStates(m.String(), got))
	}
}

// TestTornTail writes a log on disk, then cuts its last segment at random
// lengths and flips random bytes in it: Open must recover exactly the
// writes that end before the damage, and refuse (ErrCorrupt) damage to
// any earlier segment.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10}
	l := openT(t, cfg)
	rng := rand.New(rand.NewPCG(3, 3))
	gn := &gen{rng: rng, groups: 8, maxData: 300, term: 1}
	type mark struct {
		seq uint64
		end int64
	}
	states := []model{{}}
	marks := []mark{{}}
	var b Batch
	for range 200 {
		next := states[len(states)-1].clone()
		if err := l.Write(toBatch(&b, gn.batch(next)), rng.IntN(2) == 0); err != nil {
			t.Fatal(err)
		}
		states = append(states, next)
		marks = append(marks, mark{l.cur().seq, l.cur().size})
	}
	segs := len(l.segs)
	first, lastSeq := l.segs[0].seq, l.cur().seq
	l.Close()
	if segs < 3 {
		t.Fatalf("only %d segments", segs)
	}
	lastName := segmentName(lastSeq)
	size := fileSize(t, filepath.Join(dir, lastName))
	// expect returns the state after every write that ends at or before
	// offset at of the last segment.
	expect := func(at int64) model {
		k := 0
		for i, m := range marks {
			if m.seq < lastSeq || m.end <= at {
				k = i
			}
		}
		return states[k]
	}
	check := func(t *testing.T, damage func(dir string), want model) {
		t.Helper()
		d := copyDir(t, dir)
		damage(d)
		l, err := Open(Config{Dir: d, SegmentBytes: cfg.SegmentBytes})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer l.Close()
		if got := dump(t, l).String(); got != want.String() {
			t.Fatalf("%s", diffStates(want.String(), got))
		}
	}
	for i := range 40 {
		at := rng.Int64N(size + 1)
		t.Run(fmt.Sprintf("cut%d@%d", i, at), func(t *testing.T) {
			check(t, func(d string) {
				if err := os.Truncate(filepath.Join(d, lastName), at); err != nil {
					t.Fatal(err)
				}
			}, expect(at))
		})
	}
	for i := range 40 {
		at := rng.Int64N(size)
		t.Run(fmt.Sprintf("flip%d@%d", i, at), func(t *testing.T) {
			check(t, func(d string) { flip(t, filepath.Join(d, lastName), at, byte(1+rng.IntN(255))) }, expect(at))
		})
	}
	t.Run("garbage appended", func(t *testing.T) {
		check(t, func(d string) {
			f, err := os.OpenFile(filepath.Join(d, lastName), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{9, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6})
			f.Close()
		}, states[len(states)-1])
	})
	// Damage before the last segment is corruption.
	for _, seq := range []uint64{first, lastSeq - 1} {
		name := filepath.Join(segmentName(seq))
		n := fileSize(t, filepath.Join(dir, name))
		for i := range 10 {
			at := rng.Int64N(n)
			t.Run(fmt.Sprintf("segment%d", seq), func(t *testing.T) {
				d := copyDir(t, dir)
				if i%2 == 0 {
					flip(t, filepath.Join(d, name), at, 0x40)
				} else if err := os.Truncate(filepath.Join(d, name), at); err != nil {
					t.Fatal(err)
				}
				if l, err := Open(Config{Dir: d}); !errors.Is(err, ErrCorrupt) {
					if err == nil {
						l.Close()
					}
					t.Fatalf("damage at %d of segment %d: %v, want ErrCorrupt", at, seq, err)
				}
			})
		}
	}
	t.Run("missing segment", func(t *testing.T) {
		d := copyDir(t, dir)
		os.Remove(filepath.Join(d, segmentName(first+1)))
		if _, err := Open(Config{Dir: d}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v, want ErrCorrupt", err)
		}
	})
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func flip(t *testing.T, name string, at int64, x byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var p [1]byte
	if _, err := f.ReadAt(p[:], at); err != nil {
		t.Fatal(err)
	}
	p[0] ^= x
	if _, err := f.WriteAt(p[:], at); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, dir string) string {
	t.Helper()
	d := t.TempDir()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		src, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(d, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
	return d
}

// TestCutTailStaysCut: a record after the damaged one is cut with it, and
// stays cut when new writes fill the damaged one's place exactly: the
// file must be truncated, not just written over.
func TestCutTailStaysCut(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir})
	var b Batch
	var ends []int64
	for i := uint64(1); i <= 3; i++ {
		b.Reset()
		b.Append(1, []*pb.Entry{ent(1, i, "abcd")})
		if err := l.Write(&b, true); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, l.cur().size)
	}
	l.Close()
	flip(t, filepath.Join(dir, segmentName(1)), ends[0]+recHeaderLen+2, 1) // in the second batch
	l = openT(t, Config{Dir: dir})
	if st, _ := l.State(1); st.Last != 1 || l.Stats().TornBytes != ends[2]-ends[0] {
		t.Fatalf("after the cut: %+v, %+v", st, l.Stats())
	}
	b.Reset()
	b.Append(1, []*pb.Entry{ent(1, 2, "efgh")}) // the same size as the batch cut
	if err := l.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openT(t, Config{Dir: dir})
	defer l.Close()
	if st, _ := l.State(1); st.Last != 2 {
		t.Fatalf("a batch cut at Open came back: %+v", st)
	}
}
