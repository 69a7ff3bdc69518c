package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/soullabs/brainy/internal/item"
)

// mapState is a partition's keys in a map: a view and a writer for the
// state machine, without a node.
type mapState map[string][]byte

func (m mapState) get(key []byte) ([]byte, bool, error) {
	v, ok := m[string(key)]
	return v, ok, nil
}
func (m mapState) set(key, val []byte) { m[string(key)] = bytes.Clone(val) }
func (m mapState) del(key []byte)      { delete(m, string(key)) }

// simRegion is one region's partition: its state machine, keys and clock.
type simRegion struct {
	name    string
	sm      stateMachine
	keys    mapState
	index   uint64
	clock   int64
	outbox  []RemoteValue // every value its local writes produced, in order
	applied int           // local writes that succeeded
	// parent, when set, records each local write's predecessor: the value
	// (id + " " + version) it replaced, "" for none. Shared by regions.
	parent map[string]string
}

func newSimRegion(name string) *simRegion {
	r := &simRegion{name: name, sm: stateMachine{limits: item.DefaultLimits(), parts: make([]partState, 1)}, keys: mapState{}}
	r.sm.limits.EnsureDefaults()
	return r
}

func (r *simRegion) apply(cmd *Command) result {
	r.index++
	return r.sm.apply(r.keys, r.keys, 0, r.index, cmd)
}

// write makes a local write of a random kind to id and records the item's
// resulting value for the other regions.
func (r *simRegion) write(rng *rand.Rand, id string) {
	r.clock += 1 + rng.Int64N(5)
	cmd := &Command{Now: r.clock, Origin: r.name, Federated: true, Tenant: "t", ID: id}
	switch rng.IntN(4) {
	case 0, 1:
		cmd.Op, cmd.Type, cmd.Data = OpPut, fmt.Sprintf("type%d", rng.IntN(2)), fmt.Appendf(nil, `{"by":%q,"n":%d}`, r.name, rng.IntN(100))
	case 2:
		cmd.Op, cmd.Data = OpPatch, fmt.Appendf(nil, `{"p%s":%d}`, r.name, rng.IntN(100))
	case 3:
		cmd.Op = OpDelete
	}
	before := r.version(id)
	if res := r.apply(cmd); res.err != nil {
		return // a patch or delete of a missing item
	}
	r.applied++
	r.outbox = append(r.outbox, r.value(id))
	if r.parent != nil {
		r.parent[r.version(id)] = before
	}
}

// version names id's stored value (live or tombstone) as id + " " +
// version, "" when there is none.
func (r *simRegion) version(id string) string {
	v := r.value(id)
	if v.Record == nil {
		return ""
	}
	var rec record
	if err := rec.decode(v.Record); err != nil {
		panic(err)
	}
	return id + " " + rec.version()
}

// losers returns the values in r's conflict log, named as version does.
func (r *simRegion) losers(t *testing.T) []string {
	var out []string
	for k, v := range r.keys {
		if k[3] != kindConflict {
			continue
		}
		var e conflictEntry
		var rec record
		if err := e.decode(v); err != nil {
			t.Fatal(err)
		}
		if err := rec.decode(e.loser); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.id+" "+rec.version())
	}
	return out
}

func (r *simRegion) value(id string) RemoteValue {
	if v, ok := r.keys[string(itemKey(nil, 0, "t", id))]; ok {
		return RemoteValue{Tenant: "t", ID: id, Record: v}
	}
	return RemoteValue{Tenant: "t", ID: id, Deleted: true, Record: r.keys[string(tombKey(nil, 0, "t", id))]}
}

// receive merges values from region src.
func (r *simRegion) receive(t *testing.T, src string, values []RemoteValue) result {
	t.Helper()
	res := r.apply(&Command{Op: OpReplicate, Origin: r.name, Federated: true, Source: src, Resync: true, Values: values})
	if res.err != nil {
		t.Fatalf("%s receiving from %s: %v", r.name, src, res.err)
	}
	return res
}

