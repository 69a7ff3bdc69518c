// Package shrink gives back the memory of maps that were once large.
//
// A Go map never returns the buckets it grew: delete empties a slot but
// keeps it. A map keyed by something that comes and goes — gossip
// members, connections — therefore holds, for the life of the process,
// the memory of the most it ever held. A node that saw ten thousand
// members join and leave once would keep their tables' size forever.
// Map copies such a map into one of its present size once it has fallen
// well below the size it reached.
package shrink

// minPeak is the size below which a map is never copied: small maps cost
// little, and copying them would only churn.
const minPeak = 64

// Map returns m, or a copy of it sized to its entries when it holds a
// quarter or less of the most it held since the last copy. *peak records
// that most; callers keep it beside the map and call Map after deleting.
// The copy costs O(len(m)) once per fall to a quarter, so amortised over
// the deletions that made it, O(1) each.
func Map[M ~map[K]V, K comparable, V any](m M, peak *int) M {
	n := len(m)
	if n > *peak {
		*peak = n
	}
	if *peak < minPeak || n > *peak/4 {
		return m
	}
	out := make(M, n)
	for k, v := range m {
		out[k] = v
	}
	*peak = n
	return out
}
