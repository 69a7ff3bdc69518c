package itemrpc

import (
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
)

// FuzzDecodeListPartitions: any bytes a peer sends decode to a request
// naming only existing partitions, or to an error; never a panic.
func FuzzDecodeListPartitions(f *testing.F) {
	f.Add(appendListPartitions(&wire.Request{Tenant: "acme", List: item.ListOptions{Limit: 10}}, []int{0, 3, 63}), 64)
	f.Add([]byte{}, 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 64)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		max = max%1024 + 1
		if max < 1 {
			max = -max + 1
		}
		r, parts, err := decodeListPartitions(b, max)
		if err != nil {
			return
		}
		if r == nil || len(parts) > max {
			t.Fatalf("decoded %d partitions of %d", len(parts), max)
		}
		for _, p := range parts {
			if p < 0 || p >= max {
				t.Fatalf("partition %d of %d", p, max)
			}
		}
		// What decodes re-encodes to the same partitions.
		r2, parts2, err := decodeListPartitions(appendListPartitions(r, parts), max)
		if err != nil || r2.Tenant != r.Tenant || len(parts2) != len(parts) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzDecodeConflicts: any bytes decode to a conflict log request naming
// only existing partitions and a bounded limit, or to an error; an answer
// decodes to a bounded page or an error; never a panic.
func FuzzDecodeConflicts(f *testing.F) {
	pos := item.ConflictPosition{At: 1 << 60, Partition: 3, Seq: 7}
	cur := item.ConflictCursor{Since: 5, Seqs: map[int]uint64{3: 7, 60: 1}}.Encode()
	f.Add(appendConflictsRequest(nil, "acme", cur, 10, true, []int{0, 3, 63}), 64)
	page := &item.ConflictPage{Cursor: "c", Conflicts: []*item.Conflict{{ID: "a", Winner: "v2", Position: pos,
		Loser: &item.Item{ID: "a", Data: []byte(`{"x":1}`), Version: "v1"}}}}
	f.Add(appendConflictPage(nil, page), 64)
	f.Add([]byte{}, 64)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		max = max%1024 + 1
		if max < 1 {
			max = -max + 1
		}
		if p, err := decodeConflictPage(b); err == nil {
			if len(p.Conflicts) > item.MaxListLimit {
				t.Fatalf("a page of %d conflicts", len(p.Conflicts))
			}
			for _, c := range p.Conflicts {
				if c.Loser == nil {
					t.Fatal("a conflict without its loser")
				}
			}
		}
		tenant, opts, parts, stale, err := decodeConflictsRequest(b, max)
		if err != nil {
			return
		}
		if len(parts) > max || opts.Limit > item.MaxListLimit {
			t.Fatalf("decoded %d partitions of %d, limit %d", len(parts), max, opts.Limit)
		}
		for _, p := range parts {
			if p < 0 || p >= max {
				t.Fatalf("partition %d of %d", p, max)
			}
		}
		if _, err := opts.Start(); err != nil {
			t.Fatalf("the decoded start does not read back: %v", err)
		}
		_, opts2, parts2, stale2, err := decodeConflictsRequest(appendConflictsRequest(nil, tenant, opts.Cursor, opts.Limit, stale, parts), max)
		if err != nil || opts2 != opts || stale2 != stale || len(parts2) != len(parts) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
