package raftlog

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// fuzzSeeds returns the two segments of valid logs: batches in records
// and split across records, with checkpoints, compactions, snapshots and
// removals.
func fuzzSeeds(t testing.TB) [][2][]byte {
	var seeds [][2][]byte
	for i, frag := range []int{maxRecordBytes, 200} {
		fs := newMemFS()
		l := openT(t, Config{Dir: "/log", SegmentBytes: 4 << 10, fs: fs})
		l.fragBytes = frag
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		gn := &gen{rng: rng, groups: 4, maxData: 100, term: 1}
		m := model{}
		var b Batch
		for l.cur().seq < 2 || l.cur().size < 1500 {
			if err := l.Write(toBatch(&b, gn.batch(m)), false); err != nil {
				t.Fatal(err)
			}
		}
		if l.segs[0].seq != 1 || len(l.segs) != 2 {
			t.Fatalf("seed log holds segments %d to %d", l.segs[0].seq, l.cur().seq)
		}
		l.Close()
		seeds = append(seeds, [2][]byte{fs.file("/log/" + segmentName(1)), fs.file("/log/" + segmentName(2))})
	}
	return seeds
}

// FuzzRecover opens logs of one or two segments holding any bytes —
// valid logs cut, flipped, spliced by the fuzzer, or garbage. Open must
// never panic, must allocate within a bound set by the input's size (a
// corrupt length cannot make it allocate more), and either refuses the
// log with ErrCorrupt or recovers a log whose every group reads back
// whole, whose last segment it cut to a prefix, and which goes on working
// across a reopen.
func FuzzRecover(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s[0], s[1])
		f.Add(s[0], []byte(nil))
		f.Add(s[0], s[1][:len(s[1])/2])
		f.Add(s[0][:len(s[0])-3], s[1])
	}
	f.Add([]byte("BRNYRLOG"), []byte(nil))
	f.Fuzz(func(t *testing.T, seg1, seg2 []byte) {
		fs := newMemFS()
		names := []string{"/log/" + segmentName(1)}
		fs.setFile(names[0], seg1)
		if len(seg2) > 0 {
			names = append(names, "/log/"+segmentName(2))
			fs.setFile(names[1], seg2)
		}
		last := names[len(names)-1]
		orig := fs.file(last)
		cfg := Config{Dir: "/log", SegmentBytes: 4 << 10, fs: fs}

		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		l, err := Open(cfg)
		runtime.ReadMemStats(&ms)
		if alloc, bound := ms.TotalAlloc-before, uint64(64*(len(seg1)+len(seg2))+8<<20); alloc > bound {
			t.Fatalf("Open allocated %d bytes for %d bytes of segments", alloc, len(seg1)+len(seg2))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not classified as ErrCorrupt: %v", err)
			}
			return
		}
		got := dump(t, l)
		// What stays of the last segment is a prefix of it (followed by
		// a checkpoint if the cut took the one it began with).
		kept := int64(len(orig)) - l.Stats().TornBytes
		if now := fs.file(last); kept >= headerLen && (int64(len(now)) < kept || !bytes.Equal(now[:kept], orig[:kept])) {
			t.Fatalf("the last segment was changed before offset %d", kept)
		}
		var b Batch
		term, vote, commit := uint64(1), uint64(2), uint64(3)
		b.SetHardState(1<<31, &pb.HardState{Term: &term, Vote: &vote, Commit: &commit})
		got.apply(mop{kind: opHardState, g: 1 << 31, hs: hardState{1, 2, 3}})
		if err := l.Write(&b, true); err != nil {
			t.Fatalf("write after recovery: %v", err)
		}
		l.Close()
		l, err = Open(cfg)
		if err != nil {
			t.Fatalf("reopen after recovery: %v", err)
		}
		defer l.Close()
		if l.Stats().TornBytes != 0 {
			t.Fatalf("the reopen found a torn tail again")
		}
		if again := dump(t, l).String(); again != got.String() {
			t.Fatalf("reopen: %s", diffStates(got.String(), again))
		}
	})
}
