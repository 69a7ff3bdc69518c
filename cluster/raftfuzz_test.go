package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// A member's certificate in hostile hands. handleRaft makes sure every
// message names its sender truthfully; everything else in a message is
// the sender's to choose. hostileGen chooses: every message type, any
// term, index, commit, entries, snapshot metadata and context, biased
// toward the values raft's checks hinge on — the receiver's own term and
// commit index, their neighbours, and the extremes.

// choices is where hostileGen's choices come from: a seeded generator, or
// the fuzzer's bytes.
type choices interface {
	byte() byte
	uint64() uint64
}

type seeded struct{ r *rand.Rand }

func (s seeded) byte() byte     { return byte(s.r.Uint32()) }
func (s seeded) uint64() uint64 { return s.r.Uint64() }

// fuzzBytes hands out the fuzzer's input, then zeros.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) uint64() uint64 {
	var v [8]byte
	n := copy(v[:], f.b)
	f.b = f.b[n:]
	return binary.LittleEndian.Uint64(v[:])
}

type hostileGen struct {
	c      choices
	from   uint64                                      // the sender: the certificate's own raft id
	to     uint64                                      // the victim
	ids    []uint64                                    // raft ids messages may name: members' and a stranger's
	groups int                                         // the partition count
	status map[multiraft.GroupID]multiraft.GroupStatus // the victim's view, for values near its own
}

func (h *hostileGen) n(k int) int { return int(h.c.byte()) % k }

// near returns a value close to v, or an extreme.
func (h *hostileGen) near(v uint64) uint64 {
	switch h.n(9) {
	case 0:
		return 0
	case 1, 2:
		return v
	case 3:
		return v + 1
	case 4:
		return v - min(v, 1)
	case 5:
		return v + uint64(h.n(200))
	case 6:
		return []uint64{1 << 32, 1 << 62, math.MaxUint64, math.MaxUint64 - 1}[h.n(4)]
	default:
		return h.c.uint64()
	}
}

func (h *hostileGen) id() uint64 { return h.ids[h.n(len(h.ids))] }

func (h *hostileGen) ptr(v uint64) *uint64 {
	if h.n(10) == 0 {
		return nil // absent, read as 0
	}
	return &v
}

func (h *hostileGen) idSet() []uint64 {
	var out []uint64
	for range h.n(4) {
		out = append(out, h.id())
	}
	return out
}

func (h *hostileGen) confState() *pb.ConfState {
	cs := &pb.ConfState{Voters: h.idSet()}
	if h.n(2) == 0 {
		cs.Learners = h.idSet()
	}
	if h.n(3) == 0 {
		cs.VotersOutgoing, cs.LearnersNext, cs.AutoLeave = h.idSet(), h.idSet(), proto.Bool(h.n(2) == 0)
	}
	return cs
}

func (h *hostileGen) data() []byte {
	switch h.n(6) {
	case 0:
		return nil
	case 1: // a conf change, valid or not for the group
		cc := &pb.ConfChangeV2{Transition: pb.ConfChangeTransition(h.n(4)).Enum()}
		for range h.n(4) {
			cc.Changes = append(cc.Changes, &pb.ConfChangeSingle{Type: pb.ConfChangeType(h.n(5)).Enum(), NodeId: proto.Uint64(h.id())})
		}
		b, _ := proto.Marshal(cc)
		return b
	case 2:
		b, _ := proto.Marshal(&pb.ConfChange{Type: pb.ConfChangeType(h.n(5)).Enum(), NodeId: proto.Uint64(h.id())})
		return b
	case 3: // a proposal id, then a command
		b := binary.BigEndian.AppendUint64(nil, h.c.uint64())
		return (&core.Command{Op: core.OpPut, Tenant: "t", ID: fmt.Sprint("forged-", h.n(8)), Data: []byte(`"forged"`)}).AppendEncode(b)
	default:
		b := make([]byte, h.n(24))
		for i := range b {
			b[i] = h.c.byte()
		}
		return b
	}
}

