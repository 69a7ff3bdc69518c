package federation

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
)

// Global reads and lists: the guide's "clusters coordinate for global
// queries". A read is regional by default; these ask every region.
//
//	MethodFedVersion  request: flags byte, uvarint partition, string source region,
//	                           string tenant, string id
//	                  answer:  byte state (0 none, 1 live, 2 deleted), uvarint hlc, string origin
//	MethodFedList     request: flags byte, uvarint 0, string source region,
//	                           bytes wire.Request (a List)
//	                  answer:  wire.AppendPage
//	MethodFedMeta     request: as MethodFedVersion, within one region only
//	                  answer:  item.Meta as JSON (at most MaxRegions versions)
//	MethodFedFind     request: flags byte, uvarint 0, string source region,
//	                           bytes wire.FindRequest (the query's JSON, a budget)
//	                  answer:  wire.AppendFindAnswer (itemrpc.EncodeFindResult)
//
// A global read (?consistency=global) asks every region which version of
// the item it holds, takes the latest (by clock time, then region: the
// conflict rule), and waits until every region that answers holds it or
// something later, asking again every GlobalPoll; then it reads the item
// here. A region that does not answer (GlobalCallTimeout) is left out for
// the rest of the read: reachable regions only.
// Deletes count: a region holding a tombstone holds a version.

// GlobalPoll is how often a global read asks the regions again while
// waiting for its version to reach them all.
const GlobalPoll = 20 * time.Millisecond

// GlobalCallTimeout bounds one region's answer to a global read or list:
// a region that does not answer in time is left out, as unreachable.
const GlobalCallTimeout = time.Second

// DefaultGlobalTimeout bounds a global read or list whose context has no
// deadline.
const DefaultGlobalTimeout = 5 * time.Second

// itemVersion is an item's version as one region holds it.
type itemVersion struct {
	found, deleted bool
	hlc            uint64
	origin         string
}

// after reports whether v is later than w by the conflict rule.
func (v itemVersion) after(w itemVersion) bool {
	switch {
	case !v.found:
		return false
	case !w.found:
		return true
	case v.hlc != w.hlc:
		return v.hlc > w.hlc
	}
	return v.origin > w.origin
}

func (v itemVersion) String() string {
	switch {
	case !v.found:
		return "none"
	case v.deleted:
		return "deleted at " + core.FormatVersion(v.hlc, v.origin)
	}
	return core.FormatVersion(v.hlc, v.origin)
}

// GetGlobal reads tenant's item id once every reachable region holds its
// latest version (or a later one). It answers item.ErrNotEverywhere,
// naming the regions behind, when ctx (or DefaultGlobalTimeout) ends first.
func (f *Federation) GetGlobal(ctx context.Context, tenant, id string) (*item.Item, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultGlobalTimeout)
		defer cancel()
	}
	req := codec.AppendString(codec.AppendString(codec.AppendString(
		appendHeader(nil, false, core.PartitionOf(tenant, id, f.core.Partitions())), f.cfg.Region), tenant), id)
	var latest itemVersion
	gone := map[string]bool{}
	for {
		versions, err := askAll(f, ctx, wire.MethodFedVersion, req, decodeVersion, gone, GlobalCallTimeout)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			if v.err != nil {
				gone[v.region] = true // unreachable: not waited for
			}
		}
		var behind []string
		for _, v := range versions {
			if v.err == nil && v.answer.after(latest) {
				latest = v.answer
			}
		}
		for _, v := range versions {
			if v.err == nil && latest.after(v.answer) {
				behind = append(behind, v.region+" ("+v.answer.String()+")")
			}
		}
		if len(behind) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the latest is %s; behind: %s", item.ErrNotEverywhere, latest, strings.Join(behind, ", "))
		case <-time.After(GlobalPoll):
		}
	}
	return f.cfg.Cluster.Get(ctx, tenant, id)
}

// answer is one region's answer to askAll.
type answer[T any] struct {
	region string
	answer T
	err    error
}

// askAll sends req to this region (through the partition's leader) and
// to every other region not in skip at once, and decodes the answers. A
// region that fails, or does not answer within timeout (GlobalCallTimeout
// for reads and lists), is reported with its error; only this region's
// failure fails the call.
func askAll[T any](f *Federation, ctx context.Context, method uint16, req []byte, decode func([]byte) (T, error), skip map[string]bool, timeout time.Duration) ([]answer[T], error) {
	links := slices.DeleteFunc(f.allLinks(), func(l *link) bool { return skip[l.region] })
	out := make([]answer[T], len(links)+1)
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Go(func() {
			out[i+1].region = l.region
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			b, err := l.call(ctx, method, req)
			if err == nil {
				out[i+1].answer, err = decode(b)
			}
			out[i+1].err = err
		})
	}
	out[0].region = f.cfg.Region
	b, err := f.serve(ctx, method, req)
	if err == nil {
		out[0].answer, err = decode(b)
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return out, nil
}

