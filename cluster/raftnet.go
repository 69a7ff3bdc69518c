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
	"github.com/soullabs/brainy/internal/shrink"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

// raftNet carries raft messages between nodes over QUIC (multiraft's
// Transport). Each peer has two lanes, each a queue and a sender
// goroutine: one for snapshots and appends of more than bulkBytes of
// entries, one for everything else — heartbeats, votes, responses and the
// small appends of everyday writes, so that a cycle's messages to a peer,
// as leader of some groups and follower in others, share one call. Send
// only appends, so the multiraft driver never waits on the network; while
// a lane's calls are in flight its next round accumulates, the messages of
// many groups and cycles sharing a call. The lanes are apart so that
// megabytes of appends in flight never hold a heartbeat back past an
// election timeout, nor take it down with them when their call fails.
type raftNet struct {
	newSender func(addr string) raftSender
	lookup    func(multiraft.NodeID) (addr string, ok bool)
	log       *slog.Logger

	mu     sync.Mutex
	peers  map[multiraft.NodeID]*raftPeer
	peak   int // the most peers held (shrink.Map)
	closed bool
	wg     sync.WaitGroup
}

type raftPeer struct {
	state, bulk raftLane
	stop        chan struct{}
}

type raftLane struct {
	mu    sync.Mutex
	queue []multiraft.Message
	wake  chan struct{}
}

// raftSender carries one lane's batches to one address one-way, in order
// (transport.Sender): raft's messages carry their own acknowledgements, so
// an answer per batch would only cost a packet and a wait.
type raftSender interface {
	Addr() string
	Send(ctx context.Context, body []byte) error
	Close()
}

// raftSenders makes the senders of a raftNet whose batches c carries.
func raftSenders(c *transport.Client) func(addr string) raftSender {
	return func(addr string) raftSender { return c.NewSender(addr, wire.MethodRaft) }
}

// maxQueuedMessages bounds a lane's queue; beyond it messages are dropped,
// as on a congested link, and raft sends them again.
const maxQueuedMessages = 8192

// maxRaftCall bounds the bytes of one raft call, well under the transport's
// frame limit (4 MiB): a lane's queue goes out in as many calls as it
// takes, so a round of megabyte appends never makes a frame too large to
// send, and a failed call loses little. A message larger than this (an
// append of one large entry) goes alone in its call.
const maxRaftCall = 1 << 20

func newRaftNet(newSender func(addr string) raftSender, lookup func(multiraft.NodeID) (string, bool), log *slog.Logger) *raftNet {
	return &raftNet{newSender: newSender, lookup: lookup, log: log, peers: map[multiraft.NodeID]*raftPeer{}}
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
			p = &raftPeer{stop: make(chan struct{})}
			p.state.wake, p.bulk.wake = make(chan struct{}, 1), make(chan struct{}, 1)
			t.peers[to] = p
			t.wg.Add(2)
			go t.send(to, &p.state, p.stop)
			go t.send(to, &p.bulk, p.stop)
		}
		t.mu.Unlock()
	}
	if p == nil {
		return // closed
	}
	bulk := 0
	for _, m := range msgs {
		if bulky(m.Msg) {
			bulk++
		}
	}
	if bulk < len(msgs) {
		p.state.add(msgs, false, len(msgs)-bulk)
	}
	if bulk > 0 {
		p.bulk.add(msgs, true, bulk)
	}
}

// add queues the n messages of msgs that are bulky, or the n that are
// not, and wakes the lane's sender.
func (l *raftLane) add(msgs []multiraft.Message, data bool, n int) {
	l.mu.Lock()
	if len(l.queue)+n <= maxQueuedMessages {
		for _, m := range msgs {
			if bulky(m.Msg) == data {
				l.queue = append(l.queue, m)
			}
		}
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// bulkBytes is how many bytes of entries make an append bulky.
const bulkBytes = 64 << 10

// bulky reports whether m goes in the bulk lane: a snapshot, or an
// append whose entries hold more than bulkBytes.
func bulky(m *pb.Message) bool {
	switch m.GetType() {
	case pb.MessageType_MsgSnap:
		return true
	case pb.MessageType_MsgApp, pb.MessageType_MsgProp:
		n := 0
		for _, e := range m.GetEntries() {
			if n += len(e.GetData()); n > bulkBytes {
				return true
			}
		}
	}
	return false
}

// send is a lane's sender: each round takes the whole queue and sends it.
func (t *raftNet) send(to multiraft.NodeID, l *raftLane, stop <-chan struct{}) {
	defer t.wg.Done()
	// Reused across rounds: the queue taken, handed back as the next
	// queue, and the encoding buffer.
	var msgs []multiraft.Message
	var buf []byte
	var out raftSender
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-l.wake:
		}
		l.mu.Lock()
		msgs, l.queue = l.queue, msgs[:0]
		l.mu.Unlock()
		// An unknown address is unknown for now: raft sends again.
		if addr, ok := t.lookup(to); ok && len(msgs) > 0 {
			if out == nil || out.Addr() != addr {
				if out != nil {
					out.Close()
				}
				out = t.newSender(addr)
			}
			buf = t.sendAll(out, msgs, buf)
		}
		clear(msgs) // the reused slice keeps no entries alive
	}
}

// sendAll sends msgs through out in batches of at most maxRaftCall bytes
// (a larger message alone), in order. A batch too large for a frame loses
// only its own message(s), as a lossy link would: raft sends again, or a
// snapshot. Any other failure ends the round: the peer is unreachable or
// slow, and each further batch would wait as long.
func (t *raftNet) sendAll(out raftSender, msgs []multiraft.Message, buf []byte) []byte {
	addr := out.Addr()
	for len(msgs) > 0 {
		n := raftCallLen(msgs, maxRaftCall)
		var err error
		if buf, err = appendRaft(buf[:0], msgs[:n]); err != nil {
			t.log.Error("encoding raft messages", "err", err)
			return buf
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = out.Send(ctx, buf)
		cancel()
		switch {
		case errors.Is(err, transport.ErrFrameTooLarge):
			t.log.Warn("dropping raft messages too large for a frame", "to", addr, "messages", n,
				"bytes", len(buf), "group", uint32(msgs[0].Group), "type", msgs[0].Msg.GetType().String())
		case err != nil:
			t.log.Debug("sending raft messages", "to", addr, "messages", n, "err", err)
			return buf
		}
		if cap(buf) > maxRaftCall+maxRaftCall/2 {
			buf = nil // grown for one large message: not kept
		}
		msgs = msgs[n:]
	}
	return buf
}

// raftCallLen returns how many of msgs, at least one, the next call
// carries: as many as fit in budget bytes of appendRaft's encoding.
func raftCallLen(msgs []multiraft.Message, budget int) int {
	size := uvarintLen(uint64(len(msgs)))
	for i, m := range msgs {
		s := proto.Size(m.Msg)
		size += uvarintLen(uint64(m.Group)) + uvarintLen(uint64(s)) + s
		if size > budget && i > 0 {
			return i
		}
	}
	return len(msgs)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
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
	t.mu.Lock()
	t.peers = shrink.Map(t.peers, &t.peak)
	t.mu.Unlock()
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
// protobuf encoding, marshaled straight into dst.
func appendRaft(dst []byte, msgs []multiraft.Message) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(len(msgs)))
	for _, m := range msgs {
		dst = binary.AppendUvarint(dst, uint64(m.Group))
		dst = binary.AppendUvarint(dst, uint64(proto.Size(m.Msg)))
		var err error
		if dst, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(dst, m.Msg); err != nil {
			return nil, err
		}
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