func (h *hostileGen) message() multiraft.Message {
	g := multiraft.GroupID(h.n(h.groups))
	if h.n(16) == 0 {
		g = multiraft.GroupID(h.groups + h.n(4)) // past the partition count
	}
	st := h.status[g]
	m := &pb.Message{Type: pb.MessageType(h.n(26)).Enum(), From: proto.Uint64(h.from), To: proto.Uint64(h.to)}
	if h.n(16) == 0 {
		m.To = h.ptr(h.id())
	}
	m.Term = h.ptr(h.near(st.Term))
	m.LogTerm = h.ptr(h.near(st.Term))
	m.Index = h.ptr(h.near(st.Commit))
	m.Commit = h.ptr(h.near(st.Commit))
	if h.n(2) == 0 {
		m.Reject = proto.Bool(true)
		m.RejectHint = h.ptr(h.near(st.Commit))
	}
	next := m.GetIndex() + 1
	for range h.n(4) {
		e := &pb.Entry{Type: pb.EntryType(h.n(4)).Enum(), Term: h.ptr(h.near(m.GetTerm())), Index: proto.Uint64(next), Data: h.data()}
		if h.n(8) == 0 {
			e.Index = h.ptr(h.near(next))
		}
		next++
		m.Entries = append(m.Entries, e)
	}
	switch h.n(5) {
	case 0:
		m.Context = binary.LittleEndian.AppendUint64(nil, h.near(0))
	case 1:
		m.Context = make([]byte, 1+h.n(7)) // what raft reads as 8 bytes
	case 2:
		m.Context = []byte("CampaignTransfer")
	}
	if h.n(3) == 0 {
		m.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: h.ptr(h.near(st.Commit)), Term: h.ptr(h.near(st.Term)), ConfState: h.confState()}}
	}
	return multiraft.Message{Group: g, Msg: m}
}

func (h *hostileGen) batch(max int) []multiraft.Message {
	out := make([]multiraft.Message, 1+h.n(max))
	for i := range out {
		out[i] = h.message()
	}
	return out
}