// TestRegionsConverge: regions that write the same items concurrently and
// exchange their values in any order, with duplicates, end with the same
// bytes under every key — items, tombstones, type index — and the same item
// count. Seeds are replayable.
func TestRegionsConverge(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			regions := []*simRegion{newSimRegion("eu-west"), newSimRegion("us-east"), newSimRegion("ap-south")}
			parent := map[string]string{}
			for _, r := range regions {
				r.parent = parent
			}
			ids := []string{"a", "b", "c", "d"}
			sent := make([][]int, len(regions)) // sent[i][j]: how much of i's outbox j has
			for i := range sent {
				sent[i] = make([]int, len(regions))
			}
			conflicts := 0
			deliver := func(i, j int, upto int) {
				vals := slices.Clone(regions[i].outbox[sent[i][j]:upto])
				rng.Shuffle(len(vals), func(a, b int) { vals[a], vals[b] = vals[b], vals[a] })
				if len(vals) > 0 && rng.IntN(3) == 0 {
					vals = append(vals, vals[0]) // a duplicate
				}
				conflicts += regions[j].receive(t, regions[i].name, vals).conflicts
				sent[i][j] = upto
			}
			for range 300 {
				r := rng.IntN(len(regions))
				regions[r].write(rng, ids[rng.IntN(len(ids))])
				if rng.IntN(4) == 0 {
					i, j := rng.IntN(len(regions)), rng.IntN(len(regions))
					if i != j {
						deliver(i, j, sent[i][j]+rng.IntN(len(regions[i].outbox)-sent[i][j]+1))
					}
				}
			}
			for i := range regions {
				for j := range regions {
					if i != j {
						deliver(i, j, len(regions[i].outbox))
					}
				}
			}
			for _, r := range regions {
				tombs := 0
				for k := range r.keys {
					if k[3] == kindTombstone {
						tombs++
					}
				}
				if uint64(tombs) != r.sm.parts[0].tombstones {
					t.Fatalf("seed %d: %s holds %d tombstones, counts %d", seed, r.name, tombs, r.sm.parts[0].tombstones)
				}
			}
			for _, r := range regions[1:] {
				if !mapsEqual(regions[0].keys, r.keys) || regions[0].sm.parts[0].items != r.sm.parts[0].items {
					t.Fatalf("seed %d: %s and %s differ:\n%s\n%s", seed, regions[0].name, r.name, dump(regions[0].keys), dump(r.keys))
				}
			}
			checkNoSilentLoss(t, regions, ids, parent)
			// The converged state includes every value ever written: sending
			// any again is no conflict (the winners carry the losers' vectors).
			for i := range regions {
				for j := range regions {
					if res := regions[j].receive(t, regions[i].name, regions[i].outbox); i != j && (res.conflicts != 0 || res.replicated != 0) {
						t.Fatalf("seed %d: %s's values again at %s: %+v", seed, regions[i].name, regions[j].name, res)
					}
				}
			}
			if seed == 0 && conflicts == 0 {
				t.Fatal("no conflict arose: the test exercises nothing concurrent")
			}
		})
	}
}

// checkNoSilentLoss: every value ever written is the converged value, one
// the regions logged as a conflict's loser, or one that a write of either
// replaced (its region had it as the item's value when it wrote). A value
// that is none of these was dropped by a merge without a trace.
func checkNoSilentLoss(t *testing.T, regions []*simRegion, ids []string, parent map[string]string) {
	t.Helper()
	accounted := map[string]bool{}
	var roots []string
	for _, id := range ids {
		roots = append(roots, regions[0].version(id))
	}
	for _, r := range regions {
		roots = append(roots, r.losers(t)...)
	}
	for _, v := range roots {
		for ; v != "" && !accounted[v]; v = parent[v] {
			accounted[v] = true
		}
	}
	for v := range parent {
		if !accounted[v] {
			t.Fatalf("the write %q is neither the converged value, nor logged as a conflict's loser, nor replaced by a write that saw it", v)
		}
	}
}

