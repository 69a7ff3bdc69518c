package cluster

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// Lists on a cluster larger than the replication factor: no node holds
// every partition, so the node asked lists the partitions it holds, asks
// other members for the rest (each answering for partitions it holds,
// MethodListPartitions), and merges the pages. Items are ordered by id
// across partitions, so the first limit items of the merged pages are the
// first limit of the whole list, and the cursor (the last id) works for
// every partition alike.

var errMalformedListRequest = errors.New("cluster: malformed partition list request")

func appendListPartitions(r *wire.Request, parts []int) []byte {
	out := codec.AppendBytes(nil, wire.AppendRequest(nil, r))
	out = binary.AppendUvarint(out, uint64(len(parts)))
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(p))
	}
	return out
}

func (n *Node) handleListPartitions(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
	d := codec.Decoder{B: req, Fail: errMalformedListRequest}
	r, err := wire.DecodeRequest(d.Bytes())
	if d.Err != nil || err != nil {
		return nil, core.RPCError(item.Invalid("malformed_request", "%v", errors.Join(d.Err, err)))
	}
	count := d.Uvarint()
	if d.Err != nil || count > uint64(n.core.Partitions()) {
		return nil, core.RPCError(item.Invalid("malformed_request", "%v", errMalformedListRequest))
	}
	parts := make([]int, 0, count)
	for range count {
		parts = append(parts, int(d.Uvarint()))
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, core.RPCError(item.Invalid("malformed_request", "%v", errMalformedListRequest))
	}
	if r.Stale {
		ctx = item.WithStaleReads(ctx)
	}
	p, err := n.core.ListPartitions(ctx, r.Tenant, r.List, parts)
	if err != nil {
		return nil, core.RPCError(err)
	}
	return wire.AppendPage(nil, p), nil
}

// heldPartitions returns the partitions this node holds a replica of.
func (n *Node) heldPartitions(ctx context.Context) ([]int, error) {
	st, err := n.core.Raft().Status(ctx)
	if err != nil {
		return nil, err
	}
	held := make([]int, 0, len(st))
	for _, g := range st {
		held = append(held, int(g.Group))
	}
	return held, nil
}

// listAcross is List when the local node lacks partitions.
func (n *Node) listAcross(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	local, err := n.heldPartitions(ctx)
	if err != nil {
		return nil, err
	}
	missing := map[int]bool{}
	for p := range n.core.Partitions() {
		missing[p] = true
	}
	for _, p := range local {
		delete(missing, p)
	}
	// Cover the missing partitions with other members, each taking what it
	// holds of what is still missing.
	type share struct {
		peer  Peer
		parts []int
	}
	var shares []share
	members := n.cfg.Directory.Members()
	slices.SortFunc(members, func(a, b Peer) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range members {
		if len(missing) == 0 {
			break
		}
		if p.ID == n.cfg.Core.NodeID {
			continue
		}
		in, err := n.askInfo(ctx, p)
		if err != nil {
			continue
		}
		var mine []int
		for _, h := range in.Held {
			if missing[h] {
				mine = append(mine, h)
				delete(missing, h)
			}
		}
		if len(mine) > 0 {
			shares = append(shares, share{p, mine})
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: no member answered for %d partitions", item.ErrUnavailable, len(missing))
	}
	pages := make([]*item.Page, len(shares)+1)
	errs := make([]error, len(shares)+1)
	var wg sync.WaitGroup
	wg.Go(func() { pages[0], errs[0] = n.core.ListPartitions(ctx, tenant, opts, local) })
	req := &wire.Request{Tenant: tenant, List: opts, Stale: item.StaleReads(ctx)}
	for i, sh := range shares {
		wg.Go(func() {
			out, err := n.cfg.Client.Call(ctx, sh.peer.QUICAddr, wire.MethodListPartitions, appendListPartitions(req, sh.parts))
			var re *transport.RemoteError
			switch {
			case errors.As(err, &re):
				errs[i+1] = wire.Error(re.Code, re.Message)
			case err != nil:
				errs[i+1] = fmt.Errorf("%w: listing on %s: %v", item.ErrUnavailable, sh.peer.ID, err)
			default:
				pages[i+1], errs[i+1] = wire.DecodePage(out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return mergePages(pages, opts.Limit), nil
}

// mergePages merges pages of disjoint partitions sorted by id into the
// first limit items, with a cursor if any page had more.
func mergePages(pages []*item.Page, limit int) *item.Page {
	if limit <= 0 {
		limit = item.DefaultListLimit
	}
	out := &item.Page{Items: []*item.Item{}}
	more := false
	for _, p := range pages {
		out.Items = append(out.Items, p.Items...)
		more = more || p.Cursor != ""
	}
	slices.SortFunc(out.Items, func(a, b *item.Item) int { return cmp.Compare(a.ID, b.ID) })
	if len(out.Items) > limit {
		out.Items, more = out.Items[:limit], true
	}
	if more && len(out.Items) > 0 {
		out.Cursor = core.ListCursor(out.Items[len(out.Items)-1].ID)
	}
	return out
}
