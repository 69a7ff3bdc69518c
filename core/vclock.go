package core

import (
	"slices"
	"strings"
)

// MaxRegions bounds the regions a version vector names, hence the regions
// of a federation: a record from a peer naming more is refused as corrupt.
const MaxRegions = 64

// A versionVector records, per region, the hybrid-clock time of that
// region's latest write an item's value includes. Entries are sorted by
// region, at most one per region. Per item and region the times only grow
// (apply makes every write's time exceed the item's), so comparing two
// vectors tells whether one value already includes the other's writes —
// then it simply replaces it — or neither does: a conflict (see
// mergeRemote).
type versionVector []vvEntry

type vvEntry struct {
	region string
	hlc    uint64
}

// implicit reports whether v says no more than {origin: hlc}, which a
// record stores as an empty vector.
func (v versionVector) implicit(origin string, hlc uint64) bool {
	return len(v) == 0 || (len(v) == 1 && v[0].region == origin && v[0].hlc == hlc)
}

// get returns region's time in v, 0 when absent.
func (v versionVector) get(region string) uint64 {
	i, ok := slices.BinarySearchFunc(v, region, func(e vvEntry, r string) int { return strings.Compare(e.region, r) })
	if !ok {
		return 0
	}
	return v[i].hlc
}

// with returns a copy of v with region's time set to hlc.
func (v versionVector) with(region string, hlc uint64) versionVector {
	out := make(versionVector, 0, len(v)+1)
	i, ok := slices.BinarySearchFunc(v, region, func(e vvEntry, r string) int { return strings.Compare(e.region, r) })
	out = append(out, v[:i]...)
	out = append(out, vvEntry{region: region, hlc: hlc})
	if ok {
		i++
	}
	return append(out, v[i:]...)
}

// merged returns the entry-wise maximum of v and w.
func (v versionVector) merged(w versionVector) versionVector {
	out := make(versionVector, 0, max(len(v), len(w)))
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j == len(w) || (i < len(v) && v[i].region < w[j].region):
			out = append(out, v[i])
			i++
		case i == len(v) || w[j].region < v[i].region:
			out = append(out, w[j])
			j++
		default:
			out = append(out, vvEntry{region: v[i].region, hlc: max(v[i].hlc, w[j].hlc)})
			i++
			j++
		}
	}
	return out
}

// vvOrder is how two version vectors relate.
type vvOrder int

const (
	vvEqual      vvOrder = iota
	vvBefore             // every write of the first is in the second, which has more
	vvAfter              // the reverse
	vvConcurrent         // each has a write the other lacks: a conflict
)

// compare relates v to w.
func (v versionVector) compare(w versionVector) vvOrder {
	less, more := false, false
	i, j := 0, 0
	for i < len(v) || j < len(w) {
		switch {
		case j == len(w) || (i < len(v) && v[i].region < w[j].region):
			more = more || v[i].hlc > 0
			i++
		case i == len(v) || w[j].region < v[i].region:
			less = less || w[j].hlc > 0
			j++
		default:
			less = less || v[i].hlc < w[j].hlc
			more = more || v[i].hlc > w[j].hlc
			i++
			j++
		}
	}
	switch {
	case less && more:
		return vvConcurrent
	case less:
		return vvBefore
	case more:
		return vvAfter
	}
	return vvEqual
}

// wins reports whether the write (hlc, origin) beats (otherHLC, otherOrigin)
// in a conflict: the later clock time, and on a tie the greater region
// name. Every region decides the same.
func wins(hlc uint64, origin string, otherHLC uint64, otherOrigin string) bool {
	if hlc != otherHLC {
		return hlc > otherHLC
	}
	return origin > otherOrigin
}
