package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
)

// Hot reads: the hottest items cached on every node, reads kept
// linearizable.
//
// A node that does not lead an item's partition forwards a default
// (linearizable) read to the leader. Under a profile with HotReads, for an
// item that is hot (it takes HotShare of this node's such reads: hot.go) it
// asks with MethodHotGet instead; the leader answers with a lease of
// duration D, and the holder answers reads of the item from its copy until
// D has passed since it *sent* the request. Before the leader writes an
// item it tells every holder of a live lease to drop it (MethodHotInvalidate)
// and waits for each to confirm or for its lease to end, and grants no
// lease on the item while the write is in flight.
//
// Why a read at a holder is linearizable. A read returns the copy only if
// it starts before the lease ends by the holder's clock (durations on
// monotonic clocks; rates assumed within a few percent). The copy was
// current when the leader read it (a ReadIndex read, confirmed by a quorum
// after the holder sent its request). A write to the item by that leader
// completes only after the holder dropped the copy or the lease ended by
// the leader's reckoning, which starts after the holder's and runs longer
// (leaseSlack): so a read that starts after the write completed never sees
// the copy. A write by a *later* leader: under CheckQuorum, a replica that
// acknowledged the old leader's ReadIndex heartbeat (one in every quorum
// the new leader needs) grants no vote for an election timeout after it —
// nor does the old leader, which steps down no sooner — so no other
// leader exists until an election timeout after the holder sent its
// request; D is half of that (Config.leaseDuration). The exception,
// a leadership transfer, which raft grants inside that timeout, is
// preceded by invalidating every lease of the partition (beforeTransfer).
// A lease granted after the leader was deposed has a copy read while it
// still led: the same argument covers it.
//
// What is not covered: writes that reach a partition other than through
// its leader's client path — another region's values (federation) and a
// blue cluster's (sync) — so hot reads stay off in federated and
// following clusters (Config.NoHotReads).

// leaseSlack lengthens a lease as the leader counts it, for the clocks'
// rates and the time the answer takes to reach the holder (which counts
// from before its request, so that only helps).
const leaseSlack = 1.25

// maxLeasedKeys bounds the items a leader keeps leases on, and
// maxHotCopies the copies a holder keeps: both a few times the 1/HotShare
// items that can be hot.
const (
	maxLeasedKeys = 16384
	maxHotCopies  = 16384
)

// leaseTable is a leader's record of the leases it granted, and of the
// writes in flight that no lease may overlap.
//
// Writes are tracked per stripe of keys (a hash), not per key, so that a
// write costs a lock and two counters and no map entry: a read between
// its prepare and its grant that sees its stripe's sequence move — for a
// write of its key or of another — gets no lease, the safe side.
type leaseTable struct {
	mu      sync.Mutex
	stripes [leaseStripes]stripe            // guarded by mu
	keys    map[string]map[string]time.Time // key → holder node → when its lease ends, by this node's clock; guarded by mu

	granted, invalidations atomic.Uint64
}

const leaseStripes = 4096

type stripe struct {
	seq     uint64 // bumped when a write begins
	writing int    // writes in flight
}

func newLeaseTable() *leaseTable { return &leaseTable{keys: map[string]map[string]time.Time{}} }

// stripeOf is key's stripe, in a leader's lease table and in a holder's
// copies alike.
func stripeOf(key string) int { return int(xxhash.Sum64String(key) % leaseStripes) }

func (t *leaseTable) stripe(key string) *stripe { return &t.stripes[stripeOf(key)] }

// prepare returns the key's write sequence before a read that may be
// leased; false when a write is in flight (no lease then).
func (t *leaseTable) prepare(key string) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stripe(key)
	return s.seq, s.writing == 0
}

// grant records holder's lease on key until until, if no write began
// since prepare returned seq.
func (t *leaseTable) grant(key string, seq uint64, holder string, until time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.stripe(key); s.seq != seq || s.writing > 0 {
		return false
	}
	hs := t.keys[key]
	if hs == nil {
		if len(t.keys) >= maxLeasedKeys {
			return false
		}
		hs = map[string]time.Time{}
		t.keys[key] = hs
	}
	hs[holder] = until
	t.granted.Add(1)
	return true
}

// holder is a lease a write must end first.
type holder struct {
	node  string
	until time.Time
}

