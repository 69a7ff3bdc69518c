package itemrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// CallFunc sends one encoded request about to and returns the encoded
// answer. An error the remote handler returned comes back as a
// *transport.RemoteError (the remote node's final answer); any other
// error means the call did not get an answer.
type CallFunc func(ctx context.Context, method uint16, to Target, req []byte) ([]byte, error)

// Target is what a request is about, for a CallFunc that routes by
// partition: an item, or (ID empty) a tenant's items.
type Target struct {
	Tenant, ID string
}

// Remote is item.API served by a remote core: each operation is encoded,
// sent through Call, and its answer or error decoded. It holds no
// connection of its own; Call decides where requests go (one address, or
// package upstream's choice among several).
type Remote struct {
	// Call carries the requests. Required.
	Call CallFunc
	// Forwarded marks every request as forwarded by a core (one hop): the
	// receiving core answers from its own replicas. Cores forwarding for
	// each other set it; edges do not.
	Forwarded bool
}

var _ item.API = (*Remote)(nil)

func (r *Remote) call(ctx context.Context, method uint16, req *wire.Request) ([]byte, error) {
	req.Forwarded, req.Stale = r.Forwarded, item.StaleReads(ctx)
	out, err := r.Call(ctx, method, Target{Tenant: req.Tenant, ID: req.ID}, wire.AppendRequest(nil, req))
	return out, answerError(ctx, err, method)
}

// answerError turns a call's error into an item error: the remote
// handler's own error as the sentinel it encodes; a call that got no
// answer as item.ErrUnavailable — or, for a write that may have been
// delivered, item.ErrOutcomeUnknown — unless the caller gave up first.
func answerError(ctx context.Context, err error, method uint16) error {
	var re *transport.RemoteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return wire.Error(re.Code, re.Message)
	case errors.Is(err, item.ErrUnavailable):
		return err // already classified (package upstream's choice of core)
	case ctx.Err() != nil:
		return ctx.Err()
	case !wire.Idempotent(method) && !errors.Is(err, transport.ErrNotSent) && !errors.Is(err, transport.ErrFrameTooLarge):
		return fmt.Errorf("%w: %v", item.ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("%w: %v", item.ErrUnavailable, err)
}

// Get implements item.API.
func (r *Remote) Get(ctx context.Context, tenant, id string) (*item.Item, error) {
	out, err := r.call(ctx, wire.MethodGet, &wire.Request{Tenant: tenant, ID: id})
	if err != nil {
		return nil, err
	}
	it, _, err := wire.DecodeItem(out)
	return it, malformed(err)
}

// Add implements item.API.
func (r *Remote) Add(ctx context.Context, tenant string, it *item.Item) (*item.Item, error) {
	out, err := r.call(ctx, wire.MethodAdd, valueRequest(tenant, it, item.Cond{}))
	if err != nil {
		return nil, err
	}
	got, _, err := wire.DecodeItem(out)
	return got, malformed(err)
}

// Put implements item.API.
func (r *Remote) Put(ctx context.Context, tenant string, it *item.Item, cond item.Cond) (*item.Item, bool, error) {
	out, err := r.call(ctx, wire.MethodPut, valueRequest(tenant, it, cond))
	if err != nil {
		return nil, false, err
	}
	got, created, err := wire.DecodeItem(out)
	return got, created, malformed(err)
}

// Patch implements item.API.
func (r *Remote) Patch(ctx context.Context, tenant, id string, p *item.Patch, cond item.Cond) (*item.Item, error) {
	req := &wire.Request{Tenant: tenant, ID: id, Cond: cond, Data: p.Data, Metadata: p.Metadata, Vector: p.Vector, HasVector: p.HasVector}
	if p.Type != nil {
		req.Type, req.HasType = *p.Type, true
	}
	out, err := r.call(ctx, wire.MethodPatch, req)
	if err != nil {
		return nil, err
	}
	got, _, err := wire.DecodeItem(out)
	return got, malformed(err)
}

// Delete implements item.API.
func (r *Remote) Delete(ctx context.Context, tenant, id string, cond item.Cond) error {
	_, err := r.call(ctx, wire.MethodDelete, &wire.Request{Tenant: tenant, ID: id, Cond: cond})
	return err
}

// List implements item.API.
func (r *Remote) List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error) {
	out, err := r.call(ctx, wire.MethodList, &wire.Request{Tenant: tenant, List: opts})
	if err != nil {
		return nil, err
	}
	p, err := wire.DecodePage(out)
	return p, malformed(err)
}

// ListPartitions lists tenant's items of the given partitions only, on a
// node that holds them (RegisterListPartitions on its side).
func (r *Remote) ListPartitions(ctx context.Context, tenant string, opts item.ListOptions, parts []int) (*item.Page, error) {
	req := &wire.Request{Tenant: tenant, List: opts, Forwarded: r.Forwarded, Stale: item.StaleReads(ctx)}
	out, err := r.Call(ctx, wire.MethodListPartitions, Target{Tenant: tenant}, appendListPartitions(req, parts))
	if err = answerError(ctx, err, wire.MethodListPartitions); err != nil {
		return nil, err
	}
	p, err := wire.DecodePage(out)
	return p, malformed(err)
}

func valueRequest(tenant string, it *item.Item, cond item.Cond) *wire.Request {
	return &wire.Request{Tenant: tenant, ID: it.ID, Cond: cond, Type: it.Type, Data: it.Data, Metadata: it.Metadata, Vector: it.Vector}
}

func malformed(err error) error {
	if err != nil {
		return fmt.Errorf("%w: the core's answer: %v", item.ErrUnavailable, err)
	}
	return nil
}
