package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/soullabs/brainy/internal/item"
)

var fuzzSeeds = []string{
	`{"type":"person","data":{"name":"John"}}`,
	`{"id":"a","type":"t","data":[1,"x",null],"metadata":{"k":{"n":1}},"vector":[0.5,-1,3e-2]}`,
	`{"id":"\u00e9","data":null,"metadata":null,"vector":null}`,
	`{"tenant":"x","createdAt":"y","version":"z"}`,
	`{"data":`, `[]`, `{"vector":[1e40]}`, `{"a":1,"a":2}`, "{\"data\":\"\xff\"}",
}

// FuzzDecodeItem: any body either decodes or fails with an *item.InvalidError
// (never a panic, never another error), and a decoded item re-encodes to a
// body that decodes to the same item.
func FuzzDecodeItem(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	lim := item.DefaultLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		it, err := DecodeItem(body, &lim)
		if err != nil {
			var inv *item.InvalidError
			if !errors.As(err, &inv) || inv.Code == "" {
				t.Fatalf("DecodeItem(%q): error %v is not an *item.InvalidError with a code", body, err)
			}
			return
		}
		if it.Data != nil && !json.Valid(it.Data) || it.Metadata != nil && !json.Valid(it.Metadata) {
			t.Fatalf("DecodeItem(%q) kept invalid JSON: %+v", body, it)
		}
		if len(it.Vector) > lim.MaxVectorDims {
			t.Fatalf("vector of %d dims passed", len(it.Vector))
		}
		enc := appendItem(nil, it)
		back, err := DecodeItem(enc, &lim)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if back.ID != it.ID || back.Type != it.Type || !sameJSON(back.Data, it.Data) ||
			len(back.Vector) != len(it.Vector) {
			t.Fatalf("round trip changed the item:\n%+v\n%+v", it, back)
		}
		for i := range it.Vector {
			if back.Vector[i] != it.Vector[i] {
				t.Fatalf("vector[%d]: %v became %v", i, it.Vector[i], back.Vector[i])
			}
		}
	})
}

// sameJSON compares two compact values, treating absent and null alike.
func sameJSON(a, b []byte) bool {
	norm := func(x []byte) []byte {
		if len(x) == 0 {
			return []byte("null")
		}
		return x
	}
	return bytes.Equal(norm(a), norm(b))
}

// FuzzDecodePatch: like FuzzDecodeItem, for PATCH bodies.
func FuzzDecodePatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	lim := item.DefaultLimits()
	f.Fuzz(func(t *testing.T, body []byte) {
		_, p, err := DecodePatch(body, &lim)
		if err != nil {
			var inv *item.InvalidError
			if !errors.As(err, &inv) || inv.Code == "" {
				t.Fatalf("DecodePatch(%q): error %v is not an *item.InvalidError with a code", body, err)
			}
			return
		}
		if p.Data != nil && !json.Valid(p.Data) || p.Metadata != nil && !json.Valid(p.Metadata) {
			t.Fatalf("DecodePatch(%q) kept invalid JSON", body)
		}
	})
}

func TestDecodeItemReadOnlyFieldsIgnored(t *testing.T) {
	lim := item.DefaultLimits()
	it, err := DecodeItem([]byte(`{"id":"x","tenant":"evil","version":"9","createdAt":"2000-01-01T00:00:00Z","data":1}`), &lim)
	if err != nil {
		t.Fatal(err)
	}
	if it.Tenant != "" || it.Version != "" || !it.CreatedAt.IsZero() || string(it.Data) != "1" {
		t.Fatalf("read-only fields leaked into the decoded item: %+v", it)
	}
}
