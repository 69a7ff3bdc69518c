package tierstest_test

import (
	"testing"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/tierstest"
)

func TestMemory(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store { return memory.New() })
}

func openDisk(t *testing.T, dir string) tiers.Store {
	s, err := disk.Open(disk.Config{Dir: dir, CacheBytes: 1 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDisk(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store { return openDisk(t, t.TempDir()) })
}

func TestDiskReopen(t *testing.T) {
	tierstest.Reopen(t, openDisk)
}
