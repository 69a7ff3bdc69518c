package segment

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/btree"
)

func buildSegment(seq uint64, recs []record) []byte {
	b := appendHeader(nil, seq)
	for _, r := range recs {
		b = appendRecord(b, r.Del, r.Key, r.Value)
	}
	return appendTrailer(b, len(recs))
}

var sampleRecords = []record{
	{Key: []byte("a"), Value: []byte("1")},
	{Del: true, Key: []byte("b")},
	{Key: []byte{0, 0xff}, Value: nil},
	{Key: nil, Value: bytes.Repeat([]byte("v"), 300)},
}

func TestSegmentRoundTrip(t *testing.T) {
	b := buildSegment(42, sampleRecords)
	seq, recs, err := decodeSegment(b)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 42 || len(recs) != len(sampleRecords) {
		t.Fatalf("decoded seq %d with %d records, want 42 with %d", seq, len(recs), len(sampleRecords))
	}
	for i, r := range recs {
		w := sampleRecords[i]
		if r.Del != w.Del || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) {
			t.Fatalf("record %d = %+v, want %+v", i, r, w)
		}
		// Each record decodes on its own from its offset, as a range read sees it.
		one, err := decodeRecord(b[r.Off : r.Off+r.Len])
		if err != nil || !bytes.Equal(one.Key, w.Key) {
			t.Fatalf("record %d alone: %+v, %v", i, one, err)
		}
	}
}

// TestSegmentCorruption flips every bit of a segment and truncates it at
// every length: each damaged copy fails with ErrCorrupt.
func TestSegmentCorruption(t *testing.T) {
	good := buildSegment(7, sampleRecords)
	for i := range good {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if _, _, err := decodeSegment(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d of byte %d flipped: err = %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
	for n := range len(good) {
		if _, _, err := decodeSegment(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	idx := btree.NewG(4, lessEntry)
	for i := range 100 {
		idx.ReplaceOrInsert(entry{key: []byte{byte(i), 'k'}, seq: uint64(i%9 + 1), off: int64(16 + i), n: 13 + 2 + int64(i)})
	}
	b := encodeCheckpoint(9, idx)
	seq, ents, err := decodeCheckpoint(b)
	if err != nil || seq != 9 || len(ents) != 100 {
		t.Fatalf("decodeCheckpoint = %d, %d entries, %v", seq, len(ents), err)
	}
	i := 0
	idx.Ascend(func(e entry) bool {
		g := ents[i]
		if !bytes.Equal(g.key, e.key) || g.seq != e.seq || g.off != e.off || g.n != e.n {
			t.Fatalf("entry %d = %+v, want %+v", i, g, e)
		}
		i++
		return true
	})
	for n := range len(b) {
		if _, _, err := decodeCheckpoint(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("checkpoint truncated to %d bytes: err = %v, want ErrCorrupt", n, err)
		}
	}
}

// FuzzDecodeSegment: decoding arbitrary bytes never panics, and whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeSegment(f *testing.F) {
	f.Add(buildSegment(1, sampleRecords))
	f.Add(buildSegment(2, nil))
	f.Add(buildSegment(3, sampleRecords[:1]))
	f.Add([]byte("BSEG\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, recs, err := decodeSegment(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not classified as ErrCorrupt: %v", err)
			}
			return
		}
		if again := buildSegment(seq, recs); !bytes.Equal(again, b) {
			t.Fatalf("decoded segment re-encodes differently")
		}
		for _, r := range recs {
			if _, err := decodeRecord(b[r.Off : r.Off+r.Len]); err != nil {
				t.Fatalf("record at %d does not decode on its own: %v", r.Off, err)
			}
		}
	})
}

// FuzzDecodeCheckpoint: decoding arbitrary bytes never panics.
func FuzzDecodeCheckpoint(f *testing.F) {
	idx := btree.NewG(4, lessEntry)
	idx.ReplaceOrInsert(entry{key: []byte("k"), seq: 1, off: 16, n: 20})
	f.Add(encodeCheckpoint(1, idx))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, ents, err := decodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not classified as ErrCorrupt: %v", err)
			}
			return
		}
		idx := btree.NewG(4, lessEntry)
		for _, e := range ents {
			idx.ReplaceOrInsert(e)
		}
		if again := encodeCheckpoint(seq, idx); !bytes.Equal(again, b) {
			t.Fatalf("decoded checkpoint re-encodes differently")
		}
	})
}
