// Package core is a Brainy node's data: partitions of items in a
// tiers.Store, the commands that change them, and the one deterministic
// state machine (stateMachine.apply) every write goes through.
//
// A Node runs in one of two modes. Without Config.Raft it is a single
// node: a driver goroutine fills a cycle of commands while a committer
// syncs the previous one (group commit) — the embedded API (package
// brainy) uses it. With Config.Raft every partition is a raft group
// (core/multiraft) and writes are proposed, replicated to a quorum and
// applied on every replica; reads confirm leadership with a read index
// unless the caller allows stale reads. Either way an item's version is
// its partition's log index, the same on every replica.
//
// The node owns its raft groups; package cluster decides membership and
// placement and steers the groups only through GroupStatus, Leader,
// ChangeReplicas, TransferLeadership and RaftStats
// (docs/design/20261205_core_cluster_seam.md). Core does no network I/O:
// raft messages leave through the multiraft.Transport it is given, and
// the item API reaches it over QUIC through package itemrpc.
//
// Files: node.go (Node, Open, the single-node pipeline), api.go (the item
// operations), command.go and apply.go (commands and the state machine),
// record.go and keys.go (the stored form), cache.go (the record cache),
// changes.go (the change feed), replicated.go (the raft mode).
package core