// TestReplicatedNewerReplaces: a value whose vector is ahead replaces the
// stored one outright; one behind or equal changes nothing.
func TestReplicatedNewerReplaces(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	eu.clock, us.clock = 100, 100
	eu.apply(&Command{Op: OpPut, Now: 10, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`1`)})
	v1 := eu.value("a")
	us.receive(t, "eu", []RemoteValue{v1})
	// us writes on top of eu's value: its vector includes eu's write.
	us.apply(&Command{Op: OpPut, Now: 5, Origin: "us", Federated: true, Tenant: "t", ID: "a", Data: []byte(`2`)})
	v2 := us.value("a")
	var r record
	if err := r.decode(v2.Record); err != nil || r.hlc != 11 || r.origin != "us" {
		t.Fatalf("a write over a later remote value: hlc %d origin %q (%v), want 11 us", r.hlc, r.origin, err)
	}
	if res := eu.receive(t, "us", []RemoteValue{v2}); res.conflicts != 0 || res.replicated != 1 {
		t.Fatalf("a newer value: %+v", res)
	}
	if res := eu.receive(t, "us", []RemoteValue{v1, v2}); res.replicated != 0 || res.conflicts != 0 {
		t.Fatalf("older and equal values changed something: %+v", res)
	}
	if !mapsEqual(eu.keys, us.keys) {
		t.Fatalf("differ:\n%s\n%s", dump(eu.keys), dump(us.keys))
	}
}

// TestConflictCounts: a concurrent value that loses is a conflict and
// replaces nothing; a newer value replaces, a newer tombstone over a
// tombstone included.
func TestConflictCounts(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	eu.apply(&Command{Op: OpPut, Now: 20, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`1`)})
	us.apply(&Command{Op: OpPut, Now: 10, Origin: "us", Federated: true, Tenant: "t", ID: "a", Data: []byte(`2`)})
	if res := eu.receive(t, "us", []RemoteValue{us.value("a")}); res.conflicts != 1 || res.replicated != 0 {
		t.Fatalf("a losing concurrent value: %+v", res)
	}
	// The winner eu kept carries both vectors: at us it is simply newer.
	if res := us.receive(t, "eu", []RemoteValue{eu.value("a")}); res.conflicts != 0 || res.replicated != 1 {
		t.Fatalf("the winner, merged: %+v", res)
	}
	eu.apply(&Command{Op: OpDelete, Now: 30, Origin: "eu", Federated: true, Tenant: "t", ID: "a"})
	us.receive(t, "eu", []RemoteValue{eu.value("a")})
	eu.apply(&Command{Op: OpCreate, Now: 40, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`3`)})
	eu.apply(&Command{Op: OpDelete, Now: 50, Origin: "eu", Federated: true, Tenant: "t", ID: "a"})
	if res := us.receive(t, "eu", []RemoteValue{eu.value("a")}); res.replicated != 1 || res.conflicts != 0 {
		t.Fatalf("a newer tombstone over a tombstone: %+v", res)
	}
}

// TestSameWriteMergedTwice: one write that won conflicts in two regions
// reaches a third by both ways, with different vectors: it is the same
// value, so no conflict is counted or logged, and the vectors are joined.
func TestSameWriteMergedTwice(t *testing.T) {
	eu, us, ap, sa := newSimRegion("eu"), newSimRegion("us"), newSimRegion("ap"), newSimRegion("sa")
	eu.apply(&Command{Op: OpPut, Now: 30, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`"eu"`)})
	us.apply(&Command{Op: OpPut, Now: 10, Origin: "us", Federated: true, Tenant: "t", ID: "a", Data: []byte(`"us"`)})
	ap.apply(&Command{Op: OpPut, Now: 20, Origin: "ap", Federated: true, Tenant: "t", ID: "a", Data: []byte(`"ap"`)})
	for _, r := range []*simRegion{us, ap} {
		if res := r.receive(t, "eu", []RemoteValue{eu.value("a")}); res.conflicts != 1 || res.replicated != 1 {
			t.Fatalf("%s: eu's write over its own: %+v", r.name, res)
		}
	}
	sa.receive(t, "us", []RemoteValue{us.value("a")})
	if res := sa.receive(t, "ap", []RemoteValue{ap.value("a")}); res.conflicts != 0 || res.replicated != 0 {
		t.Fatalf("eu's write by way of ap after by way of us: %+v", res)
	}
	if n := len(sa.losers(t)); n != 0 {
		t.Fatalf("sa logged %d conflicts", n)
	}
	var rec record
	if err := rec.decode(sa.value("a").Record); err != nil {
		t.Fatal(err)
	}
	if want := (versionVector{{"ap", 20}, {"eu", 30}, {"us", 10}}); string(rec.data) != `"eu"` || rec.clock().compare(want) != vvEqual {
		t.Fatalf("sa holds %s with vector %v, want \"eu\" with %v", rec.data, rec.clock(), want)
	}
}

