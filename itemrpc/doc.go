// Package itemrpc is the item API (item.API) over the QUIC transport, both
// sides of it: the handlers a core registers on its transport.Server, and
// Remote, the client an edge (package upstream) or a core forwarding to
// another core calls them with. Request and answer encodings live in
// internal/wire; this package owns how they travel: which method number
// carries which operation, how a request's flags (forwarded, stale) reach
// the handler, and how an error crosses the wire so the caller sees the
// same item sentinel (and, for bad input, the same error code) a local
// caller would.
//
// It is not the cluster: which node serves a request, and forwarding to
// the partition's leader, are package cluster's. A request a core
// forwarded is marked (wire.Request.Forwarded) and answered from the
// receiving node's own replicas, so it crosses at most one hop.
package itemrpc
