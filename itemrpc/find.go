package itemrpc

import (
	"context"
	"fmt"
	"time"

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

// PartsFinder runs a find over some of its partitions only: a cluster
// member's share of a scattered find (cluster.Node.FindIn).
type PartsFinder interface {
	FindIn(ctx context.Context, tenant string, q *query.Query, parts []int) (*query.Result, error)
}

// RegisterFind serves wire.MethodFind on s: finds run on src (a node or a
// cluster, which answers from its vector index where it has one), their
// queries parsed with lim, the limits of the node's HTTP API (zero
// fields: the defaults). A request naming partitions runs on src's
// PartsFinder, which src must then be.
func RegisterFind(s *transport.Server, lim item.Limits, src query.Lister) {
	lim.EnsureDefaults()
	s.Handle(wire.MethodFind, func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		r, err := wire.DecodeFindRequest(req)
		if err != nil {
			return nil, Error(item.Invalid("malformed_request", "%v", err))
		}
		return RunFind(ctx, lim, r, func(ctx context.Context, q *query.Query) (*query.Result, error) {
			if len(r.Parts) == 0 {
				return query.Find(ctx, src, r.Tenant, q)
			}
			pf, ok := src.(PartsFinder)
			if !ok {
				return nil, item.Invalid("not_supported", "this node does not answer for partitions")
			}
			return pf.FindIn(ctx, r.Tenant, q, r.Parts)
		})
	})
}

// RunFind answers the find request r: its tenant and query checked and
// parsed with lim (defaults filled in), run by find within r's budget,
// the answer encoded (EncodeFindResult); errors are already wire errors.
// The handlers of finds (RegisterFind, a federation's) share it.
func RunFind(ctx context.Context, lim item.Limits, r *wire.FindRequest, find func(context.Context, *query.Query) (*query.Result, error)) ([]byte, error) {
	lim.EnsureDefaults()
	if err := lim.CheckTenant(r.Tenant); err != nil {
		return nil, Error(err)
	}
	if len(r.Query) > lim.MaxBodyBytes {
		return nil, Error(item.Invalid("body_too_large", "the find is larger than the limit of %d bytes", lim.MaxBodyBytes))
	}
	q, err := query.Parse(r.Query, lim)
	if err != nil {
		return nil, Error(err)
	}
	if r.Budget > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Budget)
		defer cancel()
	}
	res, err := find(ctx, q)
	if err != nil {
		return nil, Error(err)
	}
	out, err := EncodeFindResult(res)
	if err != nil {
		return nil, Error(err)
	}
	return out, nil
}

// EncodeFindResult encodes res as a find's answer (wire.AppendFindAnswer),
// or refuses it with result_too_large past MaxFindAnswerBytes.
func EncodeFindResult(res *query.Result) ([]byte, error) {
	a := &wire.FindAnswer{Items: make([]*item.Item, len(res.Hits)), Scores: make([]float64, len(res.Hits)), Cursor: res.Cursor, Missing: res.Missing}
	for i, h := range res.Hits {
		a.Items[i], a.Scores[i] = h.Item, h.Score
	}
	out := wire.AppendFindAnswer(nil, a)
	if len(out) > MaxFindAnswerBytes {
		return nil, item.Invalid("result_too_large", "the answer holds %d bytes, more than a find carries between nodes (%d): ask for fewer items (near.k or limit)", len(out), MaxFindAnswerBytes)
	}
	return out, nil
}

// DecodeFindResult decodes EncodeFindResult's encoding.
func DecodeFindResult(b []byte) (*query.Result, error) {
	a, err := wire.DecodeFindAnswer(b)
	if err != nil {
		return nil, err
	}
	res := &query.Result{Hits: make([]query.Hit, len(a.Items)), Cursor: a.Cursor, Missing: a.Missing}
	for i, it := range a.Items {
		res.Hits[i] = query.Hit{Item: it, Score: a.Scores[i]}
	}
	return res, nil
}

// Find runs the find whose JSON body (POST /v1/find) is raw on the remote
// core (RegisterFind on its side), within budget (zero: the core's own
// find timeout). A caller that gives up on a call after some time asks
// for less than that: the core then answers in time, partially if it
// must, rather than not at all.
func (r *Remote) Find(ctx context.Context, tenant string, raw []byte, budget time.Duration) (*query.Result, error) {
	return r.find(ctx, &wire.FindRequest{Tenant: tenant, Query: raw, Budget: min(budget, wire.MaxFindBudget)})
}

// FindIn runs the find whose JSON body is raw over partitions parts of the
// remote member (its PartsFinder), within budget (zero: the member's own
// find timeout).
func (r *Remote) FindIn(ctx context.Context, tenant string, raw []byte, parts []int, budget time.Duration) (*query.Result, error) {
	return r.find(ctx, &wire.FindRequest{Tenant: tenant, Query: raw, Parts: parts, Budget: min(budget, wire.MaxFindBudget)})
}

func (r *Remote) find(ctx context.Context, req *wire.FindRequest) (*query.Result, error) {
	out, err := r.Call(ctx, wire.MethodFind, Target{Tenant: req.Tenant}, wire.AppendFindRequest(nil, req))
	if err = answerError(ctx, err, wire.MethodFind); err != nil {
		return nil, err
	}
	res, err := DecodeFindResult(out)
	if err != nil {
		return nil, malformed(fmt.Errorf("find: %w", err))
	}
	return res, nil
}
