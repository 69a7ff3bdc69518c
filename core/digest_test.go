package core

import (
	"fmt"
	"testing"
)

// TestDigestFolds: a fine digest folded to a coarser resolution equals the
// digest computed at that resolution, and one changed value changes one
// range at every resolution.
func TestDigestFolds(t *testing.T) {
	digest := func(vals []RemoteValue, b int) []uint64 {
		d := make([]uint64, 1<<b)
		for i := range vals {
			d[DigestBucket(vals[i].Tenant, vals[i].ID, b)] ^= valueHash(&vals[i])
		}
		return d
	}
	var vals []RemoteValue
	for i := range 5000 {
		vals = append(vals, RemoteValue{Tenant: "t", ID: fmt.Sprint("id", i), Record: fmt.Appendf(nil, "r%d", i)})
	}
	fine := digest(vals, MaxDigestBits)
	for b := MinDigestBits; b <= MaxDigestBits; b++ {
		coarse, folded := digest(vals, b), FoldDigest(fine, b)
		for i := range coarse {
			if coarse[i] != folded[i] {
				t.Fatalf("%d bits: range %d folds to %x, is %x", b, i, folded[i], coarse[i])
			}
		}
	}
	changed := append([]RemoteValue(nil), vals...)
	changed[42].Record = []byte("newer")
	a, c := digest(vals, 12), digest(changed, 12)
	differ := 0
	for i := range a {
		if a[i] != c[i] {
			differ++
		}
	}
	if differ != 1 {
		t.Fatalf("one changed value changed %d ranges", differ)
	}
	if DigestBits(0) != MinDigestBits || DigestBits(125000) != 14 || DigestBits(1<<30) != MaxDigestBits {
		t.Fatalf("resolutions: %d, %d, %d", DigestBits(0), DigestBits(125000), DigestBits(1<<30))
	}
}
