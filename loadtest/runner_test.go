package loadtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallServer answers at once except during the first stall of every
// second since it started, when it holds every request until the stall ends.
func stallServer(t *testing.T, stall time.Duration) string {
	t.Helper()
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if phase := time.Since(start) % time.Second; phase < stall {
			time.Sleep(stall - phase)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

// TestOpenModelSeesStall is the reason this package exists: a 100 ms stall
// every second at 1,000 req/s must show in the open model's p99, while a
// closed loop against the same server hides it (coordinated omission).
func TestOpenModelSeesStall(t *testing.T) {
	url := stallServer(t, 100*time.Millisecond)

	open := LocalConfig(url)
	open.Rate = 1000
	open.Connections = 64
	open.Duration = 3 * time.Second
	ro := run(t, open)

	closed := LocalConfig(url)
	closed.Connections = 2
	closed.Duration = 3 * time.Second
	rc := run(t, closed)

	t.Logf("open:   %d requests, p50 %s p99 %s max %s, service p99 %s, late %d dropped %d",
		ro.Requests, fmtUS(ro.Summary.P50US), fmtUS(ro.Summary.P99US), fmtUS(ro.Summary.MaxUS),
		fmtUS(ro.ServiceSum.P99US), ro.Late, ro.Dropped)
	t.Logf("closed: %d requests, p50 %s p99 %s max %s",
		rc.Requests, fmtUS(rc.Summary.P50US), fmtUS(rc.Summary.P99US), fmtUS(rc.Summary.MaxUS))

	if ro.Errors != 0 || rc.Errors != 0 {
		t.Fatalf("errors: open %s, closed %s", ro.ErrorBreakdown(), rc.ErrorBreakdown())
	}
	if ro.Summary.P99US < 50_000 {
		t.Errorf("open model p99 = %s, want >= 50ms: the injected stall is hidden", fmtUS(ro.Summary.P99US))
	}
	if rc.Summary.MaxUS < 50_000 {
		t.Errorf("closed loop max = %s, want >= 50ms: the stall did not happen", fmtUS(rc.Summary.MaxUS))
	}
	if rc.Summary.P99US >= 50_000 {
		t.Errorf("closed loop p99 = %s, want well below the 100ms stall (coordinated omission hides it)", fmtUS(rc.Summary.P99US))
	}
	if rc.Requests < 500 {
		t.Errorf("closed loop sent only %d requests in 3 s", rc.Requests)
	}
	if ro.Scheduled != ro.Sent+ro.Dropped {
		t.Errorf("scheduled %d != sent %d + dropped %d", ro.Scheduled, ro.Sent, ro.Dropped)
	}
	if ro.Scheduled < 2900 || ro.Scheduled > 3001 {
		t.Errorf("scheduled = %d, want about 3000 (1000/s for 3 s)", ro.Scheduled)
	}
	if ro.Late == 0 {
		t.Errorf("late = 0, want the sends queued behind the stall counted")
	}
	if len(ro.Series) < 2 || len(ro.Series) > 4 {
		t.Errorf("series has %d points for a 3 s run", len(ro.Series))
	}
}

// TestOpenModelCountsLateAndDropped overloads a slow server: sends fall
// behind schedule (late) and those still due at the end are dropped, and
// neither is hidden.
func TestOpenModelCountsLateAndDropped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Rate = 200 // capacity with one connection is 50/s
	cfg.Connections = 1
	cfg.Duration = time.Second
	r := run(t, cfg)
	t.Logf("scheduled %d sent %d late %d dropped %d p50 %s p99 %s service p99 %s",
		r.Scheduled, r.Sent, r.Late, r.Dropped, fmtUS(r.Summary.P50US), fmtUS(r.Summary.P99US), fmtUS(r.ServiceSum.P99US))
	if r.Scheduled < 195 || r.Scheduled > 201 {
		t.Errorf("scheduled = %d, want about 200", r.Scheduled)
	}
	if r.Sent+r.Dropped != r.Scheduled {
		t.Errorf("sent %d + dropped %d != scheduled %d", r.Sent, r.Dropped, r.Scheduled)
	}
	if r.Sent > 60 || r.Dropped < 100 {
		t.Errorf("sent %d dropped %d, want at most ~50 sent and the rest dropped", r.Sent, r.Dropped)
	}
	if r.Late < r.Sent-2 {
		t.Errorf("late = %d of %d sent, want nearly all late", r.Late, r.Sent)
	}
	if r.Summary.P99US < 300_000 {
		t.Errorf("p99 = %s, want the growing backlog (>= 300ms) in the latency", fmtUS(r.Summary.P99US))
	}
	if r.ServiceSum.P99US > 300_000 {
		t.Errorf("service p99 = %s, want about 20ms", fmtUS(r.ServiceSum.P99US))
	}
	var text strings.Builder
	r.WriteText(&text)
	for _, want := range []string{"late", "dropped (never sent)", "open model"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
}

func TestRequestLimitAndWarmup(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)

	cfg := LocalConfig(srv.URL + "/x")
	cfg.Duration = -1
	cfg.Requests = 500
	r := run(t, cfg)
	if r.Requests != 500 || hits.Load() != 500 {
		t.Errorf("requests %d, server saw %d, want 500", r.Requests, hits.Load())
	}
	if r.Latency.Total() != 500 {
		t.Errorf("histogram holds %d, want 500", r.Latency.Total())
	}

	hits.Store(0)
	cfg = LocalConfig(srv.URL)
	cfg.Rate = 200
	cfg.Duration = 1500 * time.Millisecond
	cfg.Warmup = 700 * time.Millisecond
	r = run(t, cfg)
	// About 800 ms of 200/s measured; about 300 requests sent in all.
	if r.Requests < 100 || r.Requests > 200 || hits.Load() < 250 {
		t.Errorf("measured %d of %d sent, want about 160 of 300", r.Requests, hits.Load())
	}
	if r.WarmupS != 0.7 || r.MeasuredS < 0.7 || r.MeasuredS > 1.2 {
		t.Errorf("warmup %.3fs measured %.3fs", r.WarmupS, r.MeasuredS)
	}
}

func TestInterruptReportsWhatRan(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Duration = time.Minute
	var progress atomic.Int64
	cfg.Progress = func(p Progress) {
		progress.Add(1)
		if p.Remaining <= 0 || !strings.Contains(p.String(), "req/s") {
			t.Errorf("progress %+v: %s", p, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1300*time.Millisecond)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Requests == 0 || r.ElapsedS > 10 {
		t.Errorf("interrupted %v requests %d elapsed %.1fs", r.Interrupted, r.Requests, r.ElapsedS)
	}
	if progress.Load() < 1 {
		t.Errorf("progress was never reported")
	}
}

func TestErrorBreakdown(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 1:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Duration = -1
	cfg.Requests = 400
	r := run(t, cfg)
	if r.Status[503] != 100 || r.Status[404] != 100 || r.Status[200] != 200 || r.Errors != 200 {
		t.Errorf("status %v errors %d, want 100×503, 100×404, 200×200", r.Status, r.Errors)
	}

	// A port nobody listens on: transport errors, classified.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg = LocalConfig("http://" + addr + "/")
	cfg.Duration = -1
	cfg.Requests = 20
	cfg.Connections = 2
	r = run(t, cfg)
	if r.Errors != 20 || r.TransportErrors["connection refused"] != 20 || r.Requests != 0 {
		t.Errorf("errors %d transport %v requests %d, want 20 connection refused", r.Errors, r.TransportErrors, r.Requests)
	}
}

// fakeBrainy is a minimal item API that checks what the generator sends.
type fakeBrainy struct {
	mu      sync.Mutex
	items   map[string]bool
	methods map[string]int
	bad     []string
}

func (f *fakeBrainy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.methods[r.Method]++
	if r.Header.Get("X-Brainy-Tenant") != "acme" || r.Header.Get("Authorization") != "Bearer k1" || r.Header.Get("X-Extra") != "yes" {
		f.bad = append(f.bad, "headers: "+r.Method+" "+r.URL.Path)
	}
	id, isItem := strings.CutPrefix(r.URL.Path, "/v1/items/")
	switch {
	case r.Method == "GET" && isItem:
		if !f.items[id] {
			w.WriteHeader(http.StatusNotFound)
		}
	case r.Method == "PUT" && isItem:
		body, _ := io.ReadAll(r.Body)
		if len(body) != 300 || !strings.HasPrefix(string(body), `{"type":"thing","data":{`) {
			f.bad = append(f.bad, "body: "+string(body))
		}
		f.items[id] = true
	case r.Method == "POST" && r.URL.Path == "/v1/items":
		w.WriteHeader(http.StatusCreated)
	default:
		f.bad = append(f.bad, "unexpected: "+r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusBadRequest)
	}
}

func TestItemsWorkloadWithPreload(t *testing.T) {
	f := &fakeBrainy{items: map[string]bool{}, methods: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Workload = WorkloadItems
	cfg.Mix = "read=80,write=15,add=5"
	cfg.Keys = 200
	cfg.KeyDist = "zipf:0.9"
	cfg.BodySize = 300
	cfg.ItemType = "thing"
	cfg.Tenant, cfg.APIKey, cfg.Headers = "acme", "k1", []string{"X-Extra: yes"}
	cfg.Preload = true
	cfg.Duration = -1
	cfg.Requests = 2000
	r := run(t, cfg)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Fatalf("server saw bad requests: %v", f.bad[:min(5, len(f.bad))])
	}
	if r.Preload == nil || r.Preload.Keys != 200 || r.Preload.Errors != 0 || len(f.items) != 200 {
		t.Fatalf("preload %+v, server holds %d items", r.Preload, len(f.items))
	}
	if r.Errors != 0 || r.Status[404] != 0 {
		t.Errorf("errors %d (%s): preload should make every read hit", r.Errors, r.ErrorBreakdown())
	}
	if len(r.Ops) != 3 || r.Ops["read"].Requests+r.Ops["write"].Requests+r.Ops["add"].Requests != r.Requests {
		t.Errorf("ops %v do not add up to %d", r.Ops, r.Requests)
	}
	if got := float64(r.Ops["read"].Requests) / float64(r.Requests); got < 0.75 || got > 0.85 {
		t.Errorf("read share %.3f, want 0.80±0.05", got)
	}
	if f.methods["POST"] == 0 || f.methods["PUT"] < 200 {
		t.Errorf("methods %v", f.methods)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{Target: "http://10.1.2.3/"})
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Errorf("remote target: err = %v", err)
	}
}

func TestInterruptedOpenModelDropsOnlyWhatWasDue(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Rate = 100
	cfg.Duration = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 1000*time.Millisecond)
	defer cancel()
	r, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Interrupted || r.Scheduled < 95 || r.Scheduled > 105 || r.Dropped > 5 {
		t.Errorf("interrupted %v scheduled %d sent %d dropped %d, want about 100 scheduled and none dropped",
			r.Interrupted, r.Scheduled, r.Sent, r.Dropped)
	}
}
