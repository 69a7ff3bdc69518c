package tiered_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/tiered"
)

// A node's store: local disk over an object store (a memory store stands
// in for it here). Only item records may leave the disk.
func Example() {
	dir, err := os.MkdirTemp("", "tiered-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	hot, err := disk.Open(disk.Config{Dir: filepath.Join(dir, "hot")})
	if err != nil {
		panic(err)
	}
	s, err := tiered.Open(tiered.Config{
		Hot:             hot,
		Warm:            memory.New(),
		HotDir:          filepath.Join(dir, "hot"),
		HotMinFreeBytes: 1 << 30,
		Demotable:       func(k []byte) bool { return len(k) > 3 && k[0] == 'p' && k[3] == 'i' },
	})
	if err != nil {
		panic(err)
	}
	defer s.Close() // closes hot and warm too

	ctx := context.Background()
	var b tiers.Batch
	b.Set([]byte("p\x00\x01iacme\x00item-1"), []byte(`{"id":"item-1"}`))
	if err := s.Apply(ctx, &b, true); err != nil {
		panic(err)
	}
	v, err := s.Get(ctx, []byte("p\x00\x01iacme\x00item-1"))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(v))
	for _, t := range s.TierStats() {
		fmt.Println(t.Name, t.Backend)
	}
	// Output:
	// {"id":"item-1"}
	// hot disk
	// warm memory
}
