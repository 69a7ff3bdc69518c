package raftlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// model is the reference the log is checked against: per group, what a
// raft replica would have persisted, kept the simplest way.
type model map[GroupID]*mgroup

type mgroup struct {
	hs        *hardState
	trunc     uint64
	truncTerm uint64
	ents      []ment // ents[i] has index trunc+1+i
}

type ment struct {
	term, index uint64
	typ         byte
	data        string
}

// mop is one operation of a generated batch.
type mop struct {
	kind        byte
	g           GroupID
	ents        []ment
	hs          hardState
	index, term uint64
}

func (m model) clone() model {
	out := make(model, len(m))
	for g, s := range m {
		c := *s
		c.ents = slices.Clone(s.ents)
		if s.hs != nil {
			hs := *s.hs
			c.hs = &hs
		}
		out[g] = &c
	}
	return out
}

func (m model) last(g GroupID) (trunc, last uint64) {
	s := m[g]
	if s == nil {
		return 0, 0
	}
	return s.trunc, s.trunc + uint64(len(s.ents))
}

// apply applies a valid operation.
func (m model) apply(o mop) {
	if o.kind == opRemove {
		delete(m, o.g)
		return
	}
	s := m[o.g]
	if s == nil {
		s = &mgroup{}
		m[o.g] = s
	}
	switch o.kind {
	case opEntry:
		for _, e := range o.ents {
			s.ents = append(s.ents[:e.index-s.trunc-1], e)
		}
	case opHardState:
		hs := o.hs
		s.hs = &hs
	case opCompact:
		if o.index > s.trunc {
			s.ents = slices.Clone(s.ents[o.index-s.trunc:])
			s.trunc, s.truncTerm = o.index, o.term
		}
	case opSnapshot:
		s.ents = nil
		s.trunc, s.truncTerm = o.index, o.term
	}
}

func (o mop) addTo(b *Batch) {
	switch o.kind {
	case opEntry:
		ents := make([]*pb.Entry, len(o.ents))
		for i, e := range o.ents {
			var data []byte
			if e.data != "" {
				data = []byte(e.data)
			}
			ents[i] = newEntry(e.term, e.index, e.typ, data)
		}
		b.Append(o.g, ents)
	case opHardState:
		term, vote, commit := o.hs.term, o.hs.vote, o.hs.commit
		b.SetHardState(o.g, &pb.HardState{Term: &term, Vote: &vote, Commit: &commit})
	case opCompact:
		b.Compact(o.g, o.index, o.term)
	case opSnapshot:
		b.Snapshot(o.g, o.index, o.term)
	case opRemove:
		b.Remove(o.g)
	}
}

