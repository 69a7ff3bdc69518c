package objstoretest

import (
	"context"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Cleanup registers with t the removal of every object s lists, then s.Close, for stores
// whose test data would otherwise outlive the test (a key prefix in a shared bucket).
// Both are best effort: the servers the tests use hold their data in temporary
// directories or in memory.
func Cleanup(t testing.TB, s objstore.Store) {
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		_ = s.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil })
		for _, k := range keys {
			_ = s.Delete(ctx, k)
		}
		s.Close()
	})
}
