package itemrpc

import (
	"testing"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
)

// FuzzDecodeListPartitions: any bytes a peer sends decode to a request
// naming only existing partitions, or to an error; never a panic.
func FuzzDecodeListPartitions(f *testing.F) {
	f.Add(appendListPartitions(&wire.Request{Tenant: "acme", List: item.ListOptions{Limit: 10}}, []int{0, 3, 63}), 64)
	f.Add([]byte{}, 64)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 64)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		max = max%1024 + 1
		if max < 1 {
			max = -max + 1
		}
		r, parts, err := decodeListPartitions(b, max)
		if err != nil {
			return
		}
		if r == nil || len(parts) > max {
			t.Fatalf("decoded %d partitions of %d", len(parts), max)
		}
		for _, p := range parts {
			if p < 0 || p >= max {
				t.Fatalf("partition %d of %d", p, max)
			}
		}
		// What decodes re-encodes to the same partitions.
		r2, parts2, err := decodeListPartitions(appendListPartitions(r, parts), max)
		if err != nil || r2.Tenant != r.Tenant || len(parts2) != len(parts) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
