package claim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Key layout under the bucket (or the adapter's prefix).
const (
	// ClusterPrefix holds cluster metadata; no node id maps into it.
	ClusterPrefix = "_cluster/"
	// ClaimsPrefix holds one claim record per node: ClaimsPrefix + "node-<id>".
	ClaimsPrefix = ClusterPrefix + "claims/"
	// LeaderKey is the conventional key of the cluster leader's Lease.
	LeaderKey = ClusterPrefix + "leader"
)

// Claim is a node's ownership of the key prefix "node-<id>/". It is a Lease on the
// record ClaimsPrefix + "node-<id>": Held, Lost, Err and Release are the lease's.
type Claim struct {
	*Lease
	id string
}

// NodeID returns the claimed node id, e.g. "1".
func (c *Claim) NodeID() string { return c.id }

// Prefix returns the key prefix the node owns, "node-<id>/".
func (c *Claim) Prefix() string { return "node-" + c.id + "/" }

// Acquire claims a node id in objs, as the package doc describes: cfg.NodeID if
// set (waiting up to one TTL on a holder that may be dead, and failing with a
// *HeldError naming a live one), else a numbered slot, without waiting.
func Acquire(ctx context.Context, objs objstore.Store, cfg Config) (*Claim, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NodeID == "" {
		return acquireAny(ctx, objs, cfg)
	}
	l := newLease(objs, ClaimsPrefix+"node-"+cfg.NodeID, "node-"+cfg.NodeID, cfg.LeaseConfig)
	if err := l.take(ctx, true); err != nil {
		var he *HeldError
		if errors.As(err, &he) {
			he.What, he.Holder = "node-"+cfg.NodeID+"/", ""
			he.Hint = "; is another brainy-core running with this storage?"
		}
		return nil, err
	}
	return &Claim{Lease: l, id: cfg.NodeID}, nil
}

// acquireAny takes the first free numbered slot in this order: a slot of this
// machine that was released or whose process died (so a restarted node gets its
// data back), then the lowest slot that is absent or released. It never waits:
// a slot that looks alive is skipped.
func acquireAny(ctx context.Context, objs objstore.Store, cfg Config) (*Claim, error) {
	const pre = ClaimsPrefix + "node-"
	var slots []int
	err := objs.List(ctx, pre, func(key string, _ int64) error {
		id := strings.TrimPrefix(key, pre)
		if n, err := strconv.Atoi(id); err == nil && n >= 1 && strconv.Itoa(n) == id {
			slots = append(slots, n) // others are explicitly named nodes
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim: list %s: %w", ClaimsPrefix, err)
	}
	taken := map[int]bool{} // slots with a record that is not released
	var mine []int          // slots this machine may take back
	proc := procIdentity()
	for _, n := range slots {
		body, _, err := objs.Get(ctx, pre+strconv.Itoa(n))
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim: read slot %d: %w", n, err)
		}
		r, ok := decode(body)
		if !ok || !r.Released {
			taken[n] = true
		}
		if ok && r.Host == cfg.Host && (r.Released || deadHere(r, cfg.Host, proc)) {
			mine = append(mine, n)
		}
	}
	sort.Ints(mine)
	try := func(n int) (*Claim, error) {
		id := strconv.Itoa(n)
		l := newLease(objs, ClaimsPrefix+"node-"+id, "node-"+id, cfg.LeaseConfig)
		if err := l.take(ctx, false); err != nil {
			return nil, err
		}
		return &Claim{Lease: l, id: id}, nil
	}
	for _, n := range mine {
		c, err := try(n)
		if !errors.Is(err, ErrHeld) {
			return c, err
		}
	}
	// Slots taken by live holders are skipped; a slot that was free when listed
	// but is taken now fails with ErrHeld, and the next one is tried. Each
	// contender takes at most one slot, so this ends.
	for n := 1; ; n++ {
		if taken[n] {
			continue
		}
		c, err := try(n)
		if !errors.Is(err, ErrHeld) {
			return c, err
		}
	}
}
