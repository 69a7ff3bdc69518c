package objstore_test

import (
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// TestDirConformance runs the object-store conformance suite on a local
// directory, the same suite the S3, Azure and GCS adapters pass.
func TestDirConformance(t *testing.T) {
	objstoretest.Run(t, objstoretest.Harness{
		New: func(t *testing.T) objstore.Store {
			d, err := objstore.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		LargeSize: 2 << 20,
	})
}
