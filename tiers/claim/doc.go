// Package claim lets several Brainy nodes share one object-store bucket: each node
// claims a key prefix "node-<id>/" that no other live node can take, and the
// cluster can elect one leader, using nothing but objstore.Store's conditional
// writes.
//
// # Layout
//
//	_cluster/claims/node-<id>   claim record of node <id>; the node owns node-<id>/
//	_cluster/leader             leader lease record (any key works for a Lease)
//	node-<id>/...               the node's own data, written only by the claim's owner
//
// A record is JSON: holder, host, pid, proc (kernel boot id and pid namespace), a
// random instance id, a renewal sequence number, renewed_at, ttl_ms and released.
//
// # Usage
//
// A node calls Acquire once at start, writes under Claim.Prefix, watches
// Claim.Lost and calls Release when it stops. A would-be leader calls
// AcquireLease in a loop (say every TTL) until it wins, leads until Lost fires,
// and calls Release when it steps down. Every method is safe for concurrent use;
// renewals run on one goroutine per Claim or Lease.
//
// # Taking a record
//
//   - Absent: create it with IfNoneMatch. Of several creators exactly one wins.
//   - Released (the holder's Release wrote released=true): take it with IfMatch on its
//     ETag. The object-store interface has no conditional delete, so Release cannot
//     remove the record without risking deleting a successor's claim; a released
//     record is as free as an absent one.
//   - Held on this machine by a process that no longer runs: take it at once with
//     IfMatch, so a node restarted after a crash gets its data back without waiting.
//     "This machine" means the same host name and the same proc identity (boot id and
//     pid namespace), because a pid means something only inside one pid namespace of
//     one boot: a container with the same host name, or a machine misnamed
//     "localhost", must not look dead because its pid is unknown here. A pid that was
//     reused by an unrelated process looks alive; that only costs a TTL.
//   - Otherwise the holder is alive unless the record's ETag stays the same for a
//     full TTL (the longer of the record's and ours) as measured by our own
//     monotonic clock. Timestamps written by other machines are never compared with
//     ours, so clock skew cannot steal a claim. After the TTL the record is taken
//     with IfMatch on the ETag that was watched: of several observers exactly one
//     wins, and a holder that renewed at the last moment makes the swap fail.
//
// An explicit node id waits up to one TTL and then either takes the record or fails
// with a *HeldError naming the holder; it fails as soon as it sees a renewal. With no
// node id, Acquire takes, without waiting on live holders, a numbered slot of this
// machine that was released or whose process died, else the lowest slot that is
// absent or released. A slot whose holder crashed on another machine stays taken
// until that machine restarts the node or a node is started with that id.
//
// # Renewal and loss
//
// The owner rewrites the record every RenewEvery with IfMatch on the ETag of its
// last write. Each write bumps seq, because S3 ETags are a digest of the body: an
// identical body would keep the ETag and look dead to observers. If a renewal's
// answer was lost but the write landed, the next IfMatch fails on our own write;
// the owner recognises its instance id in the current record and carries on.
//
// Lost fires when the record was changed or removed by someone else, or when no
// renewal succeeded for TTL counted from the moment the last successful write was
// sent. Invariant: that moment precedes every observer's first sight of the
// resulting ETag, so the owner gives up no later than any observer may take over.
// The owner must stop starting writes under its prefix when Lost fires. This is a
// lease, not a fence: a write started before the deadline can still land after a
// successor took over, so data written under a prefix should itself be published
// with conditional writes where that matters.
package claim
