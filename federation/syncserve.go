package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// syncServer answers the blue/green sync methods on one core. As blue, it
// serves another cluster's reads of this one (MethodSyncInfo, Page,
// Changes); as green, the values a core of this cluster read from blue,
// for the partitions this node leads (MethodSyncApply).
//
// Every request is bounded (syncwire.go) and read at the partition's
// leader: a core that does not lead it passes the request on once
// (flagForwarded), and a forwarded request it does not lead either is
// refused with core.ErrNotLeader; the reader asks again after refreshing
// where the leaders are (MethodSyncInfo).
type syncServer struct {
	cluster *cluster.Node
	core    *core.Node
	client  *transport.Client
	log     *slog.Logger
}

// ServeSync registers the sync methods on srv. Every core serves them: any
// cluster may be the blue side of a sync, and every core of a green
// cluster applies what its peers read from blue. Calls from another
// cluster are trusted as cluster calls are: the caller must hold a core
// certificate of this cluster's CA (green runs with blue's
// --cluster-secret); edges and other CAs' certificates are refused.
func ServeSync(c *cluster.Node, srv *transport.Server, client *transport.Client, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &syncServer{cluster: c, core: c.Core(), client: client, log: log.With("component", "sync")}
	srv.Handle(wire.MethodSyncInfo, s.handleInfo)
	srv.Handle(wire.MethodSyncPage, s.handlePage)
	srv.Handle(wire.MethodSyncChanges, s.handleChanges)
	srv.Handle(wire.MethodSyncApply, s.handleApply)
}

// errSyncCaller refuses a sync call from a certificate that is not a core's.
var errSyncCaller = errors.New("federation: sync methods answer cores of this cluster's CA only")

// checkReader admits a core certificate of this cluster's CA: the
// transport verified the chain; the role tells a core from an edge.
func checkReader(peer *transport.Peer) error {
	if peer.Role() != pki.RoleCore {
		return &transport.RemoteError{Code: wire.CodeForbidden,
			Message: fmt.Sprintf("%v; %q holds a %s certificate", errSyncCaller, peer.ID(), peer.Role())}
	}
	return nil
}

// toLeader is the package's toLeader on this node's cluster.
func (s *syncServer) toLeader(ctx context.Context, method uint16, r request) ([]byte, bool, error) {
	return toLeader(ctx, s.cluster, s.client, method, r)
}

func (s *syncServer) handleInfo(_ context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := checkReader(peer); err != nil {
		return nil, err
	}
	if len(req) != 0 {
		return nil, itemrpc.Error(errBadRequest)
	}
	leaders := make([]string, s.core.Partitions())
	for p := range leaders {
		if addr, here, ok := s.cluster.LeaderAddr(p); ok && !here {
			leaders[p] = addr
		}
	}
	return appendSyncInfo(nil, leaders), nil
}

func (s *syncServer) handlePage(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := checkReader(peer); err != nil {
		return nil, err
	}
	r, err := decodeRequest(req, s.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	pr, err := decodeSyncPageReq(r.rest)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	if answer, here, err := s.toLeader(ctx, wire.MethodSyncPage, r); !here {
		return answer, err
	}
	// The applied index is read before the page: the page holds every
	// write through it, so the log from there on holds the rest.
	committed, _ := s.core.Committed(r.part)
	if committed < pr.need {
		return nil, itemrpc.Error(fmt.Errorf("%w: partition %d has stored its log through %d here, the copy needs %d",
			item.ErrUnavailable, r.part, committed, pr.need))
	}
	values, next, err := s.core.PartitionPage(ctx, r.part, pr.cursor, pr.maxItems, pr.maxBytes)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	return appendPageAnswer(nil, committed, next, values), nil
}

func (s *syncServer) handleChanges(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if err := checkReader(peer); err != nil {
		return nil, err
	}
	r, err := decodeRequest(req, s.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	cr, err := decodeSyncChangesReq(r.rest)
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	if answer, here, err := s.toLeader(ctx, wire.MethodSyncChanges, r); !here {
		return answer, err
	}
	// A follower that has everything waits a while for the next write
	// (long polling): changes reach it at once, and an idle partition
	// costs a call per wait, not a stream of empty answers.
	if cr.waitMs > 0 {
		t := time.NewTimer(time.Duration(cr.waitMs) * time.Millisecond)
		defer t.Stop()
	wait:
		for {
			committed, changed := s.core.Committed(r.part)
			if committed > cr.from || changed == nil {
				break
			}
			select {
			case <-changed:
			case <-t.C:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-peer.Done():
				return nil, context.Canceled
			}
		}
	}
	ch, committed, err := s.core.SyncChanges(ctx, r.part, cr.from, cr.maxBytes)
	if errors.Is(err, multiraft.ErrCompacted) {
		return appendChangesAnswer(nil, true, cr.from, committed, nil), nil
	}
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	return appendChangesAnswer(nil, false, ch.To, committed, ch.Values), nil
}

// handleApply merges values a core of this cluster read from blue into
// partition r.part, which this node leads (or its leader, one hop away).
// Only a member of this cluster may call it: blue's cores hold
// certificates of the same CA, and must not write here.
func (s *syncServer) handleApply(ctx context.Context, peer *transport.Peer, req []byte) ([]byte, error) {
	if peer.Role() != pki.RoleCore || !s.cluster.IsMember(peer.ID()) {
		return nil, &transport.RemoteError{Code: wire.CodeForbidden,
			Message: fmt.Sprintf("federation: sync values are taken from members of this cluster only, not %q", peer.ID())}
	}
	r, err := decodeRequest(req, s.core.Partitions())
	if err != nil {
		return nil, itemrpc.Error(err)
	}
	cmd, err := core.DecodeCommand(r.rest)
	if err != nil || cmd.Op != core.OpReplicate || cmd.Source != syncSource || !cmd.Resync {
		return nil, itemrpc.Error(fmt.Errorf("%w: not a batch of values read from blue", errBadRequest))
	}
	if answer, here, err := s.toLeader(ctx, wire.MethodSyncApply, r); !here {
		return answer, err
	}
	if _, err := s.core.ApplyReplicated(ctx, r.part, syncSource, 0, 0, true, cmd.Values); err != nil {
		return nil, itemrpc.Error(err)
	}
	return nil, nil
}
