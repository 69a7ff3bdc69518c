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

type globalKey struct{}

// WithGlobalReads marks ctx for reads that wait until every reachable
// region of a federation has applied the item's latest version known to
// any of them (the API's ?consistency=global). Outside a federation it is
// an ordinary read.
func WithGlobalReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, globalKey{}, true)
}

// GlobalReads reports whether ctx asks for global reads.
func GlobalReads(ctx context.Context) bool {
	v, _ := ctx.Value(globalKey{}).(bool)
	return v
}

type scopeKey struct{}

// WithGlobalScope marks ctx for lists that merge the pages of every
// region of a federation (the API's ?scope=global). Outside a federation
// a list is of the one region there is.
func WithGlobalScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, true)
}

// GlobalScope reports whether ctx asks for a list of every region.
func GlobalScope(ctx context.Context) bool {
	v, _ := ctx.Value(scopeKey{}).(bool)
	return v
}
