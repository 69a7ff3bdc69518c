package cluster

import (
	"testing"

	"github.com/soullabs/brainy/internal/query/querytest"
)

// TestFindAcrossCluster: finds through any member of a 3-node cluster
// answer as brute force over the items written through another, page
// after page.
func TestFindAcrossCluster(t *testing.T) {
	c := newTestCluster(t)
	n1 := c.start("node-1")
	c.start("node-2")
	c.start("node-3")
	c.waitPlacement(3)
	g := querytest.New(3)
	items := g.Items(300)
	querytest.Write(t, n1.node, "t", items)
	for _, id := range []string{"node-2", "node-3"} {
		querytest.Check(t, g, c.members[id].node, "t", items, 20)
	}
}
