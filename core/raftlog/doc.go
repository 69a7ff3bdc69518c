// Package raftlog is a dedicated append-only log for the raft state of
// many groups — entries, hard states, compaction points — in one
// directory on a local disk, in place of keeping them as keys in the
// node's key/value store (as etcd keeps its WAL and TiKV its raft-engine
// apart from their state machines). See docs/design/20261206_raft_log.md.
//
// # Usage
//
// One goroutine — the raft driver's — owns a Log and calls all of its
// methods; a Log is not safe for concurrent use. Open replays the
// directory; then, per group, Load (or State and Entries) gives what a
// replica restarts from. Each driver cycle builds one Batch — any
// number of groups' entries (Append), hard states (SetHardState),
// compactions (Compact), snapshots (Snapshot) and removals (Remove), in
// order — and stores it with one Write, synced when raft requires it.
// After a failed Write (not ErrBadBatch) the log is stopped: close and
// reopen it.
//
// # Files
//
// The directory holds segment files named by sequence number
// (0000000000000001.rlog, …) and a LOCK file. A segment is a header
// (magic, version, sequence number, crc32c), then records; the log moves
// to a new segment when the current one reaches Config.SegmentBytes.
// A record frames one batch (or part of a batch too large for one
// record) with its length, a type and a crc32c (Castagnoli) of both and
// the payload; a payload is a list of operations (format.go). Records
// are never longer than 64 MiB.
//
// # Durability and recovery
//
// A synced Write returns after fdatasync: the batch and every earlier one
// survive a crash. A batch is replayed whole or not at all. Before moving
// to a new segment the current one is synced, and a new segment is made
// durable (file and directory synced) before anything is written after
// it, so only the last segment can end torn; Open cuts a torn or
// corrupt tail of the last segment at the end of its last whole valid
// batch (what a crash leaves: no synced Write's batch is there), and
// refuses anything else — damage in an earlier segment, a missing
// segment — with ErrCorrupt. Replay allocates at most what the files
// hold (a record's length is checked against the file and the limit
// before it is read).
//
// # Garbage collection
//
// Each segment but the first begins with a checkpoint: every group's hard
// state and compaction point. The oldest segment is deleted once every
// entry it holds is compacted away (or its group removed), after a sync:
// a group's latest hard state and compaction point are then in the next
// segment's checkpoint or later. A group that holds the oldest segment
// with a few live entries has them copied into a new segment once the
// log holds Config.RewriteSegments segments. gc.go states the invariant.
//
// # Memory
//
// The log keeps, per live entry, where it lies (16 bytes), not the entry:
// Entries reads them back (a run of nearby entries with one read) and
// checks each against the crc32c taken when it was written. The entries
// Open decoded are kept until their group is loaded, so that loading
// every group after Open reads nothing twice.
package raftlog