// serve answers one of the global methods for this node itself.
func (f *Federation) serve(ctx context.Context, method uint16, req []byte) ([]byte, error) {
	switch method {
	case wire.MethodFedVersion:
		return f.version(ctx, req)
	case wire.MethodFedList:
		return f.list(ctx, req)
	case wire.MethodFedFind:
		return f.find(ctx, req)
	}
	return nil, fmt.Errorf("federation: method %d is not a global read", method)
}

// handleVersion, handleList, handleFind and handleMeta check the caller, then serve
// the request as this node would its own (serve, meta).
func (f *Federation) handleVersion(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := f.checkGlobal(peer, req, false); err != nil {
		return nil, err
	}
	return f.version(ctx, req)
}

func (f *Federation) handleList(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := f.checkGlobal(peer, req, false); err != nil {
		return nil, err
	}
	return f.list(ctx, req)
}

func (f *Federation) handleFind(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := f.checkGlobal(peer, req, false); err != nil {
		return nil, err
	}
	return f.find(ctx, req)
}

func (f *Federation) handleMeta(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := f.checkGlobal(peer, req, true); err != nil {
		return nil, err
	}
	return f.meta(ctx, req)
}

// checkGlobal admits a global read's caller: a core of the region the
// request names as its source (checkCaller), which must be this region
// when regional.
func (f *Federation) checkGlobal(peer *transport.Peer, req []byte, regional bool) error {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	source := d.String()
	if d.Err != nil {
		return itemrpc.Error(errBadRequest)
	}
	if regional && source != f.cfg.Region {
		return itemrpc.Error(fmt.Errorf("%w (this is asked within a region)", errCaller))
	}
	return f.checkCaller(peer, source, r.forwarded)
}

// decodeItemRequest decodes a global read about one item (source, tenant,
// id), which must belong to the partition the request names.
func (f *Federation) decodeItemRequest(req []byte) (r request, tenant, id string, err error) {
	if r, err = decodeRequest(req, f.core.Partitions()); err != nil {
		return r, "", "", itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	_ = d.String() // the source, checked by the handler
	tenant, id = d.String(), d.String()
	if d.Err != nil || len(d.B) != 0 || core.PartitionOf(tenant, id, f.core.Partitions()) != r.part {
		return r, "", "", itemrpc.Error(errBadRequest)
	}
	return r, tenant, id, nil
}

// version answers MethodFedVersion from the partition's leader in this
// region, passing the request there if need be.
func (f *Federation) version(ctx context.Context, req []byte) ([]byte, error) {
	r, tenant, id, err := f.decodeItemRequest(req)
	if err != nil {
		return nil, err
	}
	if answer, here, err := f.toLeader(ctx, wire.MethodFedVersion, r); !here {
		return answer, err
	}
	hlc, origin, deleted, found, err := f.core.ItemVersion(ctx, tenant, id)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	state := byte(0)
	switch {
	case found && deleted:
		state = 2
	case found:
		state = 1
	}
	return codec.AppendString(binary.AppendUvarint([]byte{state}, hlc), origin), nil
}

func decodeVersion(b []byte) (itemVersion, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	state := d.Byte()
	v := itemVersion{found: state != 0, deleted: state == 2, hlc: d.Uvarint(), origin: d.String()}
	if d.Err != nil || len(d.B) != 0 || state > 2 {
		return itemVersion{}, errors.New("federation: malformed version answer")
	}
	return v, nil
}

// ListGlobal lists tenant's items in every region and merges the pages:
// ordered by id, one entry per id (the later version where regions
// differ), and a cursor that works for the next page in every region.
// Regions that do not answer are named in Missing, the page Partial.
func (f *Federation) ListGlobal(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultGlobalTimeout)
		defer cancel()
	}
	lr := &wire.Request{Tenant: tenant, List: opts, Stale: item.StaleReads(ctx)}
	req := codec.AppendBytes(codec.AppendString(appendHeader(nil, false, 0), f.cfg.Region), wire.AppendRequest(nil, lr))
	pages, err := askAll(f, ctx, wire.MethodFedList, req, wire.DecodePage, nil, GlobalCallTimeout)
	if err != nil {
		return nil, err
	}
	var ok []*item.Page
	var missing []string
	for _, p := range pages {
		if p.err != nil {
			missing = append(missing, p.region)
			continue
		}
		ok = append(ok, p.answer)
	}
	out := mergeRegionPages(ok, opts.Limit)
	if len(missing) > 0 {
		out.Partial, out.Missing = true, missing
	}
	return out, nil
}