// TestConflictLogBounded: a tenant's conflict log keeps its last
// ConflictLogKeep entries per partition, in order, each naming the loser
// and the winner; another tenant's log is untouched by it.
func TestConflictLogBounded(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	race := func(tenant string, i int) {
		now := int64(100 * (i + 1))
		eu.apply(&Command{Op: OpPut, Now: now + 1, Origin: "eu", Federated: true, Tenant: tenant, ID: "a", Data: fmt.Appendf(nil, `"eu%d"`, i)})
		us.apply(&Command{Op: OpPut, Now: now, Origin: "us", Federated: true, Tenant: tenant, ID: "a", Data: fmt.Appendf(nil, `"us%d"`, i)})
		v := us.value("a")
		v.Tenant = tenant
		v.Record = us.keys[string(itemKey(nil, 0, tenant, "a"))]
		if res := eu.receive(t, "us", []RemoteValue{v}); res.conflicts != 1 {
			t.Fatalf("round %d: %+v", i, res)
		}
		w := RemoteValue{Tenant: tenant, ID: "a", Record: eu.keys[string(itemKey(nil, 0, tenant, "a"))]}
		us.receive(t, "eu", []RemoteValue{w}) // the merged winner: no conflict at us
	}
	race("other", 0)
	rounds := ConflictLogKeep + 44
	for i := range rounds {
		race("t", i)
	}
	var seqs []uint64
	for k, v := range eu.keys {
		if !bytes.HasPrefix([]byte(k), conflictPrefix(nil, 0, "t")) {
			continue
		}
		var e conflictEntry
		var loser record
		if err := e.decode(v); err != nil || loser.decode(e.loser) != nil {
			t.Fatalf("entry %q: %v", k, err)
		}
		seq := binary.BigEndian.Uint64([]byte(k[len(k)-8:]))
		seqs = append(seqs, seq)
		round := int(seq) - 1
		if string(loser.data) != fmt.Sprintf(`"us%d"`, round) || e.winnerOrigin != "eu" || e.winnerHLC != uint64(100*(round+1)+1) {
			t.Fatalf("entry %d: loser %s, winner %d.%s", seq, loser.data, e.winnerHLC, e.winnerOrigin)
		}
	}
	slices.Sort(seqs)
	if len(seqs) != ConflictLogKeep || seqs[0] != uint64(rounds-ConflictLogKeep+1) || seqs[len(seqs)-1] != uint64(rounds) {
		t.Fatalf("kept %d entries, %d..%d; want the last %d of %d", len(seqs), seqs[0], seqs[len(seqs)-1], ConflictLogKeep, rounds)
	}
	if _, ok := eu.keys[string(conflictKey(nil, 0, "other", 1))]; !ok {
		t.Fatal("another tenant's entry was trimmed")
	}
	if n := len(us.losers(t)); n != 0 {
		t.Fatalf("us logged %d conflicts: it only ever received merged winners", n)
	}
}

