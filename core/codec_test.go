package core

import (
	"bytes"
	"math"
	"testing"

	"github.com/soullabs/brainy/internal/item"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []Command{
		{Op: OpCreate, Now: 1, Tenant: "t", ID: "id", Type: "person", Data: []byte(`{"a":1}`), Metadata: []byte(`{}`), Vector: []float32{1, -2.5}},
		{Op: OpPut, Now: -5, Tenant: "t", ID: "ü", Cond: item.Cond{IfMatch: "7", IfNoneMatch: true}},
		{Op: OpPatch, Tenant: "t", ID: "x", HasType: true, HasVector: true, Data: []byte(`null`)},
		{Op: OpDelete, Tenant: "t", ID: "x", Cond: item.Cond{IfMatch: "*"}, Origin: "eu-west", Federated: true},
		{Op: OpReplicate, Origin: "us-east", Source: "eu-west", From: 3, To: 9, Resync: true,
			Values: []RemoteValue{{Tenant: "t", ID: "a", Record: []byte{2, 1}}, {Tenant: "t", ID: "b", Deleted: true}}},
		{Op: OpCollect, Origin: "us-east", Federated: true, To: 77, Values: []RemoteValue{{Tenant: "t", ID: "a", Deleted: true}}},
	} {
		enc := c.AppendEncode(nil)
		got, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !bytes.Equal(got.AppendEncode(nil), enc) || got.ID != c.ID || got.Cond != c.Cond || got.HasType != c.HasType ||
			got.Origin != c.Origin || got.Federated != c.Federated || got.Source != c.Source || got.To != c.To ||
			got.Resync != c.Resync || len(got.Values) != len(c.Values) {
			t.Fatalf("round trip: %+v became %+v", c, got)
		}
	}
}

// FuzzDecodeCommand: arbitrary bytes never panic the decoder, and whatever
// decodes re-encodes to the same bytes (the encoding is canonical, which
// replicas rely on when they compare log entries).
func FuzzDecodeCommand(f *testing.F) {
	f.Add((&Command{Op: OpPut, Tenant: "t", ID: "i", Data: []byte("1"), Vector: []float32{1}}).AppendEncode(nil))
	f.Add([]byte{1, 9, 0})
	f.Add((&Command{Op: OpReplicate, Source: "r", To: 2, Values: []RemoteValue{{Tenant: "t", ID: "i", Record: []byte{2}}}}).AppendEncode(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		// Format 1 (old log entries) re-encodes as the current format.
		if enc := c.AppendEncode(nil); !bytes.Equal(enc, b) && !nonCanonicalVarint(b) {
			t.Fatalf("decode(%x) re-encodes to %x", b, enc)
		}
	})
}

// nonCanonicalVarint reports inputs whose varints carry redundant bytes:
// they decode to the same values but cannot round-trip byte for byte.
func nonCanonicalVarint(b []byte) bool {
	c, err := DecodeCommand(b)
	if err != nil {
		return false
	}
	return len(c.AppendEncode(nil)) != len(b) || b[0] != commandFormat
}

// FuzzDecodeRecord: stored records never panic the decoder, whatever the
// disk hands back.
func FuzzDecodeRecord(f *testing.F) {
	r := record{hlc: 3, created: 1, updated: 2, typ: "t", data: []byte(`{"a":1}`), vector: []float32{float32(math.Pi)}}
	f.Add(r.append(nil))
	r.origin, r.vv = "eu", versionVector{{"eu", 3}, {"us", 2}}
	f.Add(r.append(nil))
	f.Add([]byte{1, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r record
		if err := r.decode(b); err != nil {
			return
		}
		var back record
		if err := back.decode(r.append(nil)); err != nil || back.hlc != r.hlc || back.typ != r.typ ||
			back.origin != r.origin || back.clock().compare(r.clock()) != vvEqual ||
			!bytes.Equal(back.data, r.data) || len(back.vector) != len(r.vector) {
			t.Fatalf("record round trip: %+v -> %+v (%v)", r, back, err)
		}
	})
}