// begin marks a write of key in flight and returns the live leases on it,
// which it forgets: the write ends them.
func (t *leaseTable) begin(key string, now time.Time) []holder {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stripe(key)
	s.seq++
	s.writing++
	hs, ok := t.keys[key]
	if !ok {
		return nil
	}
	delete(t.keys, key)
	return live(hs, now)
}

func live(hs map[string]time.Time, now time.Time) []holder {
	var out []holder
	for node, until := range hs {
		if until.After(now) {
			out = append(out, holder{node, until})
		}
	}
	return out
}

// end marks a write of key done.
func (t *leaseTable) end(key string) {
	t.mu.Lock()
	t.stripe(key).writing--
	t.mu.Unlock()
}

// take removes and returns the live leases on keys of partition part
// (partOf maps a key to its partition), for a leadership transfer; no
// read in flight there gets a lease.
func (t *leaseTable) take(part int, partOf func(key string) int, now time.Time) map[string][]holder {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.stripes {
		t.stripes[i].seq++
	}
	out := map[string][]holder{}
	for key, hs := range t.keys {
		if partOf(key) != part {
			continue
		}
		delete(t.keys, key)
		if l := live(hs, now); len(l) > 0 {
			out[key] = l
		}
	}
	return out
}

// prune forgets ended leases.
func (t *leaseTable) prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, hs := range t.keys {
		for node, until := range hs {
			if !until.After(now) {
				delete(hs, node)
			}
		}
		if len(hs) == 0 {
			delete(t.keys, key)
		}
	}
}