// TestTombstoneNoResurrection: a delete is a value: an older write arriving
// after it does not bring the item back, and a write after it (in any
// region) does.
func TestTombstoneNoResurrection(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	eu.apply(&Command{Op: OpPut, Now: 10, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`1`)})
	put := eu.value("a")
	us.receive(t, "eu", []RemoteValue{put})
	us.apply(&Command{Op: OpDelete, Now: 20, Origin: "us", Federated: true, Tenant: "t", ID: "a"})
	del := us.value("a")
	if !del.Deleted || us.sm.parts[0].items != 0 {
		t.Fatalf("delete left %+v, %d items", del, us.sm.parts[0].items)
	}
	eu.receive(t, "us", []RemoteValue{del})
	eu.receive(t, "us", []RemoteValue{put}) // late, older
	if _, ok := eu.keys[string(itemKey(nil, 0, "t", "a"))]; ok || eu.sm.parts[0].items != 0 {
		t.Fatal("an older value brought a deleted item back")
	}
	// A create after the delete is ordered after it, though its clock is behind.
	if res := eu.apply(&Command{Op: OpCreate, Now: 15, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`3`)}); res.err != nil {
		t.Fatal(res.err)
	}
	us.receive(t, "eu", []RemoteValue{eu.value("a")})
	if !mapsEqual(eu.keys, us.keys) || us.sm.parts[0].items != 1 {
		t.Fatalf("differ:\n%s\n%s", dump(eu.keys), dump(us.keys))
	}
}

// TestTombstoneCollection: collecting removes only tombstones older than
// the horizon and still there; afterwards an old value of the collected
// item, arriving late (a copy from a region that was away), stays deleted
// and is logged as a loser, while a newer value of an unknown item is
// taken. A region that never collected takes old values (its first copy).
func TestTombstoneCollection(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	eu.apply(&Command{Op: OpPut, Now: 10, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`1`)})
	eu.apply(&Command{Op: OpPut, Now: 11, Origin: "eu", Federated: true, Tenant: "t", ID: "b", Data: []byte(`1`)})
	oldA := eu.value("a")
	eu.apply(&Command{Op: OpDelete, Now: 20, Origin: "eu", Federated: true, Tenant: "t", ID: "a"})
	eu.apply(&Command{Op: OpDelete, Now: 40, Origin: "eu", Federated: true, Tenant: "t", ID: "b"})
	// Picked with both tombstones, applied with a horizon only a's is under.
	res := eu.apply(&Command{Op: OpCollect, Origin: "eu", Federated: true, To: 21,
		Values: []RemoteValue{{Tenant: "t", ID: "a", Deleted: true}, {Tenant: "t", ID: "b", Deleted: true}, {Tenant: "t", ID: "zz", Deleted: true}}})
	if res.err != nil || res.collected != 1 || eu.sm.parts[0].tombstones != 1 || eu.sm.parts[0].collected != 21 {
		t.Fatalf("collect: %+v, %d tombstones left, horizon %d", res, eu.sm.parts[0].tombstones, eu.sm.parts[0].collected)
	}
	if v := eu.value("a"); v.Record != nil {
		t.Fatal("a's tombstone is still there")
	}
	if v := eu.value("b"); !v.Deleted {
		t.Fatal("b's newer tombstone was collected")
	}
	if res := eu.receive(t, "us", []RemoteValue{oldA}); res.replicated != 0 || res.conflicts != 1 {
		t.Fatalf("a's old value after its delete was collected: %+v", res)
	}
	if v := eu.value("a"); v.Record != nil {
		t.Fatal("a came back")
	}
	if n := len(eu.losers(t)); n != 1 {
		t.Fatalf("%d losers logged, want a's old value", n)
	}
	// a's old tombstone, sent back (a digest resync): dropped, not a conflict.
	tomb := RemoteValue{Tenant: "t", ID: "a", Deleted: true, Record: (&record{hlc: 20, origin: "eu"}).append(nil)}
	if res := eu.receive(t, "us", []RemoteValue{tomb}); res.conflicts != 0 || eu.value("a").Record != nil || len(eu.losers(t)) != 1 {
		t.Fatalf("a collected tombstone sent back: %+v", res)
	}
	us.apply(&Command{Op: OpPut, Now: 30, Origin: "us", Federated: true, Tenant: "t", ID: "c", Data: []byte(`1`)})
	if res := eu.receive(t, "us", []RemoteValue{us.value("c")}); res.replicated != 1 {
		t.Fatalf("a value newer than the horizon: %+v", res)
	}
	// The horizon survives the partition state's encoding.
	var ps partState
	if err := ps.decode(eu.sm.parts[0].encode()); err != nil || ps.collected != 21 || ps.tombstones != 1 {
		t.Fatalf("decoded %+v, %v", ps, err)
	}
	fresh := newSimRegion("ap")
	if res := fresh.receive(t, "eu", []RemoteValue{oldA}); res.replicated != 1 {
		t.Fatalf("a region that never collected: %+v", res)
	}
}

