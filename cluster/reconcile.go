package cluster

import (
	"context"
	"time"

	"github.com/soullabs/brainy/core"
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
		out = append(out, Member{ID: id, Raft: core.RaftID(id), Zone: p.Zone})
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
	steps := 0
	for _, g := range st {
		if g.Leader != n.self || steps >= n.cfg.MaxStepsPerInterval {
			continue
		}
		want := Place(int(g.Group), members, n.cfg.ReplicationFactor)
		step := NextStep(g, n.self, want)
		switch {
		case step.Change != nil:
			steps++
			if err := n.core.ChangeReplicas(ctx, int(g.Group), step.Change); err != nil {
				n.log.Debug("membership change", "partition", g.Group, "step", step.Why, "err", err)
				continue
			}
			n.log.Info("partition membership changed", "partition", g.Group, "step", step.Why,
				"node", step.Change.GetChanges()[0].GetNodeId())
		case step.TransferTo != 0:
			steps++
			_ = n.core.TransferLeadership(ctx, int(g.Group), step.TransferTo)
			n.log.Debug("leadership transfer", "partition", g.Group, "why", step.Why)
		}
	}
}
