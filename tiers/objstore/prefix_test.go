package objstore_test

import (
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// TestWithPrefix runs the conformance suite on a prefixed view, and checks
// that the view's keys land under the prefix of the store below.
func TestWithPrefix(t *testing.T) {
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store { return objstore.WithPrefix(objstore.NewMemory(), "node-1/") },
	})
	below := objstore.NewMemory()
	v := objstore.WithPrefix(below, "node-1/")
	if _, err := v.Put(t.Context(), "seg/1", []byte("x"), objstore.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := below.Get(t.Context(), "node-1/seg/1"); err != nil {
		t.Fatalf("the view's key is not under its prefix below: %v", err)
	}
}
