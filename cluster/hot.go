package cluster

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// hotness estimates how often each item is read at this node, to tell the
// hot ones (leases.go) from the rest without a counter per item: a
// count-min sketch (Cormode & Muthukrishnan, 2005) of hotDepth rows of
// hotWidth counters, one per window, the current and the previous added
// together. An estimate never falls short of the true count and exceeds it
// by at most reads×e/hotWidth with high probability, so with hotWidth well
// above the 1/share items that can be hot, the cold ones are not mistaken
// for hot. Counters are atomics: every read counts without a lock.
type hotness struct {
	mu   sync.Mutex // guards rotation
	cur  atomic.Pointer[sketch]
	prev atomic.Pointer[sketch]
}

const (
	hotDepth = 4
	hotWidth = 1 << 14
	// hotMinReads is the fewest reads in the two windows that make any
	// item hot.
	hotMinReads = 100
)

type sketch struct {
	rows  [hotDepth][hotWidth]atomic.Uint32
	total atomic.Uint64
}

func newHotness() *hotness {
	h := &hotness{}
	h.cur.Store(&sketch{})
	h.prev.Store(&sketch{})
	return h
}

// cells returns key's counter in each row: one hash, split (Kirsch and
// Mitzenmacher's double hashing).
func cells(key string) [hotDepth]uint32 {
	sum := xxhash.Sum64String(key)
	a, b := uint32(sum), uint32(sum>>32)|1
	var out [hotDepth]uint32
	for i := range out {
		out[i] = (a + uint32(i)*b) % hotWidth
	}
	return out
}

// count records one read of key and reports whether key takes at least
// share of the reads of this window and the last.
func (h *hotness) count(key string, share float64) bool {
	c := cells(key)
	cur, prev := h.cur.Load(), h.prev.Load()
	total := cur.total.Add(1) + prev.total.Load()
	est := uint32(1 << 31)
	for i, j := range c {
		n := cur.rows[i][j].Add(1) + prev.rows[i][j].Load()
		est = min(est, n)
	}
	// A handful of reads make nothing hot: the share of a quiet window
	// means little.
	return total >= hotMinReads && float64(est) >= share*float64(total)
}

// rotate starts a new window: the current becomes the previous.
func (h *hotness) rotate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prev.Store(h.cur.Load())
	h.cur.Store(&sketch{})
}
