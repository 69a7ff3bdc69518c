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
// Not yet: log compaction and snapshots (a new or lagging replica is caught
// up from the full log), membership changes beyond the initial peers,
// quiescing idle groups, and coalesced heartbeats.
package multiraft