// TestReplicationPositions: a batch is applied once: a resend changes
// nothing, and one that would leave a gap is refused with the position.
func TestReplicationPositions(t *testing.T) {
	eu, us := newSimRegion("eu"), newSimRegion("us")
	eu.apply(&Command{Op: OpPut, Now: 10, Origin: "eu", Federated: true, Tenant: "t", ID: "a", Data: []byte(`1`)})
	batch := &Command{Op: OpReplicate, Origin: "us", Source: "eu", From: 0, To: 5, Values: []RemoteValue{eu.value("a")}}
	if res := us.apply(batch); res.err != nil || res.position != 5 || res.replicated != 1 {
		t.Fatalf("first batch: %+v", res)
	}
	if res := us.apply(batch); res.err != nil || res.position != 5 || res.replicated != 0 {
		t.Fatalf("resent batch: %+v", res)
	}
	gap := &Command{Op: OpReplicate, Origin: "us", Source: "eu", From: 7, To: 9}
	if res := us.apply(gap); res.err == nil || res.position != 5 {
		t.Fatalf("gap: %+v", res)
	}
	if got := us.sm.parts[0].position("eu"); got != 5 {
		t.Fatalf("position %d after a refused gap", got)
	}
	// Positions survive the partition state's encoding.
	var ps partState
	us.sm.parts[0].tombstones = 3
	if err := ps.decode(us.sm.parts[0].encode()); err != nil || ps.position("eu") != 5 || ps.applied != us.index || ps.tombstones != 3 {
		t.Fatalf("state round trip: %+v, %v", ps, err)
	}
}

func TestVersionVectorCompare(t *testing.T) {
	a := versionVector{{"eu", 3}, {"us", 1}}
	for _, c := range []struct {
		b    versionVector
		want vvOrder
	}{
		{versionVector{{"eu", 3}, {"us", 1}}, vvEqual},
		{versionVector{{"eu", 4}, {"us", 1}}, vvBefore},
		{versionVector{{"eu", 3}}, vvAfter},
		{versionVector{{"eu", 2}, {"us", 2}}, vvConcurrent},
		{versionVector{{"ap", 1}, {"eu", 3}, {"us", 1}}, vvBefore},
		{versionVector{{"ap", 1}}, vvConcurrent},
	} {
		if got := a.compare(c.b); got != c.want {
			t.Errorf("%v vs %v: %v, want %v", a, c.b, got, c.want)
		}
	}
	m := a.merged(versionVector{{"ap", 1}, {"eu", 2}, {"us", 5}})
	if !slices.Equal(m, versionVector{{"ap", 1}, {"eu", 3}, {"us", 5}}) {
		t.Fatalf("merged: %v", m)
	}
}

// mapsEqual compares two regions' keys, less their conflict logs: each
// region logs the conflicts it resolved itself.
func mapsEqual(a, b mapState) bool {
	return maps.EqualFunc(shared(a), shared(b), bytes.Equal)
}

func shared(m mapState) mapState {
	out := mapState{}
	for k, v := range m {
		if !isConflictKey([]byte(k)) {
			out[k] = v
		}
	}
	return out
}

func dump(m mapState) string {
	keys := make([]string, 0, len(m))
	for k := range shared(m) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "  %q = %q\n", k, m[k])
	}
	return b.String()
}
