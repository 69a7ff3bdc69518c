// Package multiraft runs many raft groups — one per partition — on one
// node, on go.etcd.io/raft/v3, with one driver goroutine for all of them.
//
// The driver is the only goroutine that touches the groups' RawNodes. Each
// cycle it takes what arrived (ticks, inbound messages, proposals), then
// handles the Ready of every group that has one, in this order:
//
//  1. collect the Readies; one that brings a snapshot is held while the
//     state machine copies the snapshot's state on a goroutine of its own
//     (StateMachine.ApplySnapshot, at most two at once), so the driver
//     keeps ticking, heartbeating and applying the other groups — a
//     partition being copied no longer makes a node's leaders step down.
//     Once the copy is done, the held Ready is taken up: the state is
//     adopted and the log cut before anything after it applies;
//  2. apply: committed entries, in index order, through StateMachine.Apply;
//     conf changes through the RawNode and StateMachine.ApplyConfState.
//     The state machine only collects its writes;
//  3. persist: the entries and hard states of all groups and the state
//     machine's writes (StateMachine.Flush) go into ONE tiers.Batch,
//     stored with one Store.Apply (CockroachDB's lesson: batch all
//     groups' log writes per cycle; TiKV and etcd also keep one write per
//     cycle), synced only when raft needs it (new entries, term or vote,
//     or an installed snapshot);
//  4. send: the messages of all groups, one Transport.Send per peer;
//  5. StateMachine.Commit makes the applies visible, proposers hear back,
//     then advance, and compact the logs that grew long enough (see below).
//
// Applying before persisting is safe although raft hands a replica
// committed entries its own log has not stored yet (synchronous mode lets
// it): an entry and its effects reach the store in the same atomic write,
// and nothing of an apply — a reply, a cache entry, a change pushed —
// leaves the node before that write. A crash before it loses both, and the
// entry is delivered again. After a cycle whose Advance leaves a Ready
// (a lone voter acknowledges its own append there, committing it), the
// driver runs the next cycle at once instead of waiting for an event.
//
// Callers propose from any goroutine with Propose, which returns once the
// local replica has applied the command (proposals made on a follower are
// forwarded to the leader by raft itself). Inbound messages arrive through
// Step, from the transport's goroutines.
//
// Persistence lives in the node's tiers.Store under keys of their own:
//
//	r<group:4>e<index:8>   a log entry (raftpb.Entry, protobuf)
//	r<group:4>h            the group's HardState
//	r<group:4>t            the truncation point: index and term of the
//	                       last entry compacted away
//
// RemoveGroup deletes them all when the node drops its replica.
//
// Membership changes go through ChangeReplicas (raft's joint-consensus
// ConfChangeV2). A node receiving a message for a group it does not hold
// opens it empty if Config.AcceptGroup allows, and its leader fills it: a
// replica added to a group starts as a learner that way, then is promoted.
// The membership is persisted by the state machine together with its
// applied index (StateMachine.ApplyConfState), and handed back to raft at
// restart, so the two can never disagree.
//
// Reads: ReadIndex confirmed by a heartbeat round (raft's ReadOnlySafe),
// one round per group per driver cycle shared by every read of the cycle;
// not a leader lease, which a starved scheduler or a skewed clock breaks.
// A leader that is its group's only voter needs no round (no other node
// can lead without its vote): callers check SoleVoterLeader and skip
// ReadIndex then.
//
// Results reach proposers only after StateMachine.Commit, so a write is
// acknowledged once it is durable in the log and visible to readers. The
// state machine's writes need no sync of their own: a synced batch makes
// them durable with the entries (the log is compacted only behind what a
// synced batch made durable), and an unsynced one carries only entries
// durable already, which replay after a crash.
//
// Heartbeats travel in the per-peer batch of each cycle, so a tick costs
// one Transport.Send per peer whatever the number of groups (each group
// still sends its own heartbeat messages in that batch).
//
// Log compaction: once a group's log holds 2×Config.LogKeep entries behind
// the applied index the state machine holds durably, it is cut back to
// LogKeep entries behind it; the truncation point is persisted with the
// deletes. A replica that needs a compacted entry gets a snapshot, which
// carries only raft's metadata (index, term, membership at the leader's
// applied index), no data. The receiving node records the sender and
// hands both to StateMachine.ApplySnapshot, which copies the group's state
// from that node itself (core does it through RaftConfig.FetchPartition,
// reading the partition's key range from the sender as one consistent
// snapshot). The copy may be newer than the snapshot; the log then
// restarts at the snapshot index, its old entries deleted in the same
// synced batch. The sender counts the snapshot delivered once sent: if
// the message is lost, raft sends another.
//
// Messages from peers are checked before raft steps them (check): raft
// panics on some messages no correct peer sends, and takes a term, a
// leader or entries from any message that offers them; the rules, and the
// raft invariant each rests on, are written on check. A committed conf
// change raft cannot apply is skipped on every replica alike (canApply).
// A snapshot the state machine cannot get (ErrSnapshotUnavailable) is
// dropped, its group reopened from the store as if the message had been
// lost.
//
// RemoveGroup refuses a group whose snapshot is being copied (the copy
// writes its keys); the caller retries once it is done.
//
// Not yet: quiescing idle groups.
package multiraft
