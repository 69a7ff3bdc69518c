package objstore_test

import (
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

func TestMemoryConformance(t *testing.T) {
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store {
			s := objstore.NewMemory()
			t.Cleanup(func() { s.Close() })
			return s
		},
		ListPageSize: 600, // Memory does not page; 1203 keys still exercise "more than a page" callers.
	})
}

func BenchmarkMemory(b *testing.B) {
	objstoretest.Bench(b, func(b *testing.B) objstore.Store { return objstore.NewMemory() })
}
