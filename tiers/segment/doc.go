// Package segment is the log-structured tiers.Store kept in an object
// store (S3, GCS, Azure Blob, or a directory through objstore.Dir), so that
// a Brainy node's data can live in a bucket.
//
// # Objects
//
// Under Config.Objects (already scoped to one node's prefix) the store
// keeps three kinds of object:
//
//   - seg/<seq>: immutable segments, seq as 16 hex digits from 1 up. A
//     segment holds the writes of one or more batches in Apply order, each
//     record checksummed (crc32c), behind a header with magic and version
//     and before a trailer with the record count and a checksum of the
//     whole object. Segments are created with IfNoneMatch.
//   - ckpt/<seq>: the whole key index (key → segment, offset, length) as of
//     segment seq.
//   - MANIFEST: names the checkpoint recovery starts from. It is the only
//     object ever overwritten, and only by compare-and-swap on its ETag.
//
// # Usage
//
// Open recovers the index; then Get, NewIter and Stats may be called from
// any goroutine, and Apply too, although core calls it from one committer
// goroutine. Close waits for queued writes and checkpoints. The store owns
// its prefix: two open stores on one prefix fence each other (below).
//
// # Writes
//
// Apply encodes its batch and queues it. One writer goroutine takes
// everything queued (up to Config.SegmentBytes), writes it as the next
// segment with one Put, applies it to the in-memory index (a B-tree) and
// only then answers every Apply in it. While a Put is in flight new batches
// queue, so under concurrency one Put carries many batches (group commit).
// A failed Put is retried with the same seq and bytes a few times with
// backoff; if a retry finds the object already there it must hold those
// exact bytes (an earlier try succeeded unseen), otherwise, or when the
// retries run out, the store fails: the pending Applies and every later one
// return the error. Sequence numbers are never skipped or reused, so the
// log has no holes.
//
// # Reads
//
// Get looks the key up in the index and reads the record with one range
// read (or from the value cache, keyed by segment and offset, which never
// needs invalidating since segments are immutable). NewIter walks a
// copy-on-write clone of the index and reads values a chunk at a time,
// merging nearby records of a segment into one range read.
//
// # Recovery
//
// Open reads MANIFEST (creating it if absent), loads the checkpoint it
// names (if any), lists seg/ and replays, in order, every segment after
// the checkpoint. A missing seq between the checkpoint and the last segment
// is an error that names it, as is a checkpoint entry pointing at a missing
// segment. Replay reads only the segments after the checkpoint: index
// entries carry the record's length, so nothing older is read to rebuild
// the index.
//
// # Invariants
//
//  1. A batch is visible to readers, and its Apply returns nil, only after
//     the segment holding it is stored. Segments are applied to the index
//     in seq order, and each seq is written once (IfNoneMatch), so the
//     index is always the replay of a stored prefix of the log.
//  2. Every segment after the checkpoint MANIFEST names exists (nothing
//     deletes a segment whose seq is above it). So recovery — checkpoint
//     plus replay of the rest, in order — rebuilds exactly the index the
//     writer had after its last stored segment: no acknowledged write is
//     lost and none is reordered.
//  3. Every segment the index references exists. Index entries only ever
//     move to newer segments (overwrites and compaction rewrites both
//     write a newer segment), so a segment that the index no longer
//     references never will be again.
//  4. Hence a segment may be deleted once MANIFEST names a checkpoint at or
//     after it that does not reference it: recovery loads that checkpoint
//     and replays only later segments, so it never reads the segment, and
//     by (3) neither the current index nor any later one references it.
//     (The current index not referencing it is not enough: the checkpoint
//     recovery loads may still point at it, and Open checks that every
//     segment a checkpoint references exists.) Deletion also waits for
//     iterators whose snapshots are older than the moment the segment was
//     found collectable.
//  5. Compaction never reorders writes: it reads the live records of
//     sparse segments and queues them as a rewrite through the same writer
//     as Apply. When the writer builds the segment it drops any record
//     whose key no longer points at the record read (overwritten or
//     deleted since, in an earlier segment or earlier in this one), so a
//     rewrite never resurrects an old value. The emptied segments are then
//     deleted under (4): only after a checkpoint newer than the rewrite
//     (the one Compact writes) is in MANIFEST.
//  6. A checkpoint is written before MANIFEST points at it; a crash between
//     the two leaves an unused checkpoint object, removed by a later
//     checkpoint, which deletes every checkpoint older than MANIFEST's.
//
// # Fencing
//
// A second store opened on the same prefix replays the same log and then
// races the first for the next seq: whichever Put loses the IfNoneMatch
// fails its store (ErrFenced) instead of overwriting, and the MANIFEST's
// compare-and-swap catches a stale checkpointer the same way. Fencing
// protects the stored log; a losing store may still serve stale reads
// until it is closed.
package segment
