package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/transport"
)

// TestSnapshotChunksByBytes: a partition's pairs leave in chunks of at most
// snapshotChunk bytes, or of one pair when that pair alone is larger (a
// record of the largest item, which still fits a frame), each pair once
// and in order.
func TestSnapshotChunksByBytes(t *testing.T) {
	store := memory.New()
	defer store.Close()
	sizes := []int{10, 300 << 10, 300 << 10, 300 << 10, 300 << 10, item.MaxItemBytes + 100, item.MaxItemBytes + 100, 20, 900 << 10, 200 << 10, 5}
	var b tiers.Batch
	for i, n := range sizes {
		b.Set(fmt.Appendf(nil, "p%03d", i), make([]byte, n))
	}
	if err := store.Apply(context.Background(), &b, true); err != nil {
		t.Fatal(err)
	}
	it, err := store.NewIter(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshotSession{it: it}
	defer it.Close()
	var got []int
	for done := false; !done; {
		var out []byte
		out, done = s.fill(make([]byte, 9)) // the header: session and done
		d := codec.Decoder{B: out[9:], Fail: errMalformedSnapshot}
		var pairs []int
		for len(d.B) > 0 {
			k, v := d.Bytes(), d.Bytes()
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			if want := fmt.Sprintf("p%03d", len(got)+len(pairs)); string(k) != want {
				t.Fatalf("pair %s, want %s", k, want)
			}
			pairs = append(pairs, len(v))
		}
		if len(out) > snapshotChunk && len(pairs) != 1 {
			t.Errorf("a chunk of %d pairs %v takes %d bytes, over %d", len(pairs), pairs, len(out), snapshotChunk)
		}
		if len(out) > transport.DefaultMaxFrameBytes {
			t.Errorf("a chunk of %d bytes does not fit a frame", len(out))
		}
		if len(pairs) == 0 && !done {
			t.Fatal("an empty chunk before the end")
		}
		got = append(got, pairs...)
	}
	if len(got) != len(sizes) {
		t.Fatalf("%d pairs sent, want %d", len(got), len(sizes))
	}
}
