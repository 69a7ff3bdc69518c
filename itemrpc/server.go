package itemrpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// Register serves the six item methods on s. A request another core
// forwarded (wire.Request.Forwarded) goes to local, any other to front
// (local when nil): a cluster passes its local node as local and itself
// as front, so an edge's request may be forwarded once and a forwarded
// one never again.
func Register(s *transport.Server, local, front item.API) {
	if front == nil {
		front = local
	}
	s.Handle(wire.MethodPing, func(context.Context, *transport.Peer, []byte) ([]byte, error) { return nil, nil })
	pick := func(r *wire.Request) item.API {
		if r.Forwarded {
			return local
		}
		return front
	}
	s.Handle(wire.MethodGet, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Get(ctx, r.Tenant, r.ID)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, false), nil
	}))
	s.Handle(wire.MethodAdd, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Add(ctx, r.Tenant, r.Item())
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, true), nil
	}))
	s.Handle(wire.MethodPut, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, created, err := pick(r).Put(ctx, r.Tenant, r.Item(), r.Cond)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, created), nil
	}))
	s.Handle(wire.MethodPatch, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		it, err := pick(r).Patch(ctx, r.Tenant, r.ID, r.Patch(), r.Cond)
		if err != nil {
			return nil, err
		}
		return wire.AppendItem(nil, it, false), nil
	}))
	s.Handle(wire.MethodDelete, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		return nil, pick(r).Delete(ctx, r.Tenant, r.ID, r.Cond)
	}))
	s.Handle(wire.MethodList, handler(func(ctx context.Context, r *wire.Request) ([]byte, error) {
		p, err := pick(r).List(ctx, r.Tenant, r.List)
		if err != nil {
			return nil, err
		}
		return wire.AppendPage(nil, p), nil
	}))
}

// ListPartitionsFunc lists tenant's items of the given partitions only.
type ListPartitionsFunc func(ctx context.Context, tenant string, opts item.ListOptions, parts []int) (*item.Page, error)

// RegisterListPartitions serves wire.MethodListPartitions on s: a List
// restricted to some partitions, which a node asks of a member holding
// partitions it lacks (see package cluster). A request naming more than
// maxParts partitions is malformed.
func RegisterListPartitions(s *transport.Server, maxParts func() int, list ListPartitionsFunc) {
	s.Handle(wire.MethodListPartitions, ListPartitionsHandler(maxParts, list))
}

// ListPartitionsHandler is the handler RegisterListPartitions registers,
// for a caller that wraps it (package cluster lets only cores call it).
func ListPartitionsHandler(maxParts func() int, list ListPartitionsFunc) transport.HandlerFunc {
	return func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		r, parts, err := decodeListPartitions(req, maxParts())
		if err != nil {
			return nil, Error(item.Invalid("malformed_request", "%v", err))
		}
		if r.Stale {
			ctx = item.WithStaleReads(ctx)
		}
		p, err := list(ctx, r.Tenant, r.List, parts)
		if err != nil {
			return nil, Error(err)
		}
		return wire.AppendPage(nil, p), nil
	}
}

var errMalformedListPartitions = errors.New("itemrpc: malformed partition list request")

// appendListPartitions encodes a partition list request: the List request,
// length-prefixed, then the partition numbers.
func appendListPartitions(r *wire.Request, parts []int) []byte {
	out := codec.AppendBytes(nil, wire.AppendRequest(nil, r))
	out = binary.AppendUvarint(out, uint64(len(parts)))
	for _, p := range parts {
		out = binary.AppendUvarint(out, uint64(p))
	}
	return out
}

func decodeListPartitions(req []byte, maxParts int) (*wire.Request, []int, error) {
	d := codec.Decoder{B: req, Fail: errMalformedListPartitions}
	r, err := wire.DecodeRequest(d.Bytes())
	if d.Err != nil || err != nil {
		return nil, nil, errors.Join(d.Err, err)
	}
	count := d.Uvarint()
	if d.Err != nil || count > uint64(maxParts) {
		return nil, nil, errMalformedListPartitions
	}
	parts := make([]int, 0, count)
	for range count {
		p := d.Uvarint()
		if p >= uint64(maxParts) {
			return nil, nil, fmt.Errorf("%w: partition %d of %d", errMalformedListPartitions, p, maxParts)
		}
		parts = append(parts, int(p))
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, nil, errMalformedListPartitions
	}
	return r, parts, nil
}

