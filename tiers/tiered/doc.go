// Package tiered is a tiers.Store that stacks a hot store (local disk) over
// a warm store (an object store) and an optional cold store, and moves
// keys between them by itself: keys idle for a while sink to the next
// tier, keys read from a lower tier rise back to hot.
//
// # Usage
//
// Open a Store over already opened tiers and hand it to whoever wants a
// tiers.Store (core.Node). The Store owns its tiers from then on: Close
// closes all of them. A mover goroutine runs a pass every
// Config.Interval; MoveNow runs one synchronously. Apply must be called by
// one goroutine at a time when batch order matters (core's committer);
// Get, NewIter, Stats, TierStats (per tier: size, key count, moves, as the
// nodestats.Tier of the node's metrics) and MoverStats (the mover's
// progress) may be called from any goroutine.
//
// # Where a key lives
//
// A key lives in one tier, except for stale copies: a set goes to hot and
// leaves whatever a lower tier held for the key in place. The rule that
// makes this safe is precedence: hot, then warm, then cold. The topmost
// tier that holds a key holds its current value; copies below it are
// shadowed and never seen.
//
//   - Apply writes the batch to hot. Before that it deletes the batch's
//     deleted keys from warm, then from cold (synced), so that a deleted
//     key cannot resurrect from a lower tier. Keys Demotable refuses are
//     never below hot, so their deletes go to hot only. If Apply fails part-way, a
//     delete may have taken effect below while the batch did not reach
//     hot; a deleted key then stays visible in hot, which is the state
//     before the batch for that key, so nothing resurrects.
//   - Get reads hot, then warm, then cold. A hit below hot is promoted:
//     written to hot (synced) and then deleted from the tier it was found
//     in. If hot meanwhile got the key from Apply, hot's value wins and
//     nothing is written; if Apply deleted the key meanwhile, nothing is
//     promoted (the check runs under the Apply mutex).
//   - NewIter merges the tiers' iterators with the same precedence, so
//     each live key is seen exactly once, with its current value.
//
// # Moving a key down
//
// Demotion of key K from tier A to the tier B below it:
//
//  1. copy A's value v of K to B (synced), without holding the Apply
//     mutex, so the committer never waits for an object store;
//  2. delete K from A only if A still holds v. For hot this check and the
//     delete run under the Apply mutex, so a write that raced the copy
//     wins and K stays in hot with the newer value (B's copy is shadowed).
//     If K is gone from A, Apply deleted it during the copy and the copy is
//     deleted from B again.
//
// The mover demotes keys in batches (up to 256 keys or 4 MiB): one synced
// write of the batch to B, then one check-and-delete of the batch in A.
//
// A crash or an error between the two steps leaves K in both tiers: reads
// and iteration see A's value (precedence), and a later pass finishes the
// move. Nothing is lost and nothing shows twice.
//
// Keys for which Config.Demotable reports false never leave hot. Core's
// node metadata, partition state and type index must stay in hot, so core
// passes a Demotable that accepts item records only.
//
// Moves of one key are serialised by a per-key lock (the mover and
// promoting readers take it; Apply does not). NewIter opens its iterators
// while no move is between its steps, under the Apply mutex, so its
// snapshot is a state the store really was in.
//
// # When keys move
//
// The last access time of each key (Get and Apply touch it, at one second
// resolution) is kept in memory only. After a restart every key present
// counts as accessed when the Store was opened, so nothing is demoted until
// it has been idle for DemoteAfter in this process. Demotion by age runs
// every pass. When hot's LiveBytes exceeds HotMaxBytes, or the hot disk's
// free space drops below HotMinFreeBytes, the pass also demotes the least
// recently used demotable keys, regardless of age, until the excess is
// moved. A disk store reports its size only after compaction catches up,
// so under size pressure a pass may demote more than the bare excess.
// Warm to cold runs on keys idle for ColdAfter; since it lists the whole
// warm tier, the background mover runs it at most once per ColdAfter/30.
// Moves are paced to MaxMoveRate keys per second, so a pass cannot take the
// disk and the network away from foreground requests.
package tiered
