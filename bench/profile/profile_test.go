package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchrun"
	"github.com/soullabs/brainy/loadtest"
)

// metricsBody builds a /v1/metrics body: self sees healthy nodes and holds
// partitions 0..parts-1, led by leader(p), with the given learners;
// tuning, if not empty, is added as the "tuning" section.
func metricsBody(self string, healthy, parts int, leader func(int) string, learners []string, tuning string) []byte {
	var ps []string
	for p := range parts {
		l, _ := json.Marshal(learners)
		ps = append(ps, fmt.Sprintf(`{"id":%d,"leader":%q,"voters":["n1","n2","n3"],"learners":%s,"applied":7}`, p, leader(p), l))
	}
	extra := ""
	if tuning != "" {
		extra = `,"tuning":` + tuning
	}
	return fmt.Appendf(nil, `{"nodes":{"total":3,"healthy":%d,"self":%q,"leader":"n1","list":[]},"shards":{"total":%d},
"storage":{"backend":"disk","items":1234,"bytes":99},"partitions":[%s]%s}`, healthy, self, parts, strings.Join(ps, ","), extra)
}

func mustParse(t *testing.T, body []byte) *metricsView {
	t.Helper()
	v, err := parseMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseMetrics(t *testing.T) {
	tuning := "{\n  \"mode\": \"auto\",\n  \"cache_bytes\": 1048576\n}"
	v := mustParse(t, metricsBody("n2", 3, 4, func(p int) string { return "n1" }, []string{"n4"}, tuning))
	if v.Nodes.Self != "n2" || v.Nodes.Healthy != 3 || v.Storage.Items != 1234 || len(v.Partitions) != 4 {
		t.Fatalf("parsed %+v", v)
	}
	if p := v.Partitions[3]; p.ID != 3 || p.Leader != "n1" || !slices.Equal(p.Learners, []string{"n4"}) || len(p.Voters) != 3 {
		t.Fatalf("partition %+v", p)
	}
	if string(v.Tuning) != tuning {
		t.Fatalf("tuning %q, want it verbatim: %q", v.Tuning, tuning)
	}
	for _, absent := range []string{"", "null"} {
		v := mustParse(t, metricsBody("n1", 3, 1, func(int) string { return "n1" }, nil, absent))
		if v.Tuning != nil {
			t.Fatalf("tuning %q: kept %q, want none", absent, v.Tuning)
		}
	}
	if _, err := parseMetrics([]byte("<html>")); err == nil {
		t.Fatal("a body that is not JSON parsed")
	}
}

func TestReadyWhy(t *testing.T) {
	const parts = 8
	rot := func(p int) string { return fmt.Sprintf("n%d", p%3+1) }
	views := func(healthy int, leader func(int) string) []*metricsView {
		var vs []*metricsView
		for _, id := range []string{"n1", "n2", "n3"} {
			vs = append(vs, mustParse(t, metricsBody(id, healthy, parts, leader, nil, "")))
		}
		return vs
	}
	why, leaders := readyWhy(views(3, rot), 3, parts)
	if why != "" || len(leaders) != parts || leaders[4] != "n2" {
		t.Fatalf("ready cluster: %q, %v", why, leaders)
	}
	if why, l := readyWhy(views(2, rot), 3, parts); why == "" || l != nil {
		t.Fatal("a node seeing 2 healthy nodes counted as ready")
	}
	noLeader := func(p int) string {
		if p == 5 {
			return ""
		}
		return rot(p)
	}
	if why, _ := readyWhy(views(3, noLeader), 3, parts); !strings.Contains(why, "partition 5 has no leader") {
		t.Fatalf("leaderless partition: %q", why)
	}
	if why, _ := readyWhy(views(3, rot), 3, parts+1); why == "" {
		t.Fatal("a missing partition counted as ready")
	}
	vs := views(3, rot)
	vs[2] = mustParse(t, metricsBody("n3", 3, parts, func(int) string { return "n3" }, nil, ""))
	if why, _ := readyWhy(vs, 3, parts); !strings.Contains(why, "leader") {
		t.Fatalf("disagreeing leaders: %q", why)
	}
}

func TestLearnerWhy(t *testing.T) {
	n1 := func(int) string { return "n1" }
	if why := learnerWhy(mustParse(t, metricsBody("n1", 4, 6, n1, []string{"n4"}, "")), "n4", 6); why != "" {
		t.Fatalf("reader everywhere: %q", why)
	}
	if why := learnerWhy(mustParse(t, metricsBody("n1", 4, 6, n1, nil, "")), "n4", 6); !strings.Contains(why, "6 of 6") {
		t.Fatalf("reader nowhere: %q", why)
	}
	if why := learnerWhy(mustParse(t, metricsBody("n1", 4, 5, n1, []string{"n4"}, "")), "n4", 6); why == "" {
		t.Fatal("a missing partition counted as joined")
	}
}

func TestPartitionsOf(t *testing.T) {
	for _, c := range []struct {
		args string
		want int
	}{
		{"", 64},
		{"--profile auto", 64},
		{"--partitions 16", 16},
		{"-partitions=8 --profile auto", 8},
		{"--partitions bad", 64},
		{"--partitions", 64},
	} {
		if got := partitionsOf(strings.Fields(c.args), 64); got != c.want {
			t.Errorf("partitionsOf(%q) = %d, want %d", c.args, got, c.want)
		}
	}
}

func TestSplitConns(t *testing.T) {
	for _, c := range []struct {
		total, n int
		want     []int
	}{
		{48, 3, []int{16, 16, 16}},
		{48, 4, []int{12, 12, 12, 12}},
		{50, 4, []int{13, 13, 12, 12}},
		{4, 4, []int{1, 1, 1, 1}},
	} {
		got := splitConns(c.total, c.n)
		if !slices.Equal(got, c.want) {
			t.Errorf("splitConns(%d, %d) = %v, want %v", c.total, c.n, got, c.want)
		}
	}
}

func TestCPUTicks(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 7 11 0\ncpu0 50 2 25 500 10 1 1 3 5 0\nintr 12345\n"
	busy, total, err := cpuTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// busy: user+nice+system+irq+softirq; total adds idle, iowait, steal
	// (guest is already in user).
	if busy != 160 || total != 1187 {
		t.Fatalf("busy %d total %d, want 160 1187", busy, total)
	}
	if _, _, err := cpuTicks([]byte("intr 1\n")); err == nil {
		t.Fatal("no cpu line parsed")
	}
	if _, _, err := cpuTicks([]byte("cpu  1 2 x 4 5 6 7 8\n")); err == nil {
		t.Fatal("a bad field parsed")
	}
}

func TestItemBody(t *testing.T) {
	for _, size := range []int{64, 200, 1000} {
		b := itemBody(size, 3)
		if len(b) != size {
			t.Errorf("itemBody(%d) is %d bytes", size, len(b))
		}
		var it struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal(b, &it); err != nil || it.Type != "bench" {
			t.Errorf("itemBody(%d): %v %+v", size, err, it)
		}
	}
}

// TestLoadConfigs: the loads the driver builds pass the loadtest
// package's validation, and the stale-read load carries its query.
func TestLoadConfigs(t *testing.T) {
	b := &bench{cfg: Config{Base: benchrun.Base{BrainyCore: "x", WorkDir: "y"}, Warmup: 20 * time.Second}}
	b.cfg.EnsureDefaults()
	n := &node{ID: "n1", IP: "127.0.0.91"}
	for _, k := range []loadKind{loadMixed, loadStaleReads} {
		c := b.loadConfig(k, n, 16, 1)
		c.EnsureDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("kind %d: %v", k, err)
		}
		if c.Warmup != 20*time.Second || c.Duration != 50*time.Second || c.KeyDist != "zipf:0.99" || c.Keys != 100000 {
			t.Fatalf("kind %d: %+v", k, c)
		}
	}
	if c := b.loadConfig(loadMixed, n, 16, 1); c.Mix != "read=95,write=5" || c.Target != "http://127.0.0.91:7070" {
		t.Fatalf("mixed: %q %q", c.Mix, c.Target)
	}
	if c := b.loadConfig(loadStaleReads, n, 16, 1); c.Target != "http://127.0.0.91:7070/v1/items/pf-{key}?consistency=stale" {
		t.Fatalf("stale: %q", c.Target)
	}
}

