package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
)

func TestRaftBatchRoundTrip(t *testing.T) {
	in := []multiraft.Message{
		{Group: 3, Msg: &pb.Message{Type: pb.MessageType_MsgApp.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(7),
			Entries: []*pb.Entry{{Index: proto.Uint64(9), Term: proto.Uint64(7), Data: []byte("cmd")}}}},
		{Group: 63, Msg: &pb.Message{Type: pb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1)}},
	}
	b, err := appendRaft(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeRaft(b)
	if err != nil || len(out) != 2 {
		t.Fatalf("decode: %v %v", out, err)
	}
	for i := range in {
		if out[i].Group != in[i].Group || !proto.Equal(out[i].Msg, in[i].Msg) {
			t.Fatalf("message %d: %v, want %v", i, out[i], in[i])
		}
	}
	if _, err := decodeRaft(b[:len(b)-1]); err == nil {
		t.Fatal("a truncated batch decoded")
	}
}

// FuzzDecodeRaft: any input decodes or fails cleanly, and what decodes
// encodes back to a batch that decodes the same.
func FuzzDecodeRaft(f *testing.F) {
	b, _ := appendRaft(nil, []multiraft.Message{{Group: 1, Msg: &pb.Message{Type: pb.MessageType_MsgVote.Enum(), Term: proto.Uint64(3)}}})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := decodeRaft(data)
		if err != nil {
			return
		}
		again, err := appendRaft(nil, msgs)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeRaft(again)
		if err != nil || len(back) != len(msgs) {
			t.Fatalf("re-decoding: %v", err)
		}
		for i := range msgs {
			if back[i].Group != msgs[i].Group || !proto.Equal(back[i].Msg, msgs[i].Msg) {
				t.Fatalf("message %d changed", i)
			}
		}
	})
}

func FuzzDecodeGroupInfo(f *testing.F) {
	f.Add([]byte{1, 5, 2, 7, 9})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, data []byte) {
		gi, err := decodeGroupInfo(data)
		if err == nil && len(gi.replicas) > 64 {
			t.Fatalf("%d replicas decoded", len(gi.replicas))
		}
	})
}

// fakeRaftCalls is a raftNet whose calls go to a channel instead of a
// peer. A call fails as the transport would with a body over its 4 MiB
// frame limit; a bulk call waits while hold is locked, and
// fails with ErrUnavailable while down is set.
type fakeRaftCalls struct {
	net   *raftNet
	calls chan []multiraft.Message
	hold  sync.RWMutex
	down  atomic.Bool
}

func newFakeRaftCalls(t *testing.T) *fakeRaftCalls {
	f := &fakeRaftCalls{calls: make(chan []multiraft.Message, 64)}
	call := func(_ context.Context, _ string, method uint16, req []byte) ([]byte, error) {
		if method != wire.MethodRaft {
			t.Errorf("method %d, want MethodRaft", method)
		}
		if len(req) > transport.DefaultMaxFrameBytes {
			return nil, fmt.Errorf("call: %w", transport.ErrFrameTooLarge)
		}
		msgs, err := decodeRaft(req)
		if err != nil {
			t.Errorf("a call does not decode: %v", err)
		}
		if len(msgs) > 1 && len(req) > maxRaftCall {
			t.Errorf("a call of %d messages takes %d bytes, over the budget of %d", len(msgs), len(req), maxRaftCall)
		}
		if slices.ContainsFunc(msgs, func(m multiraft.Message) bool { return bulky(m.Msg) }) {
			f.hold.RLock()
			defer f.hold.RUnlock()
		}
		if f.down.Load() {
			err = transport.ErrUnavailable
		}
		f.calls <- msgs
		return nil, err
	}
	f.net = newRaftNet(func(addr string) raftSender { return fakeSender{addr, call} },
		func(multiraft.NodeID) (string, bool) { return "peer", true }, slog.New(slog.DiscardHandler))
	t.Cleanup(f.net.close)
	return f
}

// fakeSender is a raftSender whose batches go to call.
type fakeSender struct {
	addr string
	call func(ctx context.Context, addr string, method uint16, req []byte) ([]byte, error)
}

func (s fakeSender) Addr() string { return s.addr }
func (s fakeSender) Close()       {}
func (s fakeSender) Send(ctx context.Context, body []byte) error {
	_, err := s.call(ctx, s.addr, wire.MethodRaft, body)
	return err
}

// next returns the messages of the next call.
func (f *fakeRaftCalls) next(t *testing.T) []multiraft.Message {
	t.Helper()
	select {
	case msgs := <-f.calls:
		return msgs
	case <-time.After(10 * time.Second):
		t.Fatal("no raft call")
		return nil
	}
}