// size returns the items with a live lease (or one ended, not yet pruned).
func (t *leaseTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

// hotCopies is a holder's leased copies.
//
// An invalidation may overtake the answer that carries the lease it ends:
// the leader records the lease, answers, then a write begins and its
// invalidation reaches this node before the answer is processed here. A
// copy stored after that would outlive the write. So every invalidation
// bumps its key's stripe generation, and an answer is stored only if its
// stripe's generation has not moved since its request was sent
// (beginGet): any invalidation of the lease it carries comes after.
type hotCopies struct {
	mu  sync.Mutex
	m   map[string]hotCopy   // guarded by mu
	gen [leaseStripes]uint64 // invalidations per stripe of keys; guarded by mu

	hits atomic.Uint64
}

type hotCopy struct {
	it    *item.Item
	until time.Time
}

func newHotCopies() *hotCopies { return &hotCopies{m: map[string]hotCopy{}} }

// get returns key's copy if its lease has not ended.
func (h *hotCopies) get(key string, now time.Time) (*item.Item, bool) {
	h.mu.Lock()
	c, ok := h.m[key]
	h.mu.Unlock()
	if !ok || !now.Before(c.until) {
		return nil, false
	}
	h.hits.Add(1)
	cp := *c.it
	return &cp, true
}

// beginGet returns key's stripe generation, before a request for a lease
// on it is sent.
func (h *hotCopies) beginGet(key string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gen[stripeOf(key)]
}

// put stores key's copy, leased until until, unless an invalidation of
// its stripe arrived since beginGet returned gen.
func (h *hotCopies) put(key string, it *item.Item, until time.Time, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen[stripeOf(key)] != gen {
		return
	}
	if len(h.m) >= maxHotCopies {
		now := time.Now()
		for k, c := range h.m {
			if !now.Before(c.until) {
				delete(h.m, k)
			}
		}
		if len(h.m) >= maxHotCopies {
			return
		}
	}
	h.m[key] = hotCopy{it, until}
}

func (h *hotCopies) drop(key string) {
	h.mu.Lock()
	h.gen[stripeOf(key)]++
	delete(h.m, key)
	h.mu.Unlock()
}

// clear drops every copy, and every answer in flight: hot reads were
// turned off.
func (h *hotCopies) clear() {
	h.mu.Lock()
	clear(h.m)
	for i := range h.gen {
		h.gen[i]++
	}
	h.mu.Unlock()
}

func leaseKey(tenant, id string) string { return tenant + "\x00" + id }

// errNoLease: the leader answered the hot read without the item (it does
// not lead the partition, or hot reads are off there); the reader falls
// back to a plain forwarded read.
var errNoLease = errors.New("cluster: no hot read here")

// hotGet asks the leader at addr for the item and a lease (holder side).
func (n *Node) hotGet(ctx context.Context, addr, tenant, id string) (*item.Item, error) {
	key := leaseKey(tenant, id)
	gen := n.hot.copies.beginGet(key)
	sent := time.Now()
	out, err := n.cfg.Client.Call(ctx, addr, wire.MethodHotGet, wire.AppendRequest(nil, &wire.Request{Tenant: tenant, ID: id}))
	if err != nil {
		// An item that is not there is an answer; anything else (a
		// leader that moved, a peer without hot reads) is read the plain
		// way, which knows how to retry.
		var re *transport.RemoteError
		if errors.As(err, &re) && re.Code == wire.CodeNotFound {
			return nil, wire.Error(re.Code, re.Message)
		}
		return nil, errNoLease
	}
	d := codec.Decoder{B: out, Fail: errors.New("cluster: a malformed hot read answer")}
	us := d.Uvarint()
	if d.Err != nil || us > uint64(time.Minute/time.Microsecond) {
		return nil, errNoLease
	}
	it, _, err := wire.DecodeItem(d.B)
	if err != nil {
		return nil, errNoLease
	}
	if us > 0 && n.hotReads.Load() {
		n.hot.copies.put(key, it, sent.Add(time.Duration(us)*time.Microsecond), gen)
	}
	cp := *it
	return &cp, nil
}

// handleHotGet answers a hot read (leader side).
func (n *Node) handleHotGet(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	r, err := wire.DecodeRequest(req)
	if err != nil || r.Tenant == "" || r.ID == "" {
		return nil, itemrpc.Error(fmt.Errorf("%w: a malformed hot read", item.ErrInvalid))
	}
	part := core.PartitionOf(r.Tenant, r.ID, n.core.Partitions())
	since, leads := n.core.LeadingSince(part)
	if !leads {
		return nil, itemrpc.Error(fmt.Errorf("%w (partition %d)", wire.ErrNotLeader, part))
	}
	// The caller asks only for items hot where it reads them (hotRead).
	// Leases go to proven members only: the leader must reach a holder to
	// end its lease, and a stranger with a core certificate could only
	// make writes wait its leases out.
	key := leaseKey(r.Tenant, r.ID)
	seq, ok := uint64(0), false
	if _, member := (*n.alive.Load())[core.RaftID(peer.ID())]; member && n.hotReads.Load() {
		seq, ok = n.hot.leases.prepare(key)
	}
	it, err := n.core.Get(ctx, r.Tenant, r.ID)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	var us uint64
	// Only a leader that led throughout the read grants: the read was then
	// confirmed by its own quorum (see above). A replica that stopped
	// leading meanwhile read through another leader, which would not know
	// of the lease.
	if again, leads := n.core.LeadingSince(part); ok && leads && again.Equal(since) {
		d := n.hot.duration
		if n.hot.leases.grant(key, seq, peer.ID(), time.Now().Add(time.Duration(float64(d)*leaseSlack))) {
			us = uint64(d / time.Microsecond)
		}
	}
	out := binary.AppendUvarint(nil, us)
	return wire.AppendItem(out, it, false), nil
}

// handleHotInvalidate drops the copies a leader is about to write (holder
// side).
func (n *Node) handleHotInvalidate(_ context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
	d := codec.Decoder{B: req, Fail: errors.New("cluster: a malformed invalidation")}
	for len(d.B) > 0 && d.Err == nil {
		r, err := wire.DecodeRequest(d.Bytes())
		if err != nil {
			return nil, itemrpc.Error(fmt.Errorf("%w: a malformed invalidation", item.ErrInvalid))
		}
		n.hot.copies.drop(leaseKey(r.Tenant, r.ID))
	}
	if d.Err != nil {
		return nil, itemrpc.Error(fmt.Errorf("%w: a malformed invalidation", item.ErrInvalid))
	}
	return nil, nil
}

// beforeWrite ends every lease on the item before this node, leading
// its partition, writes it; the returned func marks the write done. A
// holder that does not confirm in time is waited out: its lease ends.
func (n *Node) beforeWrite(ctx context.Context, tenant, id string) func() {
	key := leaseKey(tenant, id)
	holders := n.hot.leases.begin(key, time.Now())
	if len(holders) > 0 {
		n.invalidate(ctx, map[string][]holder{key: holders})
	}
	return func() { n.hot.leases.end(key) }
}

// beforeTransfer ends every lease of partition part before its leadership
// moves: raft lets a transferee lead at once, inside the election timeout
// the leases' safety otherwise rests on.
func (n *Node) beforeTransfer(ctx context.Context, part int) {
	parts := n.core.Partitions()
	byKey := n.hot.leases.take(part, func(key string) int {
		tenant, id, _ := strings.Cut(key, "\x00")
		return core.PartitionOf(tenant, id, parts)
	}, time.Now())
	if len(byKey) > 0 {
		n.invalidate(ctx, byKey)
	}
}

// invalidate tells each holder to drop its leases on the keys, one call
// per holder, and returns once each confirmed or its last lease ended.
func (n *Node) invalidate(ctx context.Context, byKey map[string][]holder) {
	type batch struct {
		req   []byte
		until time.Time
	}
	calls := map[string]*batch{}
	for key, hs := range byKey {
		tenant, id, _ := strings.Cut(key, "\x00")
		r := wire.AppendRequest(nil, &wire.Request{Tenant: tenant, ID: id})
		for _, h := range hs {
			b := calls[h.node]
			if b == nil {
				b = &batch{}
				calls[h.node] = b
			}
			b.req = codec.AppendBytes(b.req, r)
			if h.until.After(b.until) {
				b.until = h.until
			}
		}
	}
	var wg sync.WaitGroup
	for node, b := range calls {
		n.hot.leases.invalidations.Add(1)
		wg.Go(func() {
			cctx, cancel := context.WithDeadline(ctx, b.until)
			defer cancel()
			if p, ok := (*n.alive.Load())[core.RaftID(node)]; ok {
				if _, err := n.cfg.Client.Call(cctx, p.QUICAddr, wire.MethodHotInvalidate, b.req); err == nil {
					return
				}
			}
			// Not confirmed: the lease must end on its own.
			t := time.NewTimer(time.Until(b.until))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				<-t.C // the write must not go ahead while a copy may be served
			}
		})
	}
	wg.Wait()
}

