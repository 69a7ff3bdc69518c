package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/itemrpc"
)

// Lists on a cluster larger than the replication factor: no node holds
// every partition, so the node asked lists the partitions it holds, asks
// other members for the rest (each answering for partitions it holds,
// MethodListPartitions), and merges the pages. Items are ordered by id
// across partitions, and the cursor (the last id) works for every
// partition alike. A node's page ends at the limit or at its byte budget,
// whichever comes first, so the merged page may take items only up to the
// end of the shortest page that has more to come: past it, that node holds
// items the merge has not seen.

// heldPartitions returns the partitions this node holds a replica of.
func (n *Node) heldPartitions(ctx context.Context) ([]int, error) {
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return nil, err
	}
	held := make([]int, 0, len(st))
	for _, g := range st {
		held = append(held, int(g.Group))
	}
	return held, nil
}

// share is the partitions a member answers for.
type share struct {
	peer  Peer
	parts []int
}

// cover splits the partitions among this node (local, the ones it holds)
// and other members (shares), each member taking what it holds of what is
// still missing, in id order. item.ErrUnavailable when no member answers
// for some.
func (n *Node) cover(ctx context.Context) (local []int, shares []share, err error) {
	local, shares, unanswered, err := n.coverOf(ctx, nil, nil)
	if err == nil && len(unanswered) > 0 {
		err = fmt.Errorf("%w: no member answered for %d partitions", item.ErrUnavailable, len(unanswered))
	}
	if err != nil {
		return nil, nil, err
	}
	return local, shares, nil
}