// FindGlobal runs q in every region (each scattering it over its own
// members) and merges the answers: where regions hold different copies of
// an item, the later one's hit (query.Merge). A region that does not
// answer in time is named in Missing, as is, "<region>/p<N>", a partition
// a region names. The budget is ctx's, or DefaultGlobalTimeout; each
// other region gets 9/10 of it, to answer in time. It implements
// cluster.GlobalFind.
func (f *Federation) FindGlobal(ctx context.Context, tenant string, q *query.Query) (*query.Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultGlobalTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline) * 9 / 10
	regional := *q
	regional.Scope = "region"
	fr := &wire.FindRequest{Tenant: tenant, Query: regional.AppendJSON(nil), Budget: min(left, wire.MaxFindBudget)}
	req := codec.AppendBytes(codec.AppendString(appendHeader(nil, false, 0), f.cfg.Region), wire.AppendFindRequest(nil, fr))
	answers, err := askAll(f, ctx, wire.MethodFedFind, req, itemrpc.DecodeFindResult, nil, left)
	if err != nil {
		return nil, err
	}
	var results []*query.Result
	miss := &query.Result{}
	for _, a := range answers {
		if a.err != nil {
			miss.Missing = append(miss.Missing, a.region)
			continue
		}
		for i, m := range a.answer.Missing {
			a.answer.Missing[i] = a.region + "/" + m
		}
		results = append(results, a.answer)
	}
	return query.Merge(q, append(results, miss), itemAfter)
}

// find answers MethodFedFind with this region's answer: the query run
// over this region's cluster (its scope region, whatever it says).
func (f *Federation) find(ctx context.Context, req []byte) ([]byte, error) {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	_ = d.String() // the source, checked by the handler
	fr, err := wire.DecodeFindRequest(d.Bytes())
	if d.Err != nil || len(d.B) != 0 || err != nil || len(fr.Parts) > 0 {
		return nil, itemrpc.Error(errBadRequest)
	}
	// The region that asks bounded the query's size with its own limit;
	// here it need only fit a frame.
	lim := item.DefaultLimits()
	lim.MaxBodyBytes = transport.DefaultMaxFrameBytes
	return itemrpc.RunFind(ctx, lim, fr, func(ctx context.Context, q *query.Query) (*query.Result, error) {
		q.Scope = "region"
		return f.cfg.Cluster.FindScattered(ctx, fr.Tenant, q)
	})
}

// mergeRegionPages merges pages of the same list in several regions: the
// same ids may be in several, with different versions while a write
// travels. Like a cluster's merge (cluster.mergePages), it stops at the
// end of the shortest page that has more to come.
func mergeRegionPages(pages []*item.Page, limit int) *item.Page {
	return cluster.MergePages(pages, limit, itemAfter)
}

// itemAfter reports whether region copy a of an item is later than b.
func itemAfter(a, b *item.Item) bool { return versionAfter(a.Version, b.Version) }

// versionAfter reports whether version a ("<time base 36>.<region>") is
// later than b by the conflict rule.
func versionAfter(a, b string) bool {
	ah, ar, _ := strings.Cut(a, ".")
	bh, br, _ := strings.Cut(b, ".")
	an, _ := strconv.ParseUint(ah, 36, 64)
	bn, _ := strconv.ParseUint(bh, 36, 64)
	if an != bn {
		return an > bn
	}
	return ar > br
}

// list answers MethodFedList with this region's page (the cluster lists
// across its nodes).
func (f *Federation) list(ctx context.Context, req []byte) ([]byte, error) {
	r, err := decodeRequest(req, f.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	d := codec.Decoder{B: r.rest, Fail: errBadRequest}
	_ = d.String() // the source, checked by the handler
	lr, err := wire.DecodeRequest(d.Bytes())
	if d.Err != nil || len(d.B) != 0 || err != nil {
		return nil, itemrpc.Error(errBadRequest)
	}
	if lr.Stale {
		ctx = item.WithStaleReads(ctx)
	}
	p, err := f.cfg.Cluster.List(ctx, lr.Tenant, lr.List)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	return wire.AppendPage(nil, p), nil
}

// ItemMeta returns tenant's item id's version vector and conflict count in
// this region (item.MetaReader), read on the partition's leader.
func (f *Federation) ItemMeta(ctx context.Context, tenant, id string) (*item.Meta, error) {
	req := codec.AppendString(codec.AppendString(codec.AppendString(
		appendHeader(nil, false, core.PartitionOf(tenant, id, f.core.Partitions())), f.cfg.Region), tenant), id)
	b, err := f.meta(ctx, req)
	if err != nil {
		var re *transport.RemoteError
		if errors.As(err, &re) {
			return nil, wire.Error(re.Code, re.Message)
		}
		return nil, err
	}
	var m item.Meta
	if err := json.Unmarshal(b, &m); err != nil || len(m.Versions) > core.MaxRegions {
		return nil, fmt.Errorf("%w: a malformed answer about %q", item.ErrUnavailable, id)
	}
	return &m, nil
}

// meta answers MethodFedMeta on the partition's leader here.
func (f *Federation) meta(ctx context.Context, req []byte) ([]byte, error) {
	r, tenant, id, err := f.decodeItemRequest(req)
	if err != nil {
		return nil, err
	}
	if answer, here, err := f.toLeader(ctx, wire.MethodFedMeta, r); !here {
		return answer, err
	}
	m, err := f.core.ItemMeta(ctx, tenant, id)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	return json.Marshal(m)
}
