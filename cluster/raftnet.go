package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// raftNet carries raft messages between nodes over QUIC (multiraft's
// Transport). Each peer has a sender goroutine and a queue: Send only
// appends, so the multiraft driver never waits on the network, and while
// one batch is in flight the next accumulates — the messages of many
// groups and cycles share one call.
type raftNet struct {
	client *transport.Client
	lookup func(multiraft.NodeID) (addr string, ok bool)
	log    *slog.Logger

	mu     sync.Mutex
	peers  map[multiraft.NodeID]*raftPeer
	closed bool
	wg     sync.WaitGroup
}

type raftPeer struct {
	mu    sync.Mutex
	queue []multiraft.Message
	wake  chan struct{}
	stop  chan struct{}
}

// maxQueuedMessages bounds a peer's queue; beyond it messages are dropped,
// as on a congested link, and raft sends them again.
const maxQueuedMessages = 8192

func newRaftNet(client *transport.Client, lookup func(multiraft.NodeID) (string, bool), log *slog.Logger) *raftNet {
	return &raftNet{client: client, lookup: lookup, log: log, peers: map[multiraft.NodeID]*raftPeer{}}
}

// Send implements multiraft.Transport.
func (t *raftNet) Send(to multiraft.NodeID, msgs []multiraft.Message) {
	t.mu.Lock()
	p := t.peers[to]
	t.mu.Unlock()
	if p == nil {
		// A node without an address (gone for longer than DeadAfter) gets
		// no sender: it would drop the messages anyway, and raft retries.
		if _, ok := t.lookup(to); !ok {
			return
		}
		t.mu.Lock()
		if p = t.peers[to]; p == nil && !t.closed {
			p = &raftPeer{wake: make(chan struct{}, 1), stop: make(chan struct{})}
			t.peers[to] = p
			t.wg.Add(1)
			go t.send(to, p)
		}
		t.mu.Unlock()
	}
	if p == nil {
		return // closed
	}
	p.mu.Lock()
	if len(p.queue)+len(msgs) <= maxQueuedMessages {
		p.queue = append(p.queue, msgs...)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (t *raftNet) send(to multiraft.NodeID, p *raftPeer) {
	defer t.wg.Done()
	var buf []byte
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		p.mu.Lock()
		msgs := p.queue
		p.queue = nil
		p.mu.Unlock()
		if len(msgs) == 0 {
			continue
		}
		addr, ok := t.lookup(to)
		if !ok {
			continue // unknown for now: raft retries
		}
		var err error
		if buf, err = appendRaft(buf[:0], msgs); err != nil {
			t.log.Error("encoding raft messages", "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = t.client.Call(ctx, addr, wire.MethodRaft, buf)
		cancel()
		if err != nil {
			t.log.Debug("sending raft messages", "to", addr, "messages", len(msgs), "err", err)
		}
	}
}

// forgetUnknown stops the senders of the nodes lookup no longer knows:
// without it a node would keep a goroutine and a queue for every member it
// ever sent raft messages to.
func (t *raftNet) forgetUnknown() {
	t.mu.Lock()
	ids := make([]multiraft.NodeID, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	for _, id := range ids {
		if _, ok := t.lookup(id); ok {
			continue
		}
		t.mu.Lock()
		if p := t.peers[id]; p != nil && !t.closed {
			close(p.stop)
			delete(t.peers, id)
		}
		t.mu.Unlock()
	}
}

func (t *raftNet) close() {
	t.mu.Lock()
	t.closed = true
	for _, p := range t.peers {
		close(p.stop)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// errMalformedRaft is returned for a raft batch that does not decode.
var errMalformedRaft = errors.New("cluster: malformed raft message batch")

// maxRaftBatch bounds the messages in one decoded batch.
const maxRaftBatch = 1 << 16

// appendRaft encodes a batch: a count, then per message its group and the
// protobuf encoding.
func appendRaft(dst []byte, msgs []multiraft.Message) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for _, m := range msgs {
		dst = binary.AppendUvarint(dst, uint64(m.Group))
		b, err := proto.Marshal(m.Msg)
		if err != nil {
			return nil, err
		}
		dst = codec.AppendBytes(dst, b)
	}
	return dst, nil
}

// decodeRaft decodes a batch from appendRaft. It copies nothing it keeps
// from b (protobuf unmarshal copies).
func decodeRaft(b []byte) ([]multiraft.Message, error) {
	d := codec.Decoder{B: b, Fail: errMalformedRaft}
	n := d.Uvarint()
	if d.Err != nil || n > maxRaftBatch || n > uint64(len(b)) {
		return nil, errMalformedRaft
	}
	msgs := make([]multiraft.Message, 0, n)
	for range n {
		g := d.Uvarint()
		body := d.Bytes()
		if d.Err != nil || g > 1<<32-1 {
			return nil, errMalformedRaft
		}
		m := &pb.Message{}
		if err := proto.Unmarshal(body, m); err != nil {
			return nil, errMalformedRaft
		}
		msgs = append(msgs, multiraft.Message{Group: multiraft.GroupID(g), Msg: m})
	}
	if len(d.B) != 0 {
		return nil, errMalformedRaft
	}
	return msgs, nil
}
