package raftlog

import (
	"os"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, de := range des {
		if strings.HasSuffix(de.Name(), segmentSuffix) {
			n++
		}
	}
	return n
}

// appendN appends n entries of 200 bytes to each of groups, one batch per
// round (synced), with a hard state per group per round.
func appendN(t *testing.T, l *Log, m model, groups []GroupID, n int) {
	t.Helper()
	var b Batch
	data := strings.Repeat("x", 200)
	for range n {
		b.Reset()
		for _, g := range groups {
			_, last := m.last(g)
			o := mop{kind: opEntry, g: g, ents: []ment{{term: 1, index: last + 1, data: data}}}
			h := mop{kind: opHardState, g: g, hs: hardState{1, 1, last}}
			m.apply(o)
			m.apply(h)
			o.addTo(&b)
			h.addTo(&b)
		}
		if err := l.Write(&b, true); err != nil {
			t.Fatal(err)
		}
	}
}

func compactAll(t *testing.T, l *Log, m model, groups []GroupID, keep uint64) {
	t.Helper()
	var b Batch
	for _, g := range groups {
		trunc, last := m.last(g)
		if last <= trunc+keep {
			continue
		}
		o := mop{kind: opCompact, g: g, index: last - keep, term: 1}
		m.apply(o)
		o.addTo(&b)
	}
	// Unsynced, as multiraft compacts: the segments go after a later
	// synced write.
	if err := l.Write(&b, false); err != nil {
		t.Fatal(err)
	}
}

// TestGC: once every group is compacted, the old segments are deleted
// (after the next synced write), and a reopen still has every group's
// hard state, compaction point and remaining entries.
func TestGC(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10}
	l := openT(t, cfg)
	groups := []GroupID{1, 2, 3, 4, 5, 6, 7, 8}
	m := model{}
	appendN(t, l, m, groups, 100) // ~180 KiB: a dozen segments
	before := segmentFiles(t, dir)
	if before < 8 {
		t.Fatalf("only %d segments", before)
	}
	compactAll(t, l, m, groups, 5)
	if n := segmentFiles(t, dir); n < before {
		t.Fatalf("segments deleted before the compaction was synced: %d -> %d", before, n)
	}
	appendN(t, l, m, groups, 1)
	after := segmentFiles(t, dir)
	if after > 2 {
		t.Fatalf("%d segments left of %d after compacting everything", after, before)
	}
	if st := l.Stats(); st.DeletedSegments != uint64(before+1-after) && st.DeletedSegments != uint64(before-after) {
		t.Fatalf("stats %+v", st)
	}
	reopenMatches(t, l, cfg, m, "after GC and reopen")
}

// TestGCRemove: removing a group lets the segments only it used go.
// (Segments go oldest first: another group's live entry in the oldest
// segment would keep them until it is compacted, or copied forward.)
func TestGCRemove(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10}
	l := openT(t, cfg)
	m := model{}
	appendN(t, l, m, []GroupID{9}, 200)
	appendN(t, l, m, []GroupID{10}, 1)
	if n := segmentFiles(t, dir); n < 3 {
		t.Fatalf("only %d segments", n)
	}
	var b Batch
	b.Remove(9)
	m.apply(mop{kind: opRemove, g: 9})
	if err := l.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	if n := segmentFiles(t, dir); n != 1 {
		t.Fatalf("%d segments left after removing the only group with entries in the old ones", n)
	}
	reopenMatches(t, l, cfg, m, "after removal and reopen")
}

// TestGCIdleGroup: a group that wrote a few entries and went idle does
// not keep every later segment on disk: its entries are copied forward
// once the log holds more than RewriteSegments segments, and survive.
func TestGCIdleGroup(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 16 << 10, RewriteSegments: 4}
	l := openT(t, cfg)
	m := model{}
	appendN(t, l, m, []GroupID{1}, 5) // then idle, never compacted
	busy := []GroupID{2, 3}
	most := 0
	for range 40 {
		appendN(t, l, m, busy, 20)
		compactAll(t, l, m, busy, 10)
		most = max(most, segmentFiles(t, dir))
	}
	st := l.Stats()
	if most > cfg.RewriteSegments+1 || st.RewrittenBytes == 0 {
		t.Fatalf("up to %d segments with RewriteSegments %d: %+v", most, cfg.RewriteSegments, st)
	}
	// The rewritten group's entries no longer pin anything, and were
	// copied only now and then, not at every move.
	if st.RewrittenBytes > 5*uint64(st.Rolls)*210 {
		t.Fatalf("rewrote %d bytes in %d moves", st.RewrittenBytes, st.Rolls)
	}
	l = reopenMatches(t, l, cfg, m, "after reopen")
	if ents, err := l.Entries(1, 1, 6); err != nil || len(ents) != 5 {
		t.Fatalf("the idle group's entries: %v, %v", len(ents), err)
	}
}

// TestSnapshotOp: a snapshot drops every entry, the log continues after
// it, and the segments before it can go.
func TestSnapshotOp(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 8 << 10}
	l := openT(t, cfg)
	m := model{}
	appendN(t, l, m, []GroupID{1}, 100)
	var b Batch
	b.Snapshot(1, 500, 3)
	b.Append(1, []*pb.Entry{ent(3, 501, "a")})
	m.apply(mop{kind: opSnapshot, g: 1, index: 500, term: 3})
	m.apply(mop{kind: opEntry, g: 1, ents: []ment{{term: 3, index: 501, data: "a"}}})
	if err := l.Write(&b, true); err != nil {
		t.Fatal(err)
	}
	if n := segmentFiles(t, dir); n > 2 {
		t.Fatalf("%d segments after a snapshot replaced the log", n)
	}
	reopenMatches(t, l, cfg, m, "after the snapshot and reopen")
}

// reopenMatches closes l, opens its directory again and checks that it
// holds what model m says (when names the moment, for the failure). The
// reopened log is closed when the test ends.
func reopenMatches(t *testing.T, l *Log, cfg Config, m model, when string) *Log {
	t.Helper()
	l.Close()
	l = openT(t, cfg)
	t.Cleanup(func() { l.Close() })
	if got := dump(t, l).String(); got != m.String() {
		t.Fatalf("%s: %s", when, diffStates(m.String(), got))
	}
	return l
}