// coverOf is cover of the partitions want (nil: all), asking no member
// in skip, and naming the partitions no member answered for. Members are
// asked what they hold all at once.
func (n *Node) coverOf(ctx context.Context, want []int, skip map[string]bool) (local []int, shares []share, unanswered []int, err error) {
	held, err := n.heldPartitions(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	missing := map[int]bool{}
	if want == nil {
		for p := range n.core.Partitions() {
			missing[p] = true
		}
	} else {
		for _, p := range want {
			missing[p] = true
		}
	}
	for _, p := range held {
		if missing[p] {
			local = append(local, p)
			delete(missing, p)
		}
	}
	var members []Peer
	for _, p := range n.cfg.Directory.Members() {
		if p.ID != n.cfg.Core.NodeID && !skip[p.ID] {
			members = append(members, p)
		}
	}
	slices.SortFunc(members, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	infos := make([]*Info, len(members))
	if len(missing) > 0 {
		var wg sync.WaitGroup
		for i, p := range members {
			wg.Go(func() {
				if in, err := n.askInfo(ctx, p); err == nil {
					infos[i] = &in
				}
			})
		}
		wg.Wait()
	}
	for i, p := range members {
		if len(missing) == 0 {
			break
		}
		if infos[i] == nil {
			continue
		}
		var mine []int
		for _, h := range infos[i].Held {
			if missing[h] {
				mine = append(mine, h)
				delete(missing, h)
			}
		}
		if len(mine) > 0 {
			shares = append(shares, share{p, mine})
		}
	}
	for p := range missing {
		unanswered = append(unanswered, p)
	}
	slices.Sort(unanswered)
	return local, shares, unanswered, nil
}

// remote calls the member of sh over QUIC.
func (n *Node) remote(sh share) itemrpc.Remote {
	return itemrpc.Remote{Call: func(ctx context.Context, method uint16, _ itemrpc.Target, req []byte) ([]byte, error) {
		return n.cfg.Client.Call(ctx, sh.peer.QUICAddr, method, req)
	}}
}

// listAcross is List when the local node lacks partitions.
func (n *Node) listAcross(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	local, shares, err := n.cover(ctx)
	if err != nil {
		return nil, err
	}
	pages := make([]*item.Page, len(shares)+1)
	errs := make([]error, len(shares)+1)
	var wg sync.WaitGroup
	wg.Go(func() { pages[0], errs[0] = n.core.ListPartitions(ctx, tenant, opts, local) })
	for i, sh := range shares {
		wg.Go(func() {
			peer := n.remote(sh)
			pages[i+1], errs[i+1] = peer.ListPartitions(ctx, tenant, opts, sh.parts)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return MergePages(pages, opts.Limit, nil), nil
}

// Conflicts implements item.ConflictLog: the local node's conflict log,
// or, when it lacks partitions, the merged pages of the members holding
// them. Each region logs the conflicts it resolved (core/conflicts.go).
func (n *Node) Conflicts(ctx context.Context, tenant string, opts item.ConflictOptions) (*item.ConflictPage, error) {
	p, err := n.core.Conflicts(ctx, tenant, opts, nil)
	if !errors.Is(err, core.ErrNotHere) {
		return p, err
	}
	local, shares, err := n.cover(ctx)
	if err != nil {
		return nil, err
	}
	pages := make([]*item.ConflictPage, len(shares)+1)
	errs := make([]error, len(shares)+1)
	var wg sync.WaitGroup
	wg.Go(func() { pages[0], errs[0] = n.core.Conflicts(ctx, tenant, opts, local) })
	for i, sh := range shares {
		wg.Go(func() {
			peer := n.remote(sh)
			pages[i+1], errs[i+1] = peer.Conflicts(ctx, tenant, opts, sh.parts)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Each node's page holds its partitions' first entries past the start;
	// merged, they make the page, and the cursor moves past what it took.
	limit, start := opts.Limit, item.ConflictCursor{}
	if limit <= 0 {
		limit = item.DefaultListLimit
	}
	if start, err = opts.Start(); err != nil {
		return nil, err
	}
	lists := make([][]*item.Conflict, len(pages))
	more := false
	for i, pg := range pages {
		lists[i] = pg.Conflicts
		more = more || pg.Cursor != ""
	}
	taken, left := core.MergeConflicts(lists, limit)
	out := &item.ConflictPage{Conflicts: []*item.Conflict{}}
	var budget core.PageBudget
	for _, c := range taken {
		if !budget.Add(c.Loser) {
			left = true
			break
		}
		out.Conflicts = append(out.Conflicts, c)
	}
	core.ConflictCursors(out, start, more || left)
	return out, nil
}

// MergePages merges pages, each sorted by id and cut by count or bytes,
// into a page of the whole list: the first items up to limit and
// core.PageBudget, none past the last item of a page that has more to
// come, and a cursor if anything is left. Pages of disjoint partitions
// pass a nil newer; pages that may name the same id (other regions' lists
// of the same items) keep, of each id, the item newer says is newer.
func MergePages(pages []*item.Page, limit int, newer func(a, b *item.Item) bool) *item.Page {
	if limit <= 0 {
		limit = item.DefaultListLimit
	}
	var all []*item.Item
	at := map[string]int{} // id → index in all, when newer is set
	more, bounded, end := false, false, ""
	for _, p := range pages {
		for _, it := range p.Items {
			if newer == nil {
				all = append(all, it)
			} else if i, ok := at[it.ID]; !ok {
				at[it.ID] = len(all)
				all = append(all, it)
			} else if newer(it, all[i]) {
				all[i] = it
			}
		}
		if p.Cursor == "" {
			continue
		}
		more = true
		if n := len(p.Items); n > 0 && (!bounded || p.Items[n-1].ID < end) {
			bounded, end = true, p.Items[n-1].ID
		}
	}
	slices.SortFunc(all, func(a, b *item.Item) int { return cmp.Compare(a.ID, b.ID) })
	out := &item.Page{Items: []*item.Item{}}
	var budget core.PageBudget
	for _, it := range all {
		if len(out.Items) == limit || bounded && it.ID > end || !budget.Add(it) {
			more = true
			break
		}
		out.Items = append(out.Items, it)
	}
	if more && len(out.Items) > 0 {
		out.Cursor = core.ListCursor(out.Items[len(out.Items)-1].ID)
	}
	return out
}
