package federation

import (
	"bytes"
	"slices"
	"testing"

	"github.com/soullabs/brainy/core"
)

// FuzzDecodeSync: whatever a peer sends, decoding a sync request, answer
// or stored state never panics, decoded requests stay within their bounds,
// and what decodes re-encodes to the same values.
func FuzzDecodeSync(f *testing.F) {
	values := []core.RemoteValue{{Tenant: "t", ID: "i", Record: []byte{2, 1}}, {Tenant: "t", ID: "j", Deleted: true, Record: []byte{2, 2}}}
	page := syncPageReq{need: 7, cursor: []byte("it\x00x"), maxItems: 10, maxBytes: 1000}
	changes := syncChangesReq{from: 9, maxBytes: 100, waitMs: 1000}
	f.Add(page.append(nil))
	f.Add(changes.append(nil))
	f.Add(appendPageAnswer(nil, 5, []byte("it\x00z"), values))
	f.Add(appendChangesAnswer(nil, false, 12, 14, values))
	f.Add(appendSyncInfo(nil, []string{"", "127.0.0.1:7071"}))
	f.Add((&syncState{phase: phaseCopying, start: 3, cursor: []byte("dt\x00a"), copied: 8}).encode())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeSyncPageReq(b); err == nil {
			if r.maxItems < 1 || r.maxItems > maxSyncPageItems || r.maxBytes < 1 || r.maxBytes > maxSyncBytes || len(r.cursor) > core.MaxSyncCursor {
				t.Fatalf("page request out of bounds: %+v", r)
			}
		}
		if r, err := decodeSyncChangesReq(b); err == nil {
			if r.maxBytes < 1 || r.maxBytes > maxSyncBytes || r.waitMs < 0 || r.waitMs > maxSyncWait {
				t.Fatalf("changes request out of bounds: %+v", r)
			}
		}
		if a, err := decodePageAnswer(b); err == nil {
			back, err := decodePageAnswer(appendPageAnswer(nil, a.committed, a.next, a.values))
			if err != nil || back.committed != a.committed || !bytes.Equal(back.next, a.next) || !sameValues(back.values, a.values) {
				t.Fatalf("page answer %x does not round-trip: %+v, %v", b, back, err)
			}
		}
		if a, err := decodeChangesAnswer(b); err == nil {
			back, err := decodeChangesAnswer(appendChangesAnswer(nil, a.compacted, a.to, a.committed, a.values))
			if err != nil || back.compacted != a.compacted || back.to != a.to || !sameValues(back.values, a.values) {
				t.Fatalf("changes answer %x does not round-trip: %+v, %v", b, back, err)
			}
		}
		if in, err := decodeSyncInfo(b); err == nil {
			if in.partitions != len(in.leaders) || in.partitions < 1 {
				t.Fatalf("info of %d partitions with %d leaders", in.partitions, len(in.leaders))
			}
		}
		if st, err := decodeSyncState(b); err == nil {
			if back, err := decodeSyncState(st.encode()); err != nil || back.phase != st.phase || back.pos != st.pos ||
				back.start != st.start || back.copied != st.copied || !bytes.Equal(back.cursor, st.cursor) {
				t.Fatalf("state %x does not round-trip: %+v, %v", b, back, err)
			}
		}
	})
}

func sameValues(a, b []core.RemoteValue) bool {
	return slices.EqualFunc(a, b, func(x, y core.RemoteValue) bool {
		return x.Tenant == y.Tenant && x.ID == y.ID && x.Deleted == y.Deleted && bytes.Equal(x.Record, y.Record)
	})
}

// TestSyncRequestBounds: a request asking for more than the bounds gets
// the bounds, and one asking for nothing gets at least one value.
func TestSyncRequestBounds(t *testing.T) {
	big := syncPageReq{maxItems: 1 << 30, maxBytes: 1 << 40}
	r, err := decodeSyncPageReq(big.append(nil))
	if err != nil || r.maxItems != maxSyncPageItems || r.maxBytes != maxSyncBytes {
		t.Fatalf("%+v, %v", r, err)
	}
	r, err = decodeSyncPageReq((&syncPageReq{}).append(nil))
	if err != nil || r.maxItems != 1 || r.maxBytes != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	c, err := decodeSyncChangesReq((&syncChangesReq{maxBytes: 1 << 40, waitMs: 1 << 40}).append(nil))
	if err != nil || c.maxBytes != maxSyncBytes || c.waitMs != maxSyncWait {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := decodeSyncPageReq((&syncPageReq{cursor: make([]byte, core.MaxSyncCursor+1)}).append(nil)); err == nil {
		t.Fatal("a cursor past the bound decoded")
	}
}
