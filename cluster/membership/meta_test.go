package membership

import (
	"bytes"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{ID: "n1"},
		{ID: "n1", QUICAddr: "10.0.0.1:4433", HTTPAddr: "10.0.0.1:8080", Zone: "eu-west-1a", Region: "eu-west-1", Role: "core"},
		{ID: strings.Repeat("x", 255), Role: "é"},
	} {
		b, err := m.AppendEncode(nil)
		if err != nil {
			t.Fatalf("encode %+v: %v", m, err)
		}
		if len(b) != m.EncodedLen() {
			t.Fatalf("EncodedLen %d, encoding is %d bytes", m.EncodedLen(), len(b))
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("decode %+v: %v", m, err)
		}
		if got != m {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestMetaValidate(t *testing.T) {
	long := strings.Repeat("a", 256)
	for _, tc := range []struct {
		name string
		m    Meta
		want string // substring of the error; "" for valid
	}{
		{"ok", Meta{ID: "n1"}, ""},
		{"no id", Meta{}, "Meta.ID is required"},
		{"long field", Meta{ID: "n1", Zone: long}, "Meta.Zone is 256 bytes"},
		{"too big", Meta{ID: strings.Repeat("a", 200), QUICAddr: strings.Repeat("b", 200), HTTPAddr: strings.Repeat("c", 200)}, "at most 512"},
		{"bad utf8", Meta{ID: "n\xff"}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeMetaErrors(t *testing.T) {
	good, _ := Meta{ID: "n1", Zone: "z"}.AppendEncode(nil)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "meta is empty"},
		{"version", []byte{9}, "version 9 is not supported"},
		{"truncated", good[:3], "claims 2 bytes, 1 remain"},
		{"missing field", good[:4], "ends before field QUICAddr"},
		{"trailing", append(append([]byte{}, good...), 0), "1 trailing bytes"},
		{"too long", bytes.Repeat([]byte{1}, MetaMaxSize+1), "at most 512"},
		{"bad utf8", []byte{1, 1, 0xff, 0, 0, 0, 0, 0}, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMeta(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeMeta checks that no input panics or reads out of bounds, and
// that whatever decodes re-encodes to the same bytes (the encoding is
// canonical, so two nodes never disagree about one Meta).
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{{ID: "n1"}, {ID: "n1", QUICAddr: "[::1]:4433", HTTPAddr: "h:80", Zone: "z", Region: "r", Role: "edge"}} {
		b, _ := m.AppendEncode(nil)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		enc, err := m.AppendEncode(nil)
		if err != nil {
			t.Fatalf("decoded %+v but cannot re-encode: %v", m, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
	})
}

func TestBeaconRoundTripAndVerify(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 16)
	other := bytes.Repeat([]byte{8}, 16)
	for _, k := range [][]byte{nil, key} {
		b, err := encodeBeacon("brainy", "n1", "10.0.0.1:7946", k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBeacon(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Cluster != "brainy" || got.ID != "n1" || got.Addr != "10.0.0.1:7946" {
			t.Fatalf("decoded %+v", got)
		}
		if !got.verify(k) {
			t.Fatalf("beacon with key %x does not verify with the same key", k)
		}
		if k == nil && got.verify(key) {
			t.Fatal("untagged beacon accepted by a node with a key")
		}
		if k != nil && (got.verify(other) || got.verify(nil)) {
			t.Fatal("tagged beacon accepted with a different key or none")
		}
		// A flipped byte anywhere in a tagged beacon breaks the tag.
		if k != nil {
			b[len(b)-20] ^= 1
			if got, err := decodeBeacon(b); err == nil && got.verify(k) {
				t.Fatal("tampered beacon verified")
			}
		}
	}
}

// TestBeaconMagicCannotStartGossip pins the reason the magic is safe:
// memberlist's packets start with a message type (0..13), an encryption
// version (0, 1) or the label marker (244).
func TestBeaconMagicCannotStartGossip(t *testing.T) {
	if b := beaconMagic[0]; b <= 13 || b == 244 {
		t.Fatalf("beacon magic byte %d can start a memberlist packet", b)
	}
}

func FuzzDecodeBeacon(f *testing.F) {
	b, _ := encodeBeacon("brainy", "n1", "10.0.0.1:7946", nil)
	f.Add(b)
	b, _ = encodeBeacon("c", "n2", "[::1]:1", bytes.Repeat([]byte{1}, 32))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		bc, err := decodeBeacon(b)
		if err != nil {
			return
		}
		var key []byte
		if bc.Tagged {
			key = []byte("k")
		}
		enc, err := encodeBeacon(bc.Cluster, bc.ID, bc.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, b)
		}
		_ = bc.verify(key)
	})
}
