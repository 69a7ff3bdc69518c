package cluster

import (
	"context"
	"slices"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/core/multiraft"
)

// reconcileLoop moves the groups this node leads toward their placement,
// at most MaxStepsPerInterval steps per interval.
func (n *Node) reconcileLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		n.reconcile()
		n.prune(time.Now())
		if i%5 == 4 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			n.collectGarbage(ctx)
			cancel()
		}
	}
}

// placementMembers returns the members placement counts: those alive and
// proven to be who they claim (verify.go), and those gone for less than
// DeadAfter, whose replicas stay where they are in case they come back.
func (n *Node) placementMembers() []Member {
	now := time.Now()
	alive := n.verify.filter(n.cfg.Directory.Members())
	n.refreshAlive(alive)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range alive {
		n.lastSeen[p.ID] = now
		n.peers[p.ID] = p
	}
	var out []Member
	for id, seen := range n.lastSeen {
		if now.Sub(seen) > n.cfg.DeadAfter {
			continue
		}
		p := n.peers[id]
		out = append(out, Member{ID: id, Raft: core.RaftID(id), Zone: p.Zone, Reader: p.Reader})
	}
	return out
}

func (n *Node) reconcile() {
	members := n.placementMembers()
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ReconcileInterval*10)
	defer cancel()
	st, err := n.core.GroupStatus(ctx)
	if err != nil {
		return
	}
	n.refreshHeld(ctx)
	for _, ps := range Plan(st, n.self, members, n.cfg.ReplicationFactor, n.cfg.MaxStepsPerInterval, n.cfg.MaxCatchingUp) {
		switch step := ps.Step; {
		case step.Change != nil:
			if err := n.core.ChangeReplicas(ctx, int(ps.Group), step.Change); err != nil {
				n.log.Debug("membership change", "partition", ps.Group, "step", step.Why, "err", err)
				continue
			}
			n.log.Info("partition membership changed", "partition", ps.Group, "step", step.Why,
				"node", step.Change.GetChanges()[0].GetNodeId())
		case step.TransferTo != 0:
			n.beforeTransfer(ctx, int(ps.Group))
			_ = n.core.TransferLeadership(ctx, int(ps.Group), step.TransferTo)
			n.log.Debug("leadership transfer", "partition", ps.Group, "why", step.Why)
		}
	}
}

// smallGroup is the commit index below which a group is too small to
// count against MaxCatchingUp: copying a handful of entries costs nothing,
// and a new cluster's partitions, a few entries each, fill in at once.
const smallGroup = 64

// PlannedStep is a step of Plan: Step, for partition Group.
type PlannedStep struct {
	Group multiraft.GroupID
	Step  Step
}

// Plan returns the steps a leader (self) takes in one reconcile interval
// toward placement among members, given the status of its node's groups
// (st; the groups others lead are skipped): each led group's NextStep, at
// most maxSteps of them, and never so many new learners that more than
// maxCatchingUp of its groups (small ones aside) are catching a replica up
// at once.
func Plan(st []multiraft.GroupStatus, self multiraft.NodeID, members []Member, rf, maxSteps, maxCatchingUp int) []PlannedStep {
	// A learner that does not answer copies nothing: it does not hold the
	// others back (placement removes it once its node has been gone for
	// DeadAfter). Nor does a reader that has caught up: it stays a
	// learner for good.
	readers := Readers(members)
	active := func(g multiraft.GroupStatus) bool {
		return slices.ContainsFunc(g.Learners, func(id multiraft.NodeID) bool {
			if !g.Active[id] {
				return false
			}
			if _, reader := slices.BinarySearch(readers, id); reader {
				m := g.Match[id]
				return m == 0 || m+caughtUpEntries < g.Commit
			}
			return true
		})
	}
	catchingUp := 0
	learning := map[multiraft.NodeID]bool{} // learners in any group held here, whoever leads it
	for _, g := range st {
		if g.Leader == self && g.Commit >= smallGroup && active(g) {
			catchingUp++
		}
		for _, id := range g.Learners {
			learning[id] = true
		}
	}
	var out []PlannedStep
	for _, g := range st {
		if g.Leader != self || len(out) >= maxSteps {
			continue
		}
		step := NextStep(g, self, Place(int(g.Group), members, rf), readers)
		if step.Change == nil && step.TransferTo == 0 {
			continue
		}
		// A group already catching up may take another learner: the bound
		// is on groups, and NextStep adds every wanted learner before it
		// promotes any, so holding it back would hold its promotions too.
		// Leaderships move to their preferred nodes once no group here is
		// catching up, and only to a node that is no learner in any group
		// this node holds: a node still filling in replicas serves new
		// leaderships slowly, its log writer busy with the copies.
		if step.Why == whyBalance && (catchingUp > 0 || learning[step.TransferTo]) {
			continue
		}
		if isAddLearner(step) && !active(g) && g.Commit >= smallGroup {
			if catchingUp >= maxCatchingUp {
				continue // a later interval, once one has caught up
			}
			catchingUp++
		}
		out = append(out, PlannedStep{Group: g.Group, Step: step})
	}
	return out
}

// isAddLearner reports whether step starts copying a partition to a new
// replica.
func isAddLearner(step Step) bool {
	if step.Change == nil {
		return false
	}
	for _, c := range step.Change.GetChanges() {
		if c.GetType() == pb.ConfChangeType_ConfChangeAddLearnerNode {
			return true
		}
	}
	return false
}
