package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
)

// Finds on a cluster: scatter-gather by partition. The node asked splits
// the partitions among itself and the members holding the rest (cover),
// every member runs the find over its share (FindIn, wire.MethodFind with
// the partitions named) and the answers are merged (query.Merge: the K
// nearest, or id order with one cursor for every partition).
//
// A find has a time budget (Config.FindTimeout). Each member first brings
// its replicas of its share up to date with their leaders, each partition
// on its own, so one partition without a leader (an election under way,
// a quorum lost) is named in the answer's Missing while the rest answer.
// A member that does not answer at all loses its share to the other
// members holding those partitions, once, in the quarter of the budget
// kept for that. Whatever is still unanswered is named: a find's answer
// is complete, or partial and says where — never silently short.

// DefaultFindTimeout is Config.FindTimeout's default: longer than an
// election, so that a find started as a leader dies still answers in
// full, and short enough for an interactive caller.
const DefaultFindTimeout = 5 * time.Second

// findFanOut bounds the partitions of one find catching up at once on a
// member: raft batches the read-index rounds of one driver cycle.
const findFanOut = 64

// GlobalFind runs a find of scope global: in every region, merged.
type GlobalFind func(ctx context.Context, tenant string, q *query.Query) (*query.Result, error)

// SetGlobalFind makes finds of scope global run on g (the federation's);
// without one, this cluster is every region there is and they run here.
func (n *Node) SetGlobalFind(g GlobalFind) { n.global.Store(&g) }

// FindScattered implements query.Scatterer: q over every partition of
// tenant, each member answering for its share — or, for scope global, the
// federation's find (SetGlobalFind).
func (n *Node) FindScattered(ctx context.Context, tenant string, q *query.Query) (*query.Result, error) {
	if g := n.global.Load(); g != nil && q.Scope == "global" {
		return (*g)(ctx, tenant, q)
	}
	budget := n.cfg.FindTimeout
	if d, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(d))
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	raw := q.AppendJSON(nil)
	var results []*query.Result
	var pending []int // nil: every partition
	skip := map[string]bool{}
	for round := 0; ; round++ {
		// Members that do not say what they hold within a fifth of the
		// budget are passed over: a crashed one is still listed until
		// gossip notices.
		ictx, icancel := context.WithTimeout(ctx, budget/5)
		local, shares, unanswered, err := n.coverOf(ictx, pending, skip)
		icancel()
		if err != nil {
			return nil, err
		}
		rctx, rcancel := ctx, context.CancelFunc(func() {})
		if round == 0 {
			// A quarter of the budget is kept for a second round.
			deadline, _ := ctx.Deadline()
			rctx, rcancel = context.WithDeadline(ctx, deadline.Add(-budget/4))
		}
		got := make([]*query.Result, len(shares)+1)
		errs := make([]error, len(shares)+1)
		var wg sync.WaitGroup
		if len(local) > 0 {
			wg.Go(func() { got[0], errs[0] = n.FindIn(rctx, tenant, q, local) })
		}
		for i, sh := range shares {
			wg.Go(func() {
				// The member's answer must arrive before the deadline.
				left := time.Until(deadlineOf(rctx)) * 9 / 10
				peer := n.remote(sh)
				got[i+1], errs[i+1] = peer.FindIn(rctx, tenant, raw, sh.parts, left)
				if errs[i+1] == nil {
					errs[i+1] = checkMissing(got[i+1], sh.parts)
				}
			})
		}
		wg.Wait()
		rcancel()
		pending = unanswered
		for i, err := range errs {
			var inv *item.InvalidError
			switch {
			case err == nil:
				if got[i] != nil {
					results = append(results, got[i])
				}
			case errors.As(err, &inv):
				return nil, err // the query is at fault, not the member
			case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
				return nil, ctx.Err() // the caller left
			case i == 0:
				pending = append(pending, local...)
			default:
				n.cfg.Logger.Debug("a member did not answer its share of a find", "member", shares[i-1].peer.ID, "err", err)
				pending = append(pending, shares[i-1].parts...)
				skip[shares[i-1].peer.ID] = true
			}
		}
		if len(pending) == 0 || round == 1 || ctx.Err() != nil {
			break
		}
	}
	if len(pending) > 0 {
		slices.Sort(pending)
		miss := &query.Result{}
		for _, p := range pending {
			miss.Missing = append(miss.Missing, query.PartName(p))
		}
		results = append(results, miss)
	}
	return query.Merge(q, results, nil)
}

