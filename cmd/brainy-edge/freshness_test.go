package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// TestEdgeFreshAcrossCoreKills is the freshness contract when the core an
// edge listens to dies without a word: a 3-node cluster, an edge given all
// three, an item cached at the edge; the core the edge uses is SIGKILLed
// and the item rewritten through another node. No read through the edge
// may return the old value as a fresh hit later than 1 s after the
// rewrite was acknowledged (a dead core pushes no changes; the edge must
// notice the silence, not wait for QUIC's idle timeout). Then the core
// restarts and rejoins, and the next round kills the core the edge uses
// by then. BRAINY_EDGE_KILLS sets the rounds (default 20).
func TestEdgeFreshAcrossCoreKills(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three cores and an edge, and kills cores")
	}
	kills := 20
	if s := os.Getenv("BRAINY_EDGE_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	cores, coreArgs, edgeTLS := startThreeCores(t, 61)
	var upstreams []string
	for _, c := range cores {
		upstreams = append(upstreams, c.QUICAddr)
	}
	edge := coretest.Start(t, edgeBin, nil, append(edgeTLS,
		"--upstream", strings.Join(upstreams, ","), "--cache-size", "16777216", "--cache-ttl", "60s")...)

	var lags []time.Duration // per round: how long after the ack the old value was last a fresh hit
	for round := range kills {
		old, next := fmt.Sprintf(`"round-%d"`, round), fmt.Sprintf(`"round-%d-rewritten"`, round)
		victim := edgeCore(t, edge, upstreams)
		other := cores[(victim+1)%3]
		putRetrying(t, other, old)
		waitFor(t, "the item cached at the edge", func() bool {
			_, body, xc := doH(t, edge.URL("/v1/items/x"))
			return xc == "HIT" && strings.Contains(body, old)
		})

		cores[victim].Kill()
		putRetrying(t, other, next)
		acked := time.Now()
		var lag time.Duration
		for time.Since(acked) < 1500*time.Millisecond {
			_, body, xc := doH(t, edge.URL("/v1/items/x"))
			if xc == "HIT" && strings.Contains(body, old) {
				lag = time.Since(acked)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lags = append(lags, lag)
		if lag > time.Second {
			t.Errorf("round %d: the edge served the old value as a fresh hit %v after the rewrite was acknowledged\n%s",
				round, lag.Round(time.Millisecond), lastLines(edge.Log(), 20))
		}

		cores[victim] = coretest.StartCore(t, coreBin, nil, append(coreArgs(victim), "--peers", other.GossipAddr)...)
		waitThreeVoters(t, cores)
	}
	slices.Sort(lags)
	t.Logf("%d kills: old value served as a fresh hit until, after the ack: p50 %v, p99 %v, max %v", kills,
		lags[len(lags)/2].Round(time.Millisecond), lags[len(lags)*99/100].Round(time.Millisecond), lags[len(lags)-1].Round(time.Millisecond))
}

// edgeCore returns the index in upstreams of the core the edge calls.
func edgeCore(t *testing.T, edge *coretest.Process, upstreams []string) int {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		code, body := do(t, "GET", edge.URL("/v1/metrics"), "")
		var s nodestats.Snapshot
		if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
			t.Fatalf("edge metrics: %d %s", code, body)
		}
		for _, n := range s.Nodes.List {
			if i := slices.Index(upstreams, n.Address); n.Healthy && i >= 0 {
				return i
			}
		}
		do(t, "GET", edge.URL("/v1/items/x"), "") // a call makes the edge pick a core
	}
	t.Fatal("the edge reports no core it uses")
	return -1
}

// putRetrying writes x = value through core, retrying while the cluster
// settles after a kill (503: no leader yet).
func putRetrying(t *testing.T, core *coretest.Process, value string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body := do(t, "PUT", core.URL("/v1/items/x"), `{"data":`+value+`}`)
		if code == 200 || code == 201 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUT x=%s through %s: %d %s", value, core.Addr, code, body)
		}
	}
}

// waitThreeVoters waits until every core holds every partition with three
// voters, so that killing any one core leaves every partition a quorum.
func waitThreeVoters(t *testing.T, cores []*coretest.Process) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ok := true
		for _, c := range cores {
			code, body := do(t, "GET", c.URL("/v1/metrics"), "")
			var s nodestats.Snapshot
			if code != 200 || json.Unmarshal([]byte(body), &s) != nil {
				ok, last = false, fmt.Sprintf("%s metrics: %d", c.Addr, code)
				break
			}
			if len(s.Partitions) != 64 {
				ok, last = false, fmt.Sprintf("%s holds %d partitions", c.Addr, len(s.Partitions))
				break
			}
			for _, p := range s.Partitions {
				if len(p.Voters) != 3 || p.Leader == "" {
					ok, last = false, fmt.Sprintf("%s: partition %d has voters %v, leader %q", c.Addr, p.ID, p.Voters, p.Leader)
					break
				}
			}
		}
		if ok {
			return
		}
	}
	t.Fatalf("the cluster did not settle: %s", last)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// startThreeCores starts a 3-node cluster on 127.0.0.<first>…<first+2>
// with a random cluster secret and waits until every partition has three
// voters. coreArgs(i) restarts node i as it was started (add --peers);
// edgeFlags enrol an edge with the cluster.
func startThreeCores(t *testing.T, first int) (cores []*coretest.Process, coreArgs func(int) []string, edgeFlags []string) {
	t.Helper()
	dir := t.TempDir()
	secret := newSecret(t)
	coreArgs = func(i int) []string {
		return []string{"--bind", fmt.Sprintf("127.0.0.%d", first+i), "--storage", filepath.Join(dir, fmt.Sprint("node-", i)),
			"--node-id", fmt.Sprint("node-", i), "--cluster-secret", secret}
	}
	cores = make([]*coretest.Process, 3)
	cores[0] = coretest.StartCore(t, coreBin, nil, coreArgs(0)...)
	for i := 1; i < 3; i++ {
		cores[i] = coretest.StartCore(t, coreBin, nil, append(coreArgs(i), "--peers", cores[0].GossipAddr)...)
	}
	waitThreeVoters(t, cores)
	return cores, coreArgs, enrolment(t, cores[0], filepath.Join(dir, "edge-tls"), coreArgs(0)...)
}
