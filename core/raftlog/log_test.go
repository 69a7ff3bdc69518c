package raftlog

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

func openT(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ent(term, index uint64, data string) *pb.Entry {
	return newEntry(term, index, 0, []byte(data))
}

// TestRoundTrip writes random batches for many groups — appends,
// overwrites of a tail, compactions, snapshots, removals, hard states —
// on disk, with segments small enough that the log moves on, rewrites
// and deletes segments all along, reopening now and then; after each
// reopen the log must hold exactly what the model does.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fragBytes int
		maxData   int
	}{
		{"records", maxRecordBytes, 300},
		{"split batches", 700, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Dir: dir, SegmentBytes: 8 << 10, RewriteSegments: 4, RewriteBytes: 4 << 10}
			rng := rand.New(rand.NewPCG(1, uint64(tc.fragBytes)))
			gn := &gen{rng: rng, groups: 40, maxData: tc.maxData, term: 1}
			m := model{}
			l := openT(t, cfg)
			l.fragBytes = tc.fragBytes
			var b Batch
			var total Stats
			maxSegs := 0
			for i := range 1500 {
				maxSegs = max(maxSegs, len(l.segs))
				ops := gn.batch(m)
				if err := l.Write(toBatch(&b, ops), rng.IntN(3) == 0); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				if i%300 == 299 {
					total.add(l.Stats())
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					l = openT(t, cfg)
					l.fragBytes = tc.fragBytes
					if got := dump(t, l); got.String() != m.String() {
						t.Fatalf("after reopen at write %d: %s", i, diffStates(m.String(), got.String()))
					}
				}
			}
			total.add(l.Stats())
			t.Logf("%+v, at most %d segments", total, maxSegs)
			if total.Rolls == 0 || total.DeletedSegments == 0 || total.RewrittenBytes == 0 {
				t.Fatalf("the run did not exercise rolls, deletions and rewrites: %+v", total)
			}
			if got := dump(t, l); got.String() != m.String() {
				t.Fatalf("before close: %s", diffStates(m.String(), got.String()))
			}
			l.Close()
		})
	}
}

// TestBadBatch: a batch breaking a rule is refused whole, and the log
// stays usable.
func TestBadBatch(t *testing.T) {
	l := openT(t, Config{Dir: t.TempDir()})
	defer l.Close()
	var b Batch
	b.Append(1, []*pb.Entry{ent(1, 1, "a"), ent(1, 2, "b"), ent(1, 3, "c")})
	b.Compact(1, 1, 1)
	if err := l.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fill func(b *Batch)
	}{
		{"gap", func(b *Batch) { b.Append(1, []*pb.Entry{ent(1, 5, "")}) }},
		{"gap inside", func(b *Batch) { b.Append(1, []*pb.Entry{ent(1, 4, ""), ent(1, 6, "")}) }},
		{"compacted", func(b *Batch) { b.Append(1, []*pb.Entry{ent(1, 1, "")}) }},
		{"new group not at 1", func(b *Batch) { b.Append(2, []*pb.Entry{ent(1, 2, "")}) }},
		{"compact back", func(b *Batch) { b.Compact(1, 0, 0) }},
		{"compact past the end", func(b *Batch) { b.Compact(1, 4, 1) }},
		{"snapshot back", func(b *Batch) { b.Snapshot(1, 0, 1) }},
		{"entry type", func(b *Batch) { b.Append(1, []*pb.Entry{newEntry(1, 4, 7, nil)}) }},
		{"after a good op", func(b *Batch) { b.SetHardState(3, &pb.HardState{}); b.Append(1, []*pb.Entry{ent(1, 9, "")}) }},
	} {
		b.Reset()
		tc.fill(&b)
		if err := l.Write(&b, true); !errors.Is(err, ErrBadBatch) {
			t.Errorf("%s: %v, want ErrBadBatch", tc.name, err)
		}
	}
	if _, ok := l.State(3); ok {
		t.Fatal("part of a refused batch was applied")
	}
	b.Reset()
	b.Append(1, []*pb.Entry{ent(2, 3, "x"), ent(2, 4, "y")}) // over the tail
	if err := l.Write(&b, true); err != nil {
		t.Fatalf("the log is not usable after refusals: %v", err)
	}
	ents, err := l.Entries(1, 2, 5)
	if err != nil || len(ents) != 3 || string(ents[1].GetData()) != "x" || ents[1].GetTerm() != 2 {
		t.Fatalf("entries %v, %v", ents, err)
	}
	if _, err := l.Entries(1, 1, 3); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("entries before the first: %v", err)
	}
	if _, err := l.Entries(1, 2, 6); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("entries past the last: %v", err)
	}
}

// TestStickyFailure: once a write fails, every later one fails, and a
// reopen recovers every synced write.
func TestStickyFailure(t *testing.T) {
	fs := newMemFS()
	cfg := Config{Dir: "/log", fs: fs}
	l := openT(t, cfg)
	var b Batch
	b.Append(1, []*pb.Entry{ent(1, 1, "a")})
	if err := l.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	fs.budget = 0
	b.Reset()
	b.Append(1, []*pb.Entry{ent(1, 2, "b")})
	if err := l.Write(&b, true); err == nil {
		t.Fatal("a write on a dead disk succeeded")
	}
	fs.budget = -1
	b.Reset()
	b.Append(1, []*pb.Entry{ent(1, 2, "b")})
	if err := l.Write(&b, true); err == nil {
		t.Fatal("a write after a failure succeeded")
	}
	l = openT(t, Config{Dir: "/log", fs: fs.crash(rand.New(rand.NewPCG(1, 1)))})
	defer l.Close()
	if st, _ := l.State(1); st.Last != 1 {
		t.Fatalf("recovered %+v", st)
	}
}

// TestLocked: a second Open of a directory fails while the first holds it.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	l := openT(t, Config{Dir: dir})
	if _, err := Open(Config{Dir: dir}); err == nil {
		t.Fatal("opened a locked log")
	}
	l.Close()
	openT(t, Config{Dir: dir}).Close()
}

// TestConfig: Validate reports every problem; defaults are documented.
func TestConfig(t *testing.T) {
	c := DefaultConfig("x")
	if c.SegmentBytes != 64<<20 || c.RewriteSegments != 8 || c.RewriteBytes != 16<<20 {
		t.Fatalf("defaults %+v", c)
	}
	bad := Config{SegmentBytes: 10, RewriteSegments: 1, RewriteBytes: -1}
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Dir", "SegmentBytes", "RewriteSegments", "RewriteBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not mention %s", err, want)
		}
	}
}

// TestIgnoresOtherFiles: files that are not segments are left alone.
func TestIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := openT(t, Config{Dir: dir})
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Fatal(err)
	}
}

func (s *Stats) add(o Stats) {
	s.Writes += o.Writes
	s.Syncs += o.Syncs
	s.Rolls += o.Rolls
	s.RewrittenBytes += o.RewrittenBytes
	s.DeletedSegments += o.DeletedSegments
	s.TornBytes += o.TornBytes
	s.Segments, s.Bytes, s.Groups = o.Segments, o.Bytes, o.Groups
}
