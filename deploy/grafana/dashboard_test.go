package grafana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/nodestats"
)

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource *datasource       `json:"datasource"`
	GridPos    gridPos           `json:"gridPos"`
	Targets    []json.RawMessage `json:"targets"`
	// Panels holds a collapsed row's panels.
	Panels []panel `json:"panels"`
}

type gridPos struct{ H, W, X, Y int }

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// target is a Prometheus query, decoded strictly: a misspelt field would
// leave a panel silently empty.
type target struct {
	Datasource   *datasource `json:"datasource"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	Range        bool        `json:"range"`
	RefID        string      `json:"refId"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *datasource `json:"datasource"`
}

// dsVar is the data source every query must name, so the dashboard works
// with whatever Prometheus the importer picks.
var dsVar = datasource{Type: "prometheus", UID: "${datasource}"}

// query is one expression and where it comes from, for messages.
type query struct{ where, expr string }

func load(t *testing.T) (*dashboard, []query) {
	t.Helper()
	b, err := os.ReadFile("brainy.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("brainy.json: %v", err)
	}
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for i, raw := range p.Targets {
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				var tg target
				if err := dec.Decode(&tg); err != nil {
					t.Fatalf("panel %q target %d: %v", p.Title, i, err)
				}
				where := fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)
				if tg.Expr == "" {
					t.Errorf("%s: no expr", where)
				}
				if tg.Datasource == nil || *tg.Datasource != dsVar {
					t.Errorf("%s: datasource %v, want %v", where, tg.Datasource, dsVar)
				}
				qs = append(qs, query{where, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return &d, qs
}

// TestDashboardMetricsExist: every brainy_* series the dashboard queries is
// one the real collectors expose, so a renamed or removed metric fails
// here rather than leaving a panel quietly empty; counters (and histogram
// series) are read through rate or increase, gauges as they are; and
// every selector follows the job and instance variables.
func TestDashboardMetricsExist(t *testing.T) {
	_, qs := load(t)
	if len(qs) == 0 {
		t.Fatal("no queries found")
	}
	types := exposed(t)
	for _, q := range qs {
		us, err := uses(q.expr)
		if err != nil {
			t.Errorf("%s: %v in %s", q.where, err, q.expr)
			continue
		}
		if len(us) == 0 {
			t.Errorf("%s: no brainy_ metric in %s", q.where, q.expr)
		}
		for _, u := range us {
			family, typ := familyOf(u.name, types)
			if typ == "" {
				t.Errorf("%s: %s is not a metric the collectors expose", q.where, u.name)
				continue
			}
			rated := slices.Contains(u.in, "rate") || slices.Contains(u.in, "increase")
			switch {
			case typ == "HISTOGRAM" && family == u.name:
				t.Errorf("%s: %s is a histogram: query its _bucket, _sum or _count", q.where, u.name)
			case (typ == "COUNTER" || typ == "HISTOGRAM" || strings.HasSuffix(u.name, "_total")) && !rated:
				t.Errorf("%s: counter %s outside rate( or increase(", q.where, u.name)
			case typ == "GAUGE" && (rated || slices.Contains(u.in, "irate")):
				t.Errorf("%s: gauge %s inside a rate", q.where, u.name)
			}
			for _, m := range []string{`job=~"$job"`, `instance=~"$instance"`} {
				if !strings.Contains(u.matchers, m) {
					t.Errorf("%s: %s{%s} lacks %s", q.where, u.name, u.matchers, m)
				}
			}
		}
	}
}

// TestDashboardShape: what Grafana needs to import the dashboard and show
// every panel — titles, unique ids, positions on its 24-column grid, the
// data source variable, and the job and instance variables drawn from a
// metric every node serves.
func TestDashboardShape(t *testing.T) {
	d, _ := load(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("title %q, uid %q, schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Title == "" {
				t.Errorf("panel %d has no title", p.ID)
			}
			if other, dup := ids[p.ID]; dup || p.ID <= 0 {
				t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, g)
			}
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no queries", p.Title)
				}
				if p.Datasource == nil || *p.Datasource != dsVar {
					t.Errorf("panel %q: datasource %v, want %v", p.Title, p.Datasource, dsVar)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("datasource variable: %+v", v)
	}
	for _, name := range []string{"job", "instance"} {
		v := vars[name]
		q, _ := v.Query.(string)
		if v.Type != "query" || v.Datasource == nil || *v.Datasource != dsVar ||
			!strings.HasPrefix(q, "label_values(brainy_node_healthy") || !strings.HasSuffix(q, ", "+name+")") {
			t.Errorf("%s variable: %+v", name, v)
		}
	}
}

// exposed returns the type of every metric family the collectors gather,
// by name. It builds them as a node does — httpapi's handler and an edge's
// cache on one registry — over a backend whose snapshot fills every
// section, since several metrics appear only when theirs is present.
func exposed(t *testing.T) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	cache, err := edge.NewCache(edge.CacheConfig{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	if err := cache.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewHandler(httpapi.Config{Registry: reg}, fullBackend{})
	if err != nil {
		t.Fatal(err)
	}
	// The request metrics have no series before the first request.
	var req fasthttp.Request
	req.SetRequestURI("/metrics")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	h.Serve(&ctx)
	if c := ctx.Response.StatusCode(); c != fasthttp.StatusOK {
		t.Fatalf("/metrics: %d %s", c, ctx.Response.Body())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, mf := range mfs {
		types[mf.GetName()] = mf.GetType().String()
	}
	return types
}

// familyOf returns the family a series name belongs to and its type, ""
// if none: a histogram's series add _bucket, _sum and _count to its name.
func familyOf(name string, types map[string]string) (family, typ string) {
	if typ, ok := types[name]; ok {
		return name, typ
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, s); ok && types[base] == "HISTOGRAM" {
			return base, "HISTOGRAM"
		}
	}
	return name, ""
}

// fullBackend is a node with a non-zero value in every section of its
// snapshot. Its item methods (the nil embedded Backend) are never called:
// only /metrics is served.
type fullBackend struct{ httpapi.Backend }

func (fullBackend) Healthy() bool { return true }

func (fullBackend) Metrics() nodestats.Snapshot {
	avail := int64(1 << 30)
	return nodestats.Snapshot{
		Nodes: nodestats.Nodes{Total: 3, Healthy: 3, Self: "n1", Leader: "n1",
			List: []nodestats.Node{{ID: "n1", Role: "core", Address: "127.0.0.1:7070", Healthy: true, Shards: 8, RTTMs: 1.5}}},
		Shards:      nodestats.Shards{Total: 16, Leaders: 5, Replicas: 8, Local: 8},
		Replication: nodestats.Replication{Factor: 3, Mode: "raft", LagEntries: 2, Lag: 2, Elections: 1, SnapshotsSent: 1, SnapshotsInstalled: 1, SnapshotBytes: 4096, RejectedMessages: 1, FeedLapses: 1},
		Operations:  nodestats.Operations{Adds: 1, Gets: 2, Updates: 3, Deletes: 4, Lists: 5, Errors: 1, Forwarded: 1, Commits: 2, StoredWrites: 8},
		Storage: nodestats.Storage{Backend: "tiered", Items: 10, Bytes: 4096, Used: 4096, Available: &avail,
			Tiers: []nodestats.Tier{{Name: "hot", Bytes: 2048, Demoted: 1, Promoted: 1}, {Name: "cold", Bytes: 2048}}},
		Cache:      nodestats.Cache{Enabled: true, Hits: 3, Misses: 1, Ratio: 0.75, Bytes: 1024},
		Partitions: []nodestats.Partition{{ID: 1, Leader: "n1", Voters: []string{"n1"}, Applied: 9}},
		Federation: &nodestats.Federation{Name: "f", Region: "eu", Replaced: 1, Conflicts: 1, SkewRefused: 1, Received: 1, TombstonesCollected: 1,
			Regions: []nodestats.Region{{Name: "us", Nodes: 3, Healthy: true, RTTMs: 80, LagMs: 120, Sent: 7}}},
		Routing: &nodestats.Routing{Region: "eu", Rescued: 1, Regions: []nodestats.RouteRegion{{Name: "eu", Nodes: 3, Up: 3, RTTMs: 2}}},
		Sync:    &nodestats.Sync{From: "blue:7070", State: "following", LagMs: 5, ItemsCopied: 100, Partitions: 4},
		Vectors: &nodestats.Vectors{State: "ready", Vectors: 10, Graphs: 1, Bytes: 4096, Budget: 1 << 30, Builds: 1},
	}
}

// use is one metric a query names: the functions it sits inside,
// innermost last, and the label matchers written after it.
type use struct {
	name     string
	in       []string
	matchers string
}

// uses finds the brainy_* metrics of a PromQL expression. It knows just
// enough of the grammar for the question asked: string literals are
// skipped, so a label value never counts as a metric, and each opening
// parenthesis is tied to the identifier just before it, if any, so that a
// metric inside rate( … ) can be told from one that is not.
func uses(expr string) ([]use, error) {
	var out []use
	var stack []string
	last := ""
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(expr, i)
			if err != nil {
				return nil, err
			}
			i, last = end, ""
		case c == '(':
			stack = append(stack, last)
			i, last = i+1, ""
		case c == ')':
			if len(stack) == 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			stack = stack[:len(stack)-1]
			i, last = i+1, ""
		case isIdent(c) && !('0' <= c && c <= '9'):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			if strings.HasPrefix(word, "brainy_") {
				u := use{name: word, in: slices.Clone(stack)}
				if j < len(expr) && expr[j] == '{' {
					end, err := closeBrace(expr, j)
					if err != nil {
						return nil, err
					}
					u.matchers, j = expr[j+1:end], end+1
				}
				out = append(out, u)
			}
			i, last = j, word
		case c == ' ' || c == '\t' || c == '\n':
			i++
		default:
			i, last = i+1, ""
		}
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("%d unclosed (", len(stack))
	}
	return out, nil
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipString returns the index just past the string literal at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at %d", i)
}

// closeBrace returns the index of the } closing the matchers at i; a
// regular expression's braces are inside quotes and skipped.
func closeBrace(s string, i int) (int, error) {
	for j := i + 1; j < len(s); {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end
		case '}':
			return j, nil
		default:
			j++
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}

// TestUses keeps the expression scanner honest on the shapes the
// dashboard relies on.
func TestUses(t *testing.T) {
	us, err := uses(`sum by (route) (rate(brainy_a_total{job=~"$job", x="brainy_not_a_metric}"}[5m])) / brainy_b{instance=~"$instance"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 2 ||
		us[0].name != "brainy_a_total" || !slices.Equal(us[0].in, []string{"", "rate"}) || us[0].matchers != `job=~"$job", x="brainy_not_a_metric}"` ||
		us[1].name != "brainy_b" || len(us[1].in) != 0 || us[1].matchers != `instance=~"$instance"` {
		t.Errorf("uses: %+v", us)
	}
	if _, err := uses(`rate(brainy_a_total[5m]`); err == nil {
		t.Error("an unclosed ( passed")
	}
}
