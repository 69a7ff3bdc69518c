package cluster

import (
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core/multiraft"
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
