package core

import (
	"fmt"
	"testing"

	"github.com/soullabs/brainy/internal/item"
)

// TestConflictPagingMissesNone: paging a log whose entries' times are out
// of order — within a partition (a new leader's slower clock) and across
// partitions — and that grows between pages with an entry timed before
// the pages already read, returns every entry exactly once.
func TestConflictPagingMissesNone(t *testing.T) {
	logs := map[int][]item.ConflictPosition{}
	add := func(part int, at int64) {
		logs[part] = append(logs[part], item.ConflictPosition{At: at, Partition: part, Seq: uint64(len(logs[part]) + 1)})
	}
	for i, at := range []int64{50, 10, 70, 20, 90, 30} {
		add(i%3, at)
	}
	add(0, 5) // out of order within partition 0
	// page reads like Node.Conflicts: each partition's entries past the
	// cursor, in log order, merged.
	page := func(opts item.ConflictOptions) *item.ConflictPage {
		start, err := opts.Start()
		if err != nil {
			t.Fatal(err)
		}
		var lists [][]*item.Conflict
		for p := range 3 {
			var l []*item.Conflict
			for _, pos := range logs[p] {
				if start.After(pos) {
					l = append(l, &item.Conflict{Position: pos})
				}
			}
			lists = append(lists, l)
		}
		taken, more := MergeConflicts(lists, opts.Limit)
		pg := &item.ConflictPage{Conflicts: taken}
		ConflictCursors(pg, start, more)
		return pg
	}
	seen := map[string]int{}
	note := func(pg *item.ConflictPage) {
		for _, c := range pg.Conflicts {
			seen[fmt.Sprint(c.Position.Partition, "/", c.Position.Seq)]++
		}
	}
	pg := page(item.ConflictOptions{Limit: 2})
	note(pg)
	add(1, 1) // logged now, timed before everything read
	for pg.Cursor != "" {
		pg = page(item.ConflictOptions{Limit: 2, Cursor: pg.Cursor})
		note(pg)
	}
	add(2, 2) // after the last page: read from its resume
	note(page(item.ConflictOptions{Limit: 10, Cursor: pg.Resume}))
	total := 0
	for p, l := range logs {
		for _, pos := range l {
			total++
			if n := seen[fmt.Sprint(p, "/", pos.Seq)]; n != 1 {
				t.Errorf("entry %d/%d (at %d) read %d times", p, pos.Seq, pos.At, n)
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("read %d entries of %d", len(seen), total)
	}
}

// TestConflictCursorRoundTrip: a cursor decodes to what was encoded, and
// a Since applies only to partitions nothing was read from.
func TestConflictCursorRoundTrip(t *testing.T) {
	c := item.ConflictCursor{Since: 100, Seqs: map[int]uint64{0: 3, 63: 1 << 40}}
	d, err := item.DecodeConflictCursor(c.Encode())
	if err != nil || d.Since != 100 || len(d.Seqs) != 2 || d.Seqs[63] != 1<<40 {
		t.Fatalf("%+v, %v", d, err)
	}
	if !d.After(item.ConflictPosition{At: 1, Partition: 0, Seq: 4}) || d.After(item.ConflictPosition{At: 1000, Partition: 0, Seq: 3}) {
		t.Fatal("a read partition's entries are not ordered by number")
	}
	if d.After(item.ConflictPosition{At: 100, Partition: 5, Seq: 1}) || !d.After(item.ConflictPosition{At: 101, Partition: 5, Seq: 1}) {
		t.Fatal("an unread partition's entries are not filtered by since")
	}
	for _, bad := range []string{"", "AAAA", "!!", c.Encode() + "A"} {
		if _, err := item.DecodeConflictCursor(bad); err == nil && bad != "" {
			t.Errorf("%q decoded", bad)
		}
	}
}