// handler adapts an item operation to a transport handler: it decodes the
// request, honours its Stale flag, and turns errors into wire error codes.
func handler(op func(context.Context, *wire.Request) ([]byte, error)) transport.HandlerFunc {
	return func(ctx context.Context, _ *transport.Peer, req []byte) ([]byte, error) {
		r, err := wire.DecodeRequest(req)
		if err != nil {
			return nil, Error(item.Invalid("malformed_request", "%v", err))
		}
		if r.Stale {
			ctx = item.WithStaleReads(ctx)
		}
		out, err := op(ctx, r)
		if err != nil {
			return nil, Error(err)
		}
		return out, nil
	}
}

// Error turns an item error into the error a transport handler returns,
// so that the caller gets the same sentinel (and, for bad input, the same
// error code) back from wire.Error.
func Error(err error) error {
	if errors.Is(err, context.Canceled) {
		return err // the caller is gone; nobody reads the answer
	}
	code, msg := wire.ErrorCode(err)
	return &transport.RemoteError{Code: code, Message: msg}
}

// Subscription is a feed of committed changes, one batch per commit (a
// core.Subscription).
type Subscription interface {
	// C delivers the batches. They are shared by every subscriber and must
	// not be modified.
	C() <-chan []wire.Change
	// Lost reports whether batches were dropped since the last call.
	Lost() bool
	// Close ends the subscription.
	Close()
}

// Topologies is what a Subscription may also offer: the cluster's routing
// table, pushed to the subscriber (wire.MethodTopology) when it subscribes
// and whenever the table changes.
type Topologies interface {
	// Topology returns the table, encoded (wire.AppendTopology), and a
	// channel closed when it next changes.
	Topology() ([]byte, <-chan struct{})
}

// RegisterSubscribe serves wire.MethodSubscribe on s: the caller (an edge,
// or a peer relaying changes) is pushed every change subscribe's feed
// carries, as wire.MethodInvalidate, until it disconnects.
func RegisterSubscribe(s *transport.Server, subscribe func() Subscription) {
	// One subscription per connection: a peer asking again (a reconnect
	// races the first answer, or a hostile one loops) gets what it has,
	// never another goroutine and buffer.
	var subscribed sync.Map // *transport.Peer → struct{}
	s.Handle(wire.MethodSubscribe, func(_ context.Context, peer *transport.Peer, _ []byte) ([]byte, error) {
		if _, dup := subscribed.LoadOrStore(peer, struct{}{}); dup {
			return nil, nil
		}
		// Subscribe before answering: every commit after the answer is pushed.
		sub := subscribe()
		go func() {
			defer subscribed.Delete(peer)
			pushChanges(peer, sub)
		}()
		return nil, nil
	})
}

// pushChanges pushes every commit's changes to peer until it disconnects.
// Batches that queued up meanwhile go out together; a push that fails, or
// batches the subscription dropped, make the next push say changes were
// lost, so the edge drops what it cannot trust.
//
// With nothing to push for wire.FeedHeartbeat it pushes an empty batch:
// the subscriber's proof that the feed is alive. A subscription that
// offers Topologies has its table pushed first and after every change.
func pushChanges(peer *transport.Peer, sub Subscription) {
	defer sub.Close()
	lost := false
	idle := time.NewTimer(wire.FeedHeartbeat)
	defer idle.Stop()
	routes, _ := sub.(Topologies)
	var routesChanged <-chan struct{}
	pushRoutes := func() {
		var table []byte
		table, routesChanged = routes.Topology()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// A table that did not arrive is pushed again with the next change;
		// meanwhile the subscriber's requests are forwarded, never lost.
		_ = peer.Push(ctx, wire.MethodTopology, table)
		cancel()
		idle.Reset(wire.FeedHeartbeat)
	}
	if routes != nil {
		pushRoutes()
	}
	for {
		var batch []wire.Change
		select {
		case <-peer.Done():
			return
		case <-routesChanged:
			pushRoutes()
			continue
		case batch = <-sub.C():
		case <-idle.C:
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
		idle.Reset(wire.FeedHeartbeat)
	}
}