// String is the canonical form of the state: two states are equal iff
// their strings are.
func (m model) String() string {
	var sb strings.Builder
	gs := make([]GroupID, 0, len(m))
	for g := range m {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	for _, g := range gs {
		s := m[g]
		fmt.Fprintf(&sb, "group %d: compacted %d/%d", g, s.trunc, s.truncTerm)
		if s.hs != nil {
			fmt.Fprintf(&sb, " hs %d/%d/%d", s.hs.term, s.hs.vote, s.hs.commit)
		}
		sb.WriteString("\n")
		for _, e := range s.ents {
			fmt.Fprintf(&sb, "  %d/%d/%d %x\n", e.index, e.term, e.typ, e.data)
		}
	}
	return sb.String()
}

// gen makes a random valid batch for the state m, and applies it to m.
type gen struct {
	rng     *rand.Rand
	groups  int // group ids drawn from [1, groups]
	maxData int // entry data up to this many bytes
	term    uint64
}

func (gn *gen) batch(m model) []mop {
	var ops []mop
	for range 1 + gn.rng.IntN(6) {
		g := GroupID(1 + gn.rng.IntN(gn.groups))
		trunc, last := m.last(g)
		var o mop
		switch r := gn.rng.IntN(100); {
		case r < 55: // append, sometimes over a conflicting tail
			start := last + 1
			if last > trunc && gn.rng.IntN(6) == 0 {
				start = trunc + 1 + uint64(gn.rng.IntN(int(last-trunc)))
				gn.term++
			}
			o = mop{kind: opEntry, g: g}
			for i := range 1 + gn.rng.IntN(5) {
				e := ment{term: gn.term, index: start + uint64(i), typ: byte(gn.rng.IntN(3))}
				if n := gn.rng.IntN(gn.maxData + 1); n > 0 && gn.rng.IntN(8) > 0 {
					p := make([]byte, n)
					for j := range p {
						p[j] = byte(gn.rng.Uint32())
					}
					e.data = string(p)
				}
				o.ents = append(o.ents, e)
			}
		case r < 80:
			o = mop{kind: opHardState, g: g, hs: hardState{gn.term, uint64(gn.rng.IntN(4)), last}}
		case r < 92:
			if last == 0 || last == trunc {
				continue
			}
			i := max(trunc, 1) + uint64(gn.rng.IntN(int(last-max(trunc, 1))+1))
			o = mop{kind: opCompact, g: g, index: i, term: gn.rng.Uint64N(gn.term + 1)}
		case r < 97:
			i := max(trunc, 1) + uint64(gn.rng.IntN(int(last-trunc)+10))
			o = mop{kind: opSnapshot, g: g, index: i, term: gn.term}
		default:
			o = mop{kind: opRemove, g: g}
		}
		m.apply(o)
		ops = append(ops, o)
	}
	return ops
}

func toBatch(b *Batch, ops []mop) *Batch {
	b.Reset()
	for _, o := range ops {
		o.addTo(b)
	}
	return b
}

// dump returns the log's state in model form, reading every group's
// entries three ways (Entries and Load, then Entries from disk once Load
// let go of what Open decoded), which must agree.
func dump(t testing.TB, l *Log) model {
	t.Helper()
	m := model{}
	for _, g := range l.Groups() {
		st, ok := l.State(g)
		if !ok {
			t.Fatalf("group %d listed without state", g)
		}
		if st.First != st.Compacted+1 || st.Last < st.Compacted {
			t.Fatalf("group %d: bad bounds %+v", g, st)
		}
		before, err := l.Entries(g, st.First, st.Last+1)
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		st2, ents, err := l.Load(g)
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		after, err := l.Entries(g, st.First, st.Last+1)
		if err != nil {
			t.Fatalf("group %d: %v", g, err)
		}
		s := &mgroup{trunc: st.Compacted, truncTerm: st.CompactedTerm}
		if st2.HardState != nil {
			s.hs = &hardState{st2.HardState.GetTerm(), st2.HardState.GetVote(), st2.HardState.GetCommit()}
		}
		for i, e := range ents {
			if e.GetIndex() != st.First+uint64(i) {
				t.Fatalf("group %d: entry %d has index %d", g, st.First+uint64(i), e.GetIndex())
			}
			for _, other := range [][]*pb.Entry{before, after} {
				o := other[i]
				if o.GetIndex() != e.GetIndex() || o.GetTerm() != e.GetTerm() || o.GetType() != e.GetType() || string(o.GetData()) != string(e.GetData()) {
					t.Fatalf("group %d entry %d reads differently: %v vs %v", g, e.GetIndex(), e, o)
				}
			}
			s.ents = append(s.ents, ment{term: e.GetTerm(), index: e.GetIndex(), typ: byte(e.GetType()), data: string(e.GetData())})
		}
		if len(before) != len(ents) || len(after) != len(ents) {
			t.Fatalf("group %d: %d, %d and %d entries", g, len(before), len(ents), len(after))
		}
		m[g] = s
	}
	return m
}

func diffStates(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n want %q\n got  %q", i+1, a, b)
		}
	}
	return ""
}
