package core

import (
	"context"
	"errors"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// ItemAPI is the item operations an RPC handler runs: a node's own, or a
// cluster's, which forward what the node does not hold.
type ItemAPI interface {
	Add(ctx context.Context, tenant string, it *item.Item) (*item.Item, error)
	Put(ctx context.Context, tenant string, it *item.Item, cond item.Cond) (_ *item.Item, created bool, _ error)
	Patch(ctx context.Context, tenant, id string, p *item.Patch, cond item.Cond) (*item.Item, error)
	Delete(ctx context.Context, tenant, id string, cond item.Cond) error
	Get(ctx context.Context, tenant, id string) (*item.Item, error)
	List(ctx context.Context, tenant string, opts item.ListOptions) (*item.Page, error)
}

// RegisterRPC serves the node's items on s, one handler per wire method,
// for edges (package upstream) and for other nodes forwarding requests,
// and the change feed edges subscribe to. Errors travel as wire error
// codes, so the caller sees the same sentinel (and, for bad input, the
// same error code) as a local caller would.
func (n *Node) RegisterRPC(s *transport.Server) {
	RegisterItemRPC(s, n, nil)
	s.Handle(wire.MethodSubscribe, func(_ context.Context, peer *transport.Peer, _ []byte) ([]byte, error) {
		// Subscribe before answering: every commit after the answer is pushed.
		go n.pushChanges(peer, n.SubscribeChanges(1024))
		return nil, nil
	})
}

// RegisterItemRPC serves the item methods on s: a request a core
// forwarded (wire.Request.Forwarded) goes to local, any other to front
// (local when nil) — so a request crosses at most one hop between cores.
func RegisterItemRPC(s *transport.Server, local, front ItemAPI) {
	if front == nil {
		front = local
	}
	pick := func(r *wire.Request) ItemAPI {
		if r.Forwarded {
			return local
		}
		return front
	}
	s.Handle(wire.MethodGet, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Get(ctx, r.Tenant, r.ID)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, false), nil
	}))
	s.Handle(wire.MethodAdd, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Add(ctx, r.Tenant, r.Item())
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, true), nil
	}))
	s.Handle(wire.MethodPut, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, created, err := pick(r).Put(ctx, r.Tenant, r.Item(), r.Cond)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, created), nil
	}))
	s.Handle(wire.MethodPatch, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Patch(ctx, r.Tenant, r.ID, r.Patch(), r.Cond)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, false), nil
	}))
	s.Handle(wire.MethodDelete, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		return nil, pick(r).Delete(ctx, r.Tenant, r.ID, r.Cond)
	}))
	s.Handle(wire.MethodList, rpc(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		p, err := pick(r).List(ctx, r.Tenant, r.List)
		if err != nil {
			return nil, err
		}
		return wire.AppendPage(nil, p), nil
	}))
}

// rpc adapts an item operation to a transport handler: it decodes the
// request, honours its Stale flag, and turns errors into wire error codes.
func rpc(op func(context.Context, *wire.Request) ([]byte, error)) transport.HandlerFunc {
	return func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		r, err := wire.DecodeRequest(req)
		if err != nil {
			return nil, RPCError(item.Invalid("malformed_request", "%v", err))
		}
		if r.Stale {
			ctx = item.WithStaleReads(ctx)
		}
		out, err := op(ctx, r)
		if err != nil {
			return nil, RPCError(err)
		}
		return out, nil
	}
}

// RPCError turns an item error into the transport error a handler
// returns, so that the caller gets the same sentinel (and, for bad input,
// the same error code) back from wire.Error.
func RPCError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err // the caller is gone; nobody reads the answer
	}
	code, msg := wire.ErrorCode(err)
	return &transport.RemoteError{Code: code, Message: msg}
}

// pushChanges pushes every commit's changes to peer until it disconnects.
// Batches that queued up meanwhile go out together; a push that fails, or
// batches the subscription dropped, make the next push say changes were
// lost, so the edge drops what it cannot trust.
func (n *Node) pushChanges(peer *transport.Peer, sub *Subscription) {
	defer sub.Close()
	lost := false
	for {
		var batch []wire.Change
		select {
		case <-peer.Done():
			return
		case batch = <-sub.C():
		}
	more:
		for len(batch) < 4096 {
			select {
			case b := <-sub.C():
				// Batches are shared by all subscribers: never append in place.
				batch = append(batch[:len(batch):len(batch)], b...)
			default:
				break more
			}
		}
		lost = sub.Lost() || lost
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := peer.Push(ctx, wire.MethodInvalidate, wire.AppendChanges(nil, batch, lost))
		cancel()
		lost = err != nil
	}
}
