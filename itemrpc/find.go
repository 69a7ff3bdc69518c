package itemrpc

import (
	"context"
	"fmt"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// MaxFindAnswerBytes bounds a find's encoded answer to three quarters of a
// transport frame (3 MiB of transport.DefaultMaxFrameBytes' 4): a find
// whose items hold more is refused with a 400 naming what to lower, not
// sent.
const MaxFindAnswerBytes = transport.DefaultMaxFrameBytes / 4 * 3

// RegisterFind serves wire.MethodFind on s: finds run on src (a node or a
// cluster, which answers from its vector index where it has one),
// their queries parsed with lim, the limits of the node's HTTP API (zero
// fields: the defaults).
func RegisterFind(s *transport.Server, lim item.Limits, src query.Lister) {
	lim.EnsureDefaults()
	s.Handle(wire.MethodFind, func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		tenant, raw, err := wire.DecodeFindRequest(req)
		if err != nil {
			return nil, Error(item.Invalid("malformed_request", "%v", err))
		}
		if err := lim.CheckTenant(tenant); err != nil {
			return nil, Error(err)
		}
		if len(raw) > lim.MaxBodyBytes {
			return nil, Error(item.Invalid("body_too_large", "the find is larger than the limit of %d bytes", lim.MaxBodyBytes))
		}
		q, err := query.Parse(raw, lim)
		if err != nil {
			return nil, Error(err)
		}
		res, err := query.Find(ctx, src, tenant, q)
		if err != nil {
			return nil, Error(err)
		}
		items, scores := make([]*item.Item, len(res.Hits)), make([]float64, len(res.Hits))
		for i, h := range res.Hits {
			items[i], scores[i] = h.Item, h.Score
		}
		out := wire.AppendFindAnswer(nil, items, scores, res.Cursor)
		if len(out) > MaxFindAnswerBytes {
			return nil, Error(item.Invalid("result_too_large", "the answer holds %d bytes, more than a find through an edge carries (%d): ask for fewer items (near.k or limit)", len(out), MaxFindAnswerBytes))
		}
		return out, nil
	})
}

// Find runs the find whose JSON body (POST /v1/find) is raw on the remote
// core (RegisterFind on its side).
func (r *Remote) Find(ctx context.Context, tenant string, raw []byte) (*query.Result, error) {
	out, err := r.Call(ctx, wire.MethodFind, Target{Tenant: tenant}, wire.AppendFindRequest(nil, tenant, raw))
	if err = answerError(ctx, err, wire.MethodFind); err != nil {
		return nil, err
	}
	items, scores, cursor, err := wire.DecodeFindAnswer(out)
	if err != nil {
		return nil, malformed(fmt.Errorf("find: %w", err))
	}
	res := &query.Result{Hits: make([]query.Hit, len(items)), Cursor: cursor}
	for i, it := range items {
		res.Hits[i] = query.Hit{Item: it, Score: scores[i]}
	}
	return res, nil
}
