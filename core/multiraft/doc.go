// Package multiraft runs many raft groups — one per partition — on one
// node, on go.etcd.io/raft/v3, with one driver goroutine for all of them.
//
// The driver is the only goroutine that touches the groups' RawNodes. Each
// cycle it takes what arrived (ticks, inbound messages, proposals), then
// handles the Ready of every group that has one, in this order, which raft
// requires:
//
//  1. persist: the entries and hard states of all groups go into ONE
//     tiers.Batch, applied with one sync (CockroachDB's lesson: batch all
//     groups' log writes per cycle);
//  2. send: the messages of all groups, one Transport.Send per peer;
//  3. apply: committed entries, in index order, through StateMachine.Apply;
//     conf changes through the RawNode;
//  4. advance.
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
//
// Results reach proposers only after StateMachine.Commit, so a write is
// acknowledged once it is durable in the log and visible to readers.
//
// Heartbeats travel in the per-peer batch of each cycle, so one node pair
// exchanges one message per tick whatever the number of groups.
//
// Not yet: log compaction and snapshots (a new or lagging replica is caught
// up from the full log) and quiescing idle groups.
package multiraft