func raftMsg(g int, typ pb.MessageType, entryBytes int) multiraft.Message {
	m := &pb.Message{Type: typ.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(1)}
	if entryBytes > 0 {
		m.Entries = []*pb.Entry{{Index: proto.Uint64(1), Term: proto.Uint64(1), Data: make([]byte, entryBytes)}}
	}
	return multiraft.Message{Group: multiraft.GroupID(g), Msg: m}
}

// groups lists the groups of msgs, the messages' identities in these tests.
func groups(msgs []multiraft.Message) []int {
	var out []int
	for _, m := range msgs {
		out = append(out, int(m.Group))
	}
	return out
}

// TestRaftNetSplitsByBytes: a peer's messages go out in two lanes, each in
// order: snapshots and appends of more than bulkBytes in calls within
// maxRaftCall unless one message is larger, the rest — heartbeats, votes,
// responses and small appends — in calls of their own; an append too
// large for a frame is dropped alone and the ones after it still go.
func TestRaftNetSplitsByBytes(t *testing.T) {
	f := newFakeRaftCalls(t)
	app := pb.MessageType_MsgApp
	f.net.Send(2, []multiraft.Message{
		raftMsg(1, app, 700<<10),
		raftMsg(2, pb.MessageType_MsgHeartbeat, 0),
		raftMsg(3, app, 700<<10), // with group 1's, over the budget: a call of its own
		raftMsg(4, pb.MessageType_MsgVote, 0),
		raftMsg(5, app, 5<<20), // over the frame limit: dropped
		raftMsg(6, pb.MessageType_MsgHeartbeatResp, 0),
		raftMsg(7, pb.MessageType_MsgAppResp, 0),
		raftMsg(8, app, 100),
		raftMsg(9, pb.MessageType_MsgProp, 100),
		raftMsg(10, app, item.MaxItemBytes), // one entry of the largest item
		raftMsg(11, pb.MessageType_MsgSnap, 0),
	})
	var state, bulk []int
	for len(state)+len(bulk) < 10 {
		msgs := f.next(t)
		data := bulky(msgs[0].Msg)
		for _, m := range msgs {
			if bulky(m.Msg) != data {
				t.Fatalf("a call mixes lanes: groups %v", groups(msgs))
			}
		}
		if data {
			bulk = append(bulk, groups(msgs)...)
		} else {
			state = append(state, groups(msgs)...)
		}
	}
	if want := []int{2, 4, 6, 7, 8, 9}; !slices.Equal(state, want) {
		t.Errorf("heartbeats, votes, responses and small appends arrived as groups %v, want %v", state, want)
	}
	if want := []int{1, 3, 10, 11}; !slices.Equal(bulk, want) {
		t.Errorf("large appends and snapshots arrived as groups %v, want %v", bulk, want)
	}
}

// TestRaftNetHeartbeatsPassAppends: while a call carrying an append hangs,
// heartbeats to the same peer still go out.
func TestRaftNetHeartbeatsPassAppends(t *testing.T) {
	f := newFakeRaftCalls(t)
	f.hold.Lock()
	defer f.hold.Unlock()
	f.net.Send(2, []multiraft.Message{raftMsg(1, pb.MessageType_MsgApp, item.MaxItemBytes)})
	f.net.Send(2, []multiraft.Message{raftMsg(2, pb.MessageType_MsgHeartbeat, 0)})
	if got := groups(f.next(t)); !slices.Equal(got, []int{2}) {
		t.Fatalf("first call carries groups %v, want the heartbeat [2]", got)
	}
}

// TestRaftNetUnreachablePeerEndsRound: when a call fails for want of the
// peer, the rest of its round is dropped (raft sends again) instead of
// each call waiting out its own timeout, and the next round goes out.
func TestRaftNetUnreachablePeerEndsRound(t *testing.T) {
	f := newFakeRaftCalls(t)
	f.down.Store(true)
	// Two calls' worth of appends in one round.
	f.net.Send(2, []multiraft.Message{raftMsg(1, pb.MessageType_MsgApp, maxRaftCall), raftMsg(2, pb.MessageType_MsgApp, bulkBytes+1)})
	if got := groups(f.next(t)); !slices.Equal(got, []int{1}) {
		t.Fatalf("first call carries groups %v, want [1]", got)
	}
	f.down.Store(false)
	f.net.Send(2, []multiraft.Message{raftMsg(3, pb.MessageType_MsgApp, bulkBytes+1)})
	if got := groups(f.next(t)); !slices.Equal(got, []int{3}) {
		t.Fatalf("after a failed call the next carries groups %v, want the next round's [3]", got)
	}
}
