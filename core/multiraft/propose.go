// Proposals (commands and conf changes) and linearizable reads: from the
// caller's goroutine to the driver, and their results back.

package multiraft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// proposal is a command, a conf change or a read waiting for the driver.
type proposal struct {
	ctx   context.Context
	group GroupID
	kind  proposalKind
	data  []byte // 8-byte proposal id, then the command
	cc    *pb.ConfChangeV2
	// index is, for a read, the index it waits for, once known; for a
	// command, its entry's index in the leader's log (see placed).
	index uint64
	done  chan result
}

type proposalKind uint8

const (
	kindCommand proposalKind = iota
	kindConfChange
	kindRead
)

type reply struct {
	p *proposal
	r result
}

type result struct {
	value any
	err   error
}

// Propose replicates data in group g and returns what the local state
// machine's Apply returned for it, once this replica has applied it. If
// ctx ends first the command may still be applied later.
//
// ErrNoLeader and ErrNotLeader mean the command was certainly not applied:
// raft refused it, or the leader that took it lost it (another entry was
// committed in its place). A ctx that ends first leaves the outcome
// unknown.
func (n *Node) Propose(ctx context.Context, g GroupID, data []byte) (any, error) {
	p := &proposal{ctx: ctx, group: g, data: make([]byte, 8+len(data)), done: make(chan result, 1)}
	copy(p.data[8:], data)
	return n.submit(p)
}

// ReadIndex returns once this replica of g has applied every command
// committed before the call: reads of local state after it are
// linearizable. On a follower it costs a round trip to the leader.
func (n *Node) ReadIndex(ctx context.Context, g GroupID) error {
	p := &proposal{ctx: ctx, group: g, kind: kindRead, data: make([]byte, 8), done: make(chan result, 1)}
	_, err := n.submit(p)
	return err
}

func (n *Node) submit(p *proposal) (any, error) {
	select {
	case n.propC <- p:
	case <-n.stopC:
		return nil, ErrStopped
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
	select {
	case r := <-p.done:
		return r.value, r.err
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
}

// SoleVoterLeader reports whether this node leads g, is its only voter,
// and has applied everything committed, up to an entry of its own term.
// No other node can lead g then (any other leader would need this node's
// vote), so reads of local state are linearizable without a read-index
// round: the fast path of a cluster of one.
//
// The last condition is raft's own for serving reads (thesis §6.4): a
// node that restarts learns the commit index it persisted, which may lag
// what it acknowledged before the crash; the entries after it are
// committed again — and applied — only once its new term's first entry
// commits. Until then local state may lack acknowledged writes.
func (n *Node) SoleVoterLeader(g GroupID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sole[g]
}

// updateSole recomputes SoleVoterLeader for g, after a cycle.
func (n *Node) updateSole(g *group) {
	st := g.rn.BasicStatus()
	sole := st.Lead == uint64(n.cfg.ID) && g.applied >= st.GetCommit()
	if sole {
		t, err := g.storage.Term(st.GetCommit())
		sole = err == nil && t == st.GetTerm()
	}
	n.mu.Lock()
	sole = sole && n.voters[g.id] == 1
	if sole {
		n.sole[g.id] = true
	} else {
		delete(n.sole, g.id)
	}
	n.mu.Unlock()
}

func (n *Node) propose(p *proposal) {
	g := n.groups[p.group]
	n.mu.Lock()
	voters := n.voters[p.group]
	n.mu.Unlock()
	if g == nil || voters == 0 {
		// A replica that knows no voters was opened by a message and not
		// yet filled by its leader (or by a peer's message only): it is no
		// replica yet, and its caller should ask one.
		p.done <- result{err: fmt.Errorf("%w: %d", ErrUnknownGroup, p.group)}
		return
	}
	n.wake(g)
	id := n.rng.Uint64()
	var err error
	switch p.kind {
	case kindCommand:
		binary.BigEndian.PutUint64(p.data, id)
		err = g.rn.Propose(p.data)
	case kindConfChange:
		p.cc.Context = binary.BigEndian.AppendUint64(nil, id)
		err = g.rn.ProposeConfChange(p.cc)
	case kindRead:
		// Reads that arrive in one driver cycle share one read-index
		// request: any index that covers the first covers them all, since
		// they all began before it was asked.
		if g.readCycle == n.cycle && g.readCtx != nil {
			p.data = g.readCtx
		} else {
			binary.BigEndian.PutUint64(p.data, id)
			g.rn.ReadIndex(p.data)
			g.readCtx, g.readCycle = p.data, n.cycle
		}
		g.reads = append(g.reads, p)
		return
	}
	if err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			err = ErrNoLeader
			if lead := g.rn.BasicStatus().Lead; lead != 0 && lead != uint64(n.cfg.ID) {
				err = ErrNotLeader
			}
		}
		p.done <- result{err: err}
		return
	}
	n.waiters[id] = p
}