// FindIn runs q over partitions parts of this node's replicas: a member's
// share of a scattered find (itemrpc.PartsFinder). Unless q asks for
// stale reads, each partition first catches up with its leader, all at
// once (findFanOut at a time), so the answer holds every write
// acknowledged before the call; the find then reads the local replicas,
// and, for a find by vector, this node's index. A partition that cannot
// catch up in time — no leader, no replica here — is named in the
// result's Missing instead of failing the others.
func (n *Node) FindIn(ctx context.Context, tenant string, q *query.Query, parts []int) (*query.Result, error) {
	nparts := n.core.Partitions()
	seen := make([]bool, nparts)
	for _, p := range parts {
		if p < 0 || p >= nparts || seen[p] {
			return nil, item.Invalid("invalid_partition", "partition %d does not exist or is named twice", p)
		}
		seen[p] = true
	}
	// Catching up leaves a fifth of the time, at least, for the find.
	cctx, cancel := context.WithDeadline(ctx, time.Now().Add(time.Until(deadlineOf(ctx))*4/5))
	defer cancel()
	ok := make([]bool, len(parts))
	if q.Consistency == "stale" {
		held, err := n.heldPartitions(ctx)
		if err != nil {
			return nil, err
		}
		for i, p := range parts {
			ok[i] = slices.Contains(held, p)
		}
	} else {
		var g errgroup.Group
		g.SetLimit(findFanOut)
		for i, p := range parts {
			g.Go(func() error {
				ok[i] = n.core.CatchUp(cctx, p) == nil
				return nil
			})
		}
		_ = g.Wait()
	}
	var ready []int
	res := &query.Result{}
	for i, p := range parts {
		if ok[i] {
			ready = append(ready, p)
		} else {
			res.Missing = append(res.Missing, query.PartName(p))
		}
	}
	if len(ready) == 0 {
		return res, nil
	}
	sq := *q
	sq.Consistency = "stale" // caught up: the local replicas are as fresh
	found, err := query.Find(item.WithStaleReads(ctx), partsSource{n, ready}, tenant, &sq)
	if err != nil {
		return nil, err
	}
	found.Missing = res.Missing
	return found, nil
}

// partsSource is what FindIn's find reads: the local replicas of parts,
// their metadata indexes (query.WhereLister) and this node's vector index
// restricted to them (query.Indexed).
type partsSource struct {
	n     *Node
	parts []int
}

func (s partsSource) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	return s.n.core.ListPartitions(ctx, tenant, opts, s.parts)
}

func (s partsSource) ListWhere(ctx context.Context, tenant string, opts item.ListOptions, where *query.Filter) (*item.Page, error) {
	return s.n.core.ListWhereIn(ctx, tenant, opts, s.parts, where)
}

func (s partsSource) Nearest(_ context.Context, tenant, typ string, vec []float32, max int, where *query.Filter) ([]string, bool) {
	return s.n.core.NearestIn(tenant, typ, vec, max, where, s.parts)
}

func (s partsSource) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	return s.n.core.Get(ctx, tenant, id)
}

// checkMissing checks that a member's answer names as missing only
// partitions it was asked for: anything else is a malformed answer.
func checkMissing(res *query.Result, asked []int) error {
	for _, m := range res.Missing {
		p, err := strconv.Atoi(strings.TrimPrefix(m, "p"))
		if err != nil || query.PartName(p) != m || !slices.Contains(asked, p) {
			return fmt.Errorf("cluster: a find's answer names %q missing, which it was not asked for", m)
		}
	}
	return nil
}

// deadlineOf is ctx's deadline, or a minute from now without one.
func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(time.Minute)
}
