package backend_test

import (
	"context"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/backend"
)

// TestS3UnsyncedWritesWaitForASyncedOne: on an object store opened as a
// node opens it, unsynced writes (a raft node's applied state) cost no
// object Put of their own while synced writes (its log) keep coming: the
// next synced Apply carries them in its one Put, and they are stored.
func TestS3UnsyncedWritesWaitForASyncedOne(t *testing.T) {
	ctx := context.Background()
	setting := s3Setting(t)
	st, spec := openSetting(t, setting, backend.Options{NodeID: "unsynced"})
	puts := func() int64 { p, _ := requests(st); return p }
	for i, key := range []string{"applied-1", "applied-2", "applied-3"} {
		before := puts()
		var b tiers.Batch
		b.Set([]byte(key), []byte("state"))
		if err := st.Apply(ctx, &b, false); err != nil {
			t.Fatal(err)
		}
		// Longer than writes of a lightly loaded node are apart, and than the
		// 100 ms after which unsynced writes used to be flushed alone.
		time.Sleep(300 * time.Millisecond)
		if got := puts() - before; got != 0 {
			t.Fatalf("write %d: an unsynced Apply made %d object Puts on its own", i, got)
		}
		b.Reset()
		b.Set([]byte("log"), []byte{byte(i)})
		if err := st.Apply(ctx, &b, true); err != nil {
			t.Fatal(err)
		}
		if got := puts() - before; got != 1 {
			t.Fatalf("write %d: an unsynced and a synced Apply made %d object Puts, want 1", i, got)
		}
	}
	closeStore(t, st)

	st = openSpec(t, spec, backend.Options{NodeID: "unsynced"})
	for _, key := range []string{"applied-1", "applied-2", "applied-3", "log"} {
		if _, err := st.Get(ctx, []byte(key)); err != nil {
			t.Fatalf("%s after reopening: %v", key, err)
		}
	}
}
