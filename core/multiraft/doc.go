// Package multiraft runs many raft groups — one per partition — on one
// node, on go.etcd.io/raft/v3, with one driver goroutine for all of them.
//
// The driver is the only goroutine that touches the groups' RawNodes. Each
// cycle it takes what arrived (ticks, inbound messages, proposals), then
// handles the Ready of every group that has one, in this order:
//
//  0. finish the parked Readies whose log write is done (below): apply the
//     committed entries they deferred, give raft's storage the entries,
//     send their messages, advance. A lone voter's Advance commits the
//     entries just written, so step 1 finds them at once;
//  1. collect the Readies; one that brings a snapshot is held while the
//     state machine copies the snapshot's state on a goroutine of its own
//     (StateMachine.ApplySnapshot, at most two at once), so the driver
//     keeps ticking, heartbeating and applying the other groups — a
//     partition being copied no longer makes a node's leaders step down.
//     Once the copy is done, the held Ready is taken up: the state is
//     adopted and the log cut (in this cycle's log write) before anything
//     after it applies;
//  2. the log: the entries and hard states of all groups (and the cuts of
//     step 1) as one write (CockroachDB's lesson: batch all groups' log
//     writes per cycle; TiKV and etcd also keep one write per cycle),
//     synced only when raft needs it (new entries, term or vote, or an
//     installed snapshot);
//  3. apply: committed entries, in index order, through StateMachine.Apply;
//     conf changes through the RawNode and StateMachine.ApplyConfState.
//     The state machine only collects its writes;
//  4. the state machine's writes (StateMachine.Flush) go to the store in
//     one Store.Apply — unsynced, except in a cycle where a group's log is
//     due for compaction (below); StateMachine.Commit makes the applies
//     visible; proposers hear back;
//  5. the Readies whose log write is done: as step 0; logs that grew long
//     enough are compacted (one more, unsynced, log write).
//
// Where the log lives (logStore) decides when a cycle's log write is done.
// With Config.Log it lives in a raftlog.Log of its own, on the node's
// local disk, written by the logWriter on a goroutine of its own: the
// driver hands it step 2's write and goes on at once — applying, storing
// and answering the writes before it while the sync runs. The Readies
// whose write must be synced park until the writer reports it (step 0 of
// a later cycle); while a write is being synced the driver leaves new
// proposals and messages in their channels, so the next write takes all
// of them (as a driver that synced the log itself would). Without
// Config.Log the log lives in the node's tiers.Store under keys of its
// own, as a node on an object store keeps it: its operations ride in
// step 4's store write, one atomic batch, synced when step 2 would be,
// and every Ready finishes in its own cycle.
//
// Applying is safe although raft hands a replica committed entries its
// own log has not stored yet (synchronous mode lets it): with a separate
// log, step 3 applies only entries the log held before the cycle began
// (committedFromLog) — a leader's always qualify, since raft counts its
// own append only once persisted; a follower's that arrive with their
// commit wait, parked, for their own write (step 0). With the store-kept
// log, the state machine's writes, which record the applied index, reach
// the store in the same atomic write as the entries. Either way nothing
// of an apply — a reply, a cache entry, a change pushed — leaves the node
// before the entries are durable. A crash before the store write loses
// the apply, and the entry is delivered again. After a cycle whose Advance
// leaves a Ready, the driver runs the next cycle at once instead of
// waiting for an event.
//
// Three invariants keep a restart sound with two files:
//
//   - (a) the applied index the state machine holds on disk never exceeds
//     the last index of the durable log (only entries already durable are
//     applied, see above);
//     openGroup refuses a group where it does;
//   - (b) the hard state's commit index may lag the applied index: a cycle
//     that only moves the commit index writes the log and the store
//     unsynced, and a crash of the machine may keep the store's write and
//     lose the log's. raft refuses to start a replica whose applied index is
//     past its commit, so loading raises the commit to the applied index
//     when that is within the log (every applied entry was committed);
//   - (c) the log is compacted only behind g.durable, the applied index of
//     the last synced store write: a synced log write no longer makes the
//     state machine's writes durable. The driver syncs its store write in
//     a cycle where some group is due for compaction (once per LogKeep
//     entries of a group), not every cycle.
//
// TestCrashLosesNoCommittedEntry crashes nodes at random writes, the store
// keeping or losing its unsynced writes and the dedicated log losing its
// own; breaking any of the three makes it fail.
//
// Callers propose from any goroutine with Propose, which returns once the
// local replica has applied the command. Every command's outcome is known
// unless its caller gives up first: a follower refuses proposals
// (ErrNotLeader) instead of letting raft forward them to a leader that
// may drop them unseen, and a command whose leader was deposed before
// committing it is answered ErrNoLeader once another entry is applied at
// its index (dropLost). Both were certainly not applied, so callers can
// send them again, to the leader. Inbound messages arrive through Step,
// from the transport's goroutines.
//
// In the store, the log is kept under keys of its own:
//
//	r<group:4>e<index:8>   a log entry (raftpb.Entry, protobuf)
//	r<group:4>h            the group's HardState
//	r<group:4>t            the truncation point: index and term of the
//	                       last entry compacted away
//
// New moves a log kept that way into a Config.Log that holds no group yet
// (a node's first start with a dedicated log), in one synced log write,
// then deletes the keys; an interrupted move is redone (see migrate).
// RemoveGroup drops a group's log when the node drops its replica.
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
// state machine's writes need no sync of their own: the entries they apply
// are durable in the log, which replays them after a crash, and the log is
// compacted only behind what a synced store write made durable.
//
// Heartbeats travel in the per-peer batch of each cycle, so a tick costs
// one Transport.Send per peer whatever the number of groups (each group
// still sends its own heartbeat messages in that batch). Idle groups
// quiesce (quiesce.go): a leader whose group has had nothing but
// heartbeats for two election timeouts, every answering replica holding
// every entry, sends a last marked heartbeat and stops ticking it, and so
// do its followers; any proposal, read or message but heartbeats wakes
// the group, and so does Wake / WakeForMembers (the cluster's signal that
// the leader is gone). 64 idle partitions then cost nothing.
//
// Log compaction: once a group's log holds 2×Config.LogKeep entries behind
// the applied index the state machine holds durably, it is cut back to
// LogKeep entries behind it (raftlog: one compaction record; in the
// store: the truncation point and a delete per entry). A replica that
// needs a compacted entry gets a snapshot, which carries only raft's
// metadata (index, term, membership at the leader's applied index), no
// data. The receiving node records the sender and hands both to
// StateMachine.ApplySnapshot, which copies the group's state from that
// node itself (core does it through RaftConfig.FetchPartition, reading
// the partition's key range from the sender as one consistent snapshot),
// durably. The copy may be newer than the snapshot; the log then restarts
// at the snapshot index, its old entries dropped in the cycle's synced log
// write. The sender counts the snapshot delivered once sent: if the
// message is lost, raft sends another.
//
// Messages from peers are checked before raft steps them (check): raft
// panics on some messages no correct peer sends, and takes a term, a
// leader or entries from any message that offers them; the rules, and the
// raft invariant each rests on, are written on check. A committed conf
// change raft cannot apply is skipped on every replica alike (canApply).
// A snapshot the state machine cannot get (ErrSnapshotUnavailable) is
// dropped, its group reopened from the log as if the message had been
// lost.
//
// RemoveGroup refuses a group whose snapshot is being copied (the copy
// writes its keys); the caller retries once it is done.
package multiraft
