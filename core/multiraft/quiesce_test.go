package multiraft

import (
	"fmt"
	"testing"
	"time"
)

// waitQuiesced waits until every running node has every group quiesced.
func (c *cluster) waitQuiesced() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, n := range c.nodes {
			if n.Stats().Quiesced != len(c.groups) {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for id, n := range c.nodes {
				c.t.Logf("node %d: %d of %d groups quiesced", id, n.Stats().Quiesced, len(c.groups))
			}
			c.t.Fatal("groups did not quiesce")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ticks sleeps for n of the test cluster's ticks.
func ticks(n int) { time.Sleep(time.Duration(n) * 5 * time.Millisecond) }

// TestIdleGroupsQuiesce: once nothing happens, every group quiesces on
// every replica and the nodes send each other nothing; a proposal wakes
// its group, which commits on every replica and quiesces again.
func TestIdleGroupsQuiesce(t *testing.T) { forEachLog(t, testIdleGroupsQuiesce) }

func testIdleGroupsQuiesce(t *testing.T, dedicated bool) {
	c := newCluster(t, dedicated, 3, 4)
	for _, g := range c.groups {
		c.propose(g, fmt.Sprint("first-", g))
	}
	c.waitQuiesced()
	before := c.nw.sent.Load()
	ticks(100) // ten election timeouts
	if sent := c.nw.sent.Load() - before; sent != 0 {
		t.Fatalf("quiesced groups sent %d messages in 100 ticks, want none", sent)
	}
	g := c.groups[2]
	c.propose(g, "wakes")
	if got := c.waitSame(g, 2); got[1] != "wakes" {
		t.Fatalf("group %d applied %v", g, got)
	}
	c.waitQuiesced()
	for id, n := range c.nodes {
		if s := n.Stats(); s.Wakes == 0 {
			t.Errorf("node %d counted no wake: %+v", id, s)
		}
	}
}

// TestQuiescedFollowersElectOnceWoken: a quiesced group whose leader
// stops elects no other — nothing ticks — until its followers are told
// the leader left (WakeForMembers); then they elect one and go on.
func TestQuiescedFollowersElectOnceWoken(t *testing.T) {
	c := newCluster(t, false, 3, 2)
	g := c.groups[0]
	for i := range 5 {
		c.propose(g, fmt.Sprint("before-", i))
	}
	c.propose(c.groups[1], "other")
	c.waitSame(g, 5)
	c.waitQuiesced()
	old := c.leader(g)
	c.stop(old)
	ticks(200) // twenty election timeouts
	live := map[NodeID]bool{}
	for id, n := range c.nodes {
		live[id] = true
		if lead := n.Leader(g); lead != old {
			t.Fatalf("node %d: group %d led by %d, want still %d: a quiesced replica ticked", id, g, lead, old)
		}
	}
	for _, n := range c.nodes {
		n.WakeForMembers(live)
	}
	if lead := c.leader(g); lead == old {
		t.Fatalf("the stopped node %d still leads", old)
	}
	c.propose(g, "after")
	if got := c.waitSame(g, 6); got[5] != "after" {
		t.Fatalf("group %d applied %v", g, got)
	}
}

// TestRestartedReplicaWakesQuiescedGroup: a follower restarted while its
// group is quiesced hears no heartbeat, campaigns, and its vote requests
// wake the others: it learns the leader and catches up.
func TestRestartedReplicaWakesQuiescedGroup(t *testing.T) {
	c := newCluster(t, true, 3, 1)
	g := c.groups[0]
	c.propose(g, "one")
	c.waitSame(g, 1)
	lead := c.leader(g)
	var follower NodeID
	for _, id := range c.ids {
		if id != lead {
			follower = id
			break
		}
	}
	c.waitQuiesced()
	c.stop(follower)
	c.propose(g, "while down") // wakes it; it quiesces again without the follower
	c.waitQuiesced()
	c.start(follower)
	c.propose(g, "after")
	c.waitSame(g, 3)
	c.waitQuiesced()
}

// TestLoneVoterQuiesces: a node alone in its groups quiesces them all
// and still answers at once.
func TestLoneVoterQuiesces(t *testing.T) {
	c := newCluster(t, false, 1, 3)
	c.waitQuiesced()
	n := c.nodes[c.ids[0]]
	for _, g := range c.groups {
		if _, err := n.Propose(t.Context(), g, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	c.waitQuiesced()
}

// TestQuiescedLeaderStepsDownOnceWoken: a quiesced leader whose
// followers both stop keeps claiming the lead — it does not tick — until
// told its live voters are no quorum (WakeForMembers); then CheckQuorum
// steps it down.
func TestQuiescedLeaderStepsDownOnceWoken(t *testing.T) {
	c := newCluster(t, false, 3, 1)
	g := c.groups[0]
	c.propose(g, "one")
	c.waitSame(g, 1)
	c.waitQuiesced()
	lead := c.leader(g)
	for _, id := range c.ids {
		if id != lead {
			c.stop(id)
		}
	}
	n := c.nodes[lead]
	ticks(100)
	if got := n.Leader(g); got != lead {
		t.Fatalf("group %d led by %d, want still %d: a quiesced leader ticked", g, got, lead)
	}
	// Its followers still live: nothing to wake.
	n.WakeForMembers(map[NodeID]bool{1: true, 2: true, 3: true})
	ticks(100)
	if got := n.Leader(g); got != lead {
		t.Fatalf("group %d led by %d after a wake-up with a live quorum, want still %d", g, got, lead)
	}
	n.WakeForMembers(map[NodeID]bool{lead: true})
	deadline := time.Now().Add(10 * time.Second)
	for n.Leader(g) == lead {
		if time.Now().After(deadline) {
			t.Fatal("the leader without a quorum never stepped down")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