// hostileCluster starts four members, so that every partition (three
// replicas of eight partitions) has voters and non-voters among them, and
// writes some items through a.
func hostileCluster(tb testing.TB) (*testCluster, []string) {
	c := newTestCluster(tb)
	for _, id := range []string{"a", "b", "c", "d"} {
		c.start(id)
	}
	c.waitPlacement(3)
	var ids []string
	for i := range 16 {
		id := fmt.Sprint("item-", i)
		data, _ := json.Marshal(id)
		// Leaderships may still be moving toward placement's preferred
		// leaders: a write caught in a transfer is retried, as a Put
		// (writing the same value twice is harmless).
		for deadline := time.Now().Add(20 * time.Second); ; {
			_, _, err := c.members["a"].node.Put(context.Background(), "t", &item.Item{ID: id, Data: data}, item.Cond{})
			if err == nil {
				break
			}
			if !errors.Is(err, item.ErrUnavailable) || time.Now().After(deadline) {
				tb.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	return c, ids
}

func newHostileGen(c *testCluster, ch choices, from, to string) *hostileGen {
	h := &hostileGen{c: ch, from: uint64(core.RaftID(from)), to: uint64(core.RaftID(to)), groups: 8}
	for id := range c.members {
		h.ids = append(h.ids, uint64(core.RaftID(id)))
	}
	slices.Sort(h.ids)
	h.ids = append(h.ids, uint64(core.RaftID("stranger")))
	return h
}

// observe gives h the victim's current view of its groups.
func (h *hostileGen) observe(victim *member) error {
	st, err := victim.node.Core().GroupStatus(context.Background())
	if err != nil {
		return err
	}
	h.status = map[multiraft.GroupID]multiraft.GroupStatus{}
	for _, g := range st {
		h.status[g.Group] = g
	}
	return nil
}

// waitOneLeader waits until every partition has exactly one leader: all
// its replicas name the same one, which is a voter of the partition.
func (c *testCluster) waitOneLeader() {
	c.t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		last = ""
		leader := map[int]string{}
		for _, m := range c.members {
			for _, p := range m.node.Metrics().Partitions {
				l, seen := leader[p.ID]
				switch {
				case p.Leader == "" || !slices.Contains(p.Voters, p.Leader):
					last = fmt.Sprintf("%s sees partition %d led by %q, voters %v", m.id, p.ID, p.Leader, p.Voters)
				case seen && l != p.Leader:
					last = fmt.Sprintf("partition %d has two leaders: %s and %s", p.ID, l, p.Leader)
				}
				leader[p.ID] = p.Leader
			}
		}
		if last == "" && len(leader) == 8 {
			return
		}
	}
	c.logGroups()
	c.t.Fatalf("the partitions never settled on one leader each: %s", last)
}

// TestRaftFromMember: a process holding d's genuine certificate, d being a
// live member, sends b thousands of raft messages with every field chosen
// at random, through the real transport. b stays up, every partition ends
// with one leader all its replicas agree on, a voter of the partition (d
// votes in some partitions and not in others), no term gets near where
// terms wrap, and the items written before read back while new writes
// succeed. What the rules guarantee message by message is multiraft's
// TestCheck.
func TestRaftFromMember(t *testing.T) {
	c, ids := hostileCluster(t)
	victim := c.members["b"]
	client := clientAs(t, c, pki.RoleCore, "d")
	h := newHostileGen(c, seeded{rand.New(rand.NewPCG(1, 2))}, "d", "b")
	sent := 0
	for range 250 {
		if err := h.observe(victim); err != nil {
			t.Fatalf("b after %d messages: %v", sent, err)
		}
		msgs := h.batch(24)
		b, err := appendRaft(nil, msgs)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = client.Call(ctx, victim.srv.Addr().String(), wire.MethodRaft, b)
		cancel()
		if err != nil && !errors.Is(err, transport.ErrRemote) {
			t.Fatalf("b after %d messages: %v", sent, err)
		}
		sent += len(msgs)
	}
	t.Logf("sent %d messages; b rejected %d", sent, victim.node.Metrics().Replication.RejectedMessages)

	c.waitOneLeader()
	c.readAll(ids, victim)
	for _, m := range c.members {
		c.readAll(ids[:4], m)
		st, err := m.node.Core().GroupStatus(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range st {
			if g.Term >= 1<<63 {
				t.Errorf("%s: partition %d reached term %d, near where raft's terms wrap", m.id, g.Group, g.Term)
			}
		}
	}
	for i := range 5 {
		id := fmt.Sprint("after-", i)
		data, _ := json.Marshal(id)
		if _, err := victim.node.Add(context.Background(), "t", &item.Item{ID: id, Data: data}); err != nil {
			t.Fatalf("writing through b after the barrage: %v", err)
		}
		c.readAll([]string{id}, c.members["a"])
	}
	m := victim.node.Metrics()
	if m.Replication.RejectedMessages == 0 {
		t.Error("b rejected none of the hostile messages")
	}
	if m.Operations.HandlerPanics != 0 {
		t.Errorf("b recovered from %d panics", m.Operations.HandlerPanics)
	}
}

// FuzzRaftFromMember steps what the fuzzer's bytes choose (see hostileGen)
// into b, as from d, a live member: the batches handleRaft lets through.
// The cluster lives for the whole run, so an input meets the state the
// inputs before it left; a panic anywhere kills the process, and b's raft
// must still answer after every input.
func FuzzRaftFromMember(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{8, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Add([]byte("\x10\x07\x03\x01\x02\x06\x06\x06\x01\x01\x00\x03\x02"))
	c, _ := hostileCluster(f)
	victim := c.members["b"]
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newHostileGen(c, &fuzzBytes{in}, "d", "b")
		if err := h.observe(victim); err != nil {
			t.Fatalf("b's raft stopped: %v", err)
		}
		victim.node.Core().Step(h.batch(8))
		// Two driver cycles: the batch is stepped and its Ready handled.
		for range 2 {
			if _, err := victim.node.Core().GroupStatus(context.Background()); err != nil {
				t.Fatalf("b's raft stopped: %v", err)
			}
		}
	})
}
