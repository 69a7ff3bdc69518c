package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/core"
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

// TestSnapshotPaced: a node sends snapshot chunks no faster than
// SnapshotBytesPerSecond. At 1 byte/s the burst (a frame's worth) leaves
// at once; the chunk past it would wait far longer than its caller's
// deadline, and fails the call instead of leaving.
func TestSnapshotPaced(t *testing.T) {
	c := newTestCluster(t)
	c.snapshotBytesPerSecond = 1
	m := c.start("a")
	c.waitPlacement(1)
	const part = 0
	value := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	for i, n := 0, 0; n < 6; i++ {
		id := fmt.Sprint("big-", i)
		if core.PartitionOf("t", id, m.node.core.Partitions()) != part {
			continue
		}
		if _, _, err := m.node.Put(context.Background(), "t", &item.Item{ID: id, Data: value}, item.Cond{}); err != nil {
			t.Fatal(err)
		}
		n++
	}
	var session uint64
	sent := 0
	for {
		req := binary.BigEndian.AppendUint64(nil, session)
		req = binary.AppendUvarint(req, part)
		req = binary.AppendUvarint(req, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := m.node.handleSnapshot(ctx, nil, req)
		cancel()
		if err != nil {
			t.Logf("paced after %d bytes: %v", sent, err)
			break
		}
		sent += len(out)
		if out[8] == 1 {
			t.Fatalf("the whole partition (%d bytes) left at once, past a 1 byte/s budget", sent)
		}
		if sent > transport.DefaultMaxFrameBytes {
			t.Fatalf("%d bytes sent at 1 byte/s, past the burst of %d", sent, transport.DefaultMaxFrameBytes)
		}
		session = binary.BigEndian.Uint64(out)
	}
	if sent == 0 {
		t.Fatal("not even the burst was sent")
	}
}