// leaderWrite runs write, a write of the item by the local node, once
// every lease on the item has ended (beforeWrite).
func (n *Node) leaderWrite(ctx context.Context, tenant, id string, write func() error) error {
	if id == "" {
		return write()
	}
	done := n.beforeWrite(ctx, tenant, id)
	defer done()
	return write()
}

// leaderWrites is the local node as the item methods reach it for
// requests other cores forwarded: its writes end the item's leases first.
type leaderWrites struct {
	*core.Node
	n *Node
}

func (l leaderWrites) Add(ctx context.Context, tenant string, in *item.Item) (it *item.Item, err error) {
	err = l.n.leaderWrite(ctx, tenant, in.ID, func() (err error) { it, err = l.Node.Add(ctx, tenant, in); return err })
	return it, err
}

func (l leaderWrites) Put(ctx context.Context, tenant string, in *item.Item, cond item.Cond) (it *item.Item, created bool, err error) {
	err = l.n.leaderWrite(ctx, tenant, in.ID, func() (err error) { it, created, err = l.Node.Put(ctx, tenant, in, cond); return err })
	return it, created, err
}

func (l leaderWrites) Patch(ctx context.Context, tenant, id string, p *item.Patch, cond item.Cond) (it *item.Item, err error) {
	err = l.n.leaderWrite(ctx, tenant, id, func() (err error) { it, err = l.Node.Patch(ctx, tenant, id, p, cond); return err })
	return it, err
}

func (l leaderWrites) Delete(ctx context.Context, tenant, id string, cond item.Cond) error {
	return l.n.leaderWrite(ctx, tenant, id, func() error { return l.Node.Delete(ctx, tenant, id, cond) })
}

// hotRead answers a linearizable read of an item this node does not lead
// from a leased copy, or asks the leader for the item and a lease.
// errNoLease: the caller reads the plain way.
func (n *Node) hotRead(ctx context.Context, tenant, id string) (*item.Item, error) {
	key := leaseKey(tenant, id)
	if it, ok := n.hot.copies.get(key, time.Now()); ok {
		return it, nil
	}
	if !n.hot.sketch.count(key, n.hot.share()) {
		return nil, errNoLease
	}
	addr, here, ok := n.LeaderAddr(core.PartitionOf(tenant, id, n.core.Partitions()))
	if here || !ok {
		return nil, errNoLease
	}
	n.forwarded.Add(1)
	return n.hotGet(ctx, addr, tenant, id)
}