// fakeLoad is a merged load result of rps req/s with every latency
// equal to lat.
func fakeLoad(t *testing.T, rps float64, lat time.Duration) *loadResult {
	t.Helper()
	r := &loadtest.Result{Format: loadtest.ResultFormat, Model: "closed", Workload: "items", MeasuredS: 10,
		Requests: int64(rps * 10), Ops: map[string]*loadtest.OpResult{}}
	r.Latency = loadtest.Hist{Counts: []int64{lat.Microseconds(), r.Requests}}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	d, err := loadtest.DecodeResult(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return &loadResult{total: d, perNode: []*loadtest.Result{d}, nodeIDs: []string{"n1"}, conns: []int{48}, busyCores: 1.9}
}

// TestSummary renders a report from made-up results: the ratios, the
// verdict and the tuning sections verbatim.
func TestSummary(t *testing.T) {
	b := &bench{cfg: Config{Base: benchrun.Base{BrainyCore: "x", WorkDir: "y", Log: slog.New(slog.DiscardHandler)},
		AArgs: "--profile balanced", BArgs: "--profile auto", Rounds: 1}}
	b.cfg.EnsureDefaults()
	b.res.started = time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)
	b.res.profile = []*profileRun{
		{round: 1, config: "A", load: fakeLoad(t, 1000, 4*time.Millisecond)},
		{round: 1, config: "B", load: fakeLoad(t, 1400, 3*time.Millisecond), tuning: map[string]string{"n1": `{"cache": 12}`}},
	}
	b.res.reader = &readerResult{before: fakeLoad(t, 2000, 2*time.Millisecond), after: fakeLoad(t, 2500, 2*time.Millisecond)}
	var out bytes.Buffer
	b.summary(&out)
	s := out.String()
	for _, want := range []string{"B/A req/s 1.40", "Goal (B ≥ 1.3× A's req/s and a lower p99): met", "```json\n{\"cache\": 12}\n```",
		"After/before: req/s 1.25", "| 1 | A | 1000 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}