// errLost answers a command whose leader lost it: see dropLost.
var errLost = fmt.Errorf("%w: the leader that took the command lost it to an election", ErrNoLeader)

// placed notes where the commands proposed here went in g's log: a
// leader's new entries (ents, of a Ready) carry their proposal ids.
func (n *Node) placed(g *group, ents []*pb.Entry) {
	if len(n.waiters) == 0 {
		return
	}
	for _, e := range ents {
		if e.GetType() != pb.EntryType_EntryNormal || len(e.GetData()) < 8 {
			continue
		}
		if p, ok := n.waiters[binary.BigEndian.Uint64(e.GetData())]; ok && p.group == g.id && p.index == 0 {
			p.index = e.GetIndex()
			g.proposed = append(g.proposed, p)
		}
	}
}

// dropLost answers the commands proposed here that can no longer apply:
// g has applied past their index and they were not the entry applied
// there (its id would have answered it). A committed index holds one
// entry forever, and a command is proposed once, at one index, so such a
// command was overwritten — its leader was deposed before a quorum had
// it — and can be proposed again without any risk of applying twice.
// Without this its caller would wait for its deadline and learn nothing.
//
// A snapshot installed over them leaves their outcome unknown (the
// snapshot may or may not include them): they are forgotten instead
// (see finishInstall), and their callers wait for their deadlines.
func (n *Node) dropLost(g *group) {
	if len(g.proposed) == 0 {
		return
	}
	kept := g.proposed[:0]
	for _, p := range g.proposed {
		id := binary.BigEndian.Uint64(p.data)
		switch {
		case n.waiters[id] != p: // answered, or given up by its caller (sweep)
		case p.index <= g.applied:
			delete(n.waiters, id)
			n.replies = append(n.replies, reply{p: p, r: result{err: errLost}})
		default:
			kept = append(kept, p)
		}
	}
	clear(g.proposed[len(kept):])
	g.proposed = kept
}

// readState gives a ReadIndex request its index.
func (n *Node) readState(g *group, rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	for _, p := range g.reads {
		if p.index == 0 && string(p.data) == string(rs.RequestCtx) {
			p.index = max(rs.Index, 1)
		}
	}
}

// errReadDropped answers a read whose request raft forgot: see
// dropUnplacedReads.
var errReadDropped = fmt.Errorf("%w: the leadership changed before the read was confirmed", ErrNoLeader)

// dropUnplacedReads answers the reads of g that have no index yet with
// ErrNoLeader, after g's leader or this replica's role changed. Raft
// forgets the read-index requests in flight when a leader steps down,
// and a follower's request sent to a leader that lost its place is never
// answered: such a read would wait for its deadline. Failing it early is
// safe — a read changes nothing — and its caller asks again, of the new
// leader.
func (n *Node) dropUnplacedReads(g *group) {
	kept := g.reads[:0]
	for _, p := range g.reads {
		if p.index == 0 {
			n.replies = append(n.replies, reply{p: p, r: result{err: errReadDropped}})
			continue
		}
		kept = append(kept, p)
	}
	clear(g.reads[len(kept):])
	g.reads = kept
	g.readCtx = nil
}

// finishReads answers the reads whose index this replica has applied.
func (n *Node) finishReads(g *group) {
	g.reads = slices.DeleteFunc(g.reads, func(p *proposal) bool {
		if p.index == 0 || p.index > g.applied {
			return false
		}
		n.replies = append(n.replies, reply{p: p})
		return true
	})
}

// reply queues the result for the proposal whose id starts idb, if it was
// proposed here.
func (n *Node) reply(idb []byte, r result) {
	if len(idb) < 8 {
		return
	}
	id := binary.BigEndian.Uint64(idb)
	if p, ok := n.waiters[id]; ok {
		delete(n.waiters, id)
		n.replies = append(n.replies, reply{p: p, r: r})
	}
}
