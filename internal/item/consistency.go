package item

import "context"

type staleKey struct{}

// WithStaleReads marks ctx so that reads made with it may be answered by
// the nearest replica without confirming with the partition's leader
// (the API's ?consistency=stale): they may miss the latest writes, by the
// replica's lag, and cost no round trip. A single node's reads are always
// current.
func WithStaleReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, staleKey{}, true)
}

// StaleReads reports whether ctx allows stale reads.
func StaleReads(ctx context.Context) bool {
	v, _ := ctx.Value(staleKey{}).(bool)
	return v
}
