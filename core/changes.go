package core

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/soullabs/brainy/internal/wire"
)

// Subscription receives the item changes of every commit, in commit
// order, for caches to invalidate (edges subscribe over QUIC). It never
// slows the committer: when a subscriber falls behind by more than its
// buffer, batches are dropped and Lost reports it.
type Subscription struct {
	n    *Node
	c    chan []wire.Change
	lost atomic.Bool
}

// changeFeed is the set of subscriptions.
type changeFeed struct {
	mu    sync.Mutex
	subs  map[*Subscription]struct{} // guarded by mu
	count atomic.Int32               // len(subs), read by the committer without the lock
}

// SubscribeChanges returns a subscription buffering up to buffer commits.
func (n *Node) SubscribeChanges(buffer int) *Subscription {
	s := &Subscription{n: n, c: make(chan []wire.Change, max(buffer, 1))}
	n.feed.mu.Lock()
	if n.feed.subs == nil {
		n.feed.subs = map[*Subscription]struct{}{}
	}
	n.feed.subs[s] = struct{}{}
	n.feed.count.Store(int32(len(n.feed.subs)))
	n.feed.mu.Unlock()
	return s
}

// C delivers one batch per commit.
func (s *Subscription) C() <-chan []wire.Change { return s.c }

// Lost reports whether batches were dropped since the last call.
func (s *Subscription) Lost() bool { return s.lost.Swap(false) }

// Close ends the subscription.
func (s *Subscription) Close() {
	f := &s.n.feed
	f.mu.Lock()
	delete(f.subs, s)
	f.count.Store(int32(len(f.subs)))
	f.mu.Unlock()
}

// publish hands a committed cycle's item writes to the subscribers. It is
// called by the committer; it does nothing when nobody listens.
func (n *Node) publish(items []itemWrite) {
	if n.feed.count.Load() == 0 || len(items) == 0 {
		return
	}
	batch := make([]wire.Change, 0, len(items))
	for _, w := range items {
		// Key: p<part:2>i<tenant>\0<id>; a record starts with its format
		// byte and then the version.
		rest := w.key[4:]
		sep := 0
		for sep < len(rest) && rest[sep] != 0 {
			sep++
		}
		if sep == len(rest) {
			continue
		}
		c := wire.Change{Tenant: rest[:sep], ID: rest[sep+1:], Deleted: w.val == nil}
		if !c.Deleted {
			c.Version = recordVersion(w.val)
		}
		batch = append(batch, c)
	}
	n.feed.mu.Lock()
	for s := range n.feed.subs {
		select {
		case s.c <- batch:
		default:
			s.lost.Store(true)
		}
	}
	n.feed.mu.Unlock()
}

// recordVersion reads the version of an encoded record without decoding
// the rest: the clock time and origin lead it.
func recordVersion(val []byte) string {
	if len(val) < 2 {
		return ""
	}
	hlc, n := binary.Uvarint(val[1:])
	if n <= 0 {
		return ""
	}
	origin := ""
	if val[0] >= 2 {
		rest := val[1+n:]
		l, m := binary.Uvarint(rest)
		if m <= 0 || uint64(len(rest)-m) < l {
			return ""
		}
		origin = string(rest[m : m+int(l)])
	}
	return FormatVersion(hlc, origin)
}

// Relay hands changes committed by other nodes (to partitions this node
// holds no replica of) to this node's subscribers, so that an edge
// subscribed to any one node hears of every change in the cluster. lost
// says changes may have been missed: every subscriber is told.
func (n *Node) Relay(changes []wire.Change, lost bool) {
	if n.feed.count.Load() == 0 || (len(changes) == 0 && !lost) {
		return
	}
	n.feed.mu.Lock()
	for s := range n.feed.subs {
		if lost {
			s.lost.Store(true)
		}
		if len(changes) == 0 {
			continue
		}
		select {
		case s.c <- changes:
		default:
			s.lost.Store(true)
		}
	}
	n.feed.mu.Unlock()
}
