package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/loadtest"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr, false)
	return code, stdout.String(), stderr.String()
}

func TestRunWritesResultsAndMergeAddsUp(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	// Flags after the URL work too.
	if code, out, errOut := runCLI(t, "-n", "300", "-c", "2", srv.URL, "-o", a, "-html", filepath.Join(dir, "a.html")); code != 0 || !strings.Contains(out, "requests:   300") {
		t.Fatalf("run a: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "-n", "200", "-json", srv.URL); code != 0 || !strings.Contains(out, `"requests": 200`) {
		t.Fatalf("run b: exit %d\n%s\n%s", code, out, errOut)
	} else if err := writeFile(b, out); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "merge", "-json", a, b)
	if code != 0 {
		t.Fatalf("merge: exit %d\n%s", code, errOut)
	}
	m, err := loadtest.DecodeResult(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 500 || hits.Load() != 500 || m.Latency.Total() != 500 || m.Sources != 2 {
		t.Errorf("merged %d requests from %d sources, server saw %d, want 500", m.Requests, m.Sources, hits.Load())
	}
	if code, _, errOut := runCLI(t, "merge", filepath.Join(dir, "missing.json")); code != 1 || !strings.Contains(errOut, "missing.json") {
		t.Errorf("merge of a missing file: exit %d %s", code, errOut)
	}
}

func TestCompareAlternatesAndPrintsRatios(t *testing.T) {
	var fastHits, slowHits atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fastHits.Add(1) }))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		time.Sleep(2 * time.Millisecond)
	}))
	t.Cleanup(fast.Close)
	t.Cleanup(slow.Close)
	code, out, errOut := runCLI(t, "compare", "-rounds", "2", "-d", "1s", "-c", "2", fast.URL, slow.URL)
	if code != 0 {
		t.Fatalf("compare: exit %d\n%s", code, errOut)
	}
	t.Log("\n" + out)
	for _, fig := range []string{"throughput", "p50", "p99", "p99.9", "max", "errors"} {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(fig) + `\s+\S+\s+\S+\s+(\d+\.\d{3}x|-)$`).MatchString(out) {
			t.Errorf("no %s row with a ratio", fig)
		}
	}
	// The slow side is slower: its throughput ratio is below 1 and its p50 ratio above 1.
	tp := regexp.MustCompile(`(?m)^  throughput .* (\d+\.\d+)x$`).FindStringSubmatch(out)
	p50 := regexp.MustCompile(`(?m)^  p50 .* (\d+\.\d+)x$`).FindStringSubmatch(out)
	if tp == nil || p50 == nil || atof(tp[1]) >= 1 || atof(p50[1]) <= 1 {
		t.Errorf("ratios throughput %v p50 %v, want < 1 and > 1", tp, p50)
	}
	if fastHits.Load() == 0 || slowHits.Load() == 0 {
		t.Errorf("hits fast %d slow %d", fastHits.Load(), slowHits.Load())
	}
}

func TestRefusesRemoteAndBadFlags(t *testing.T) {
	if code, _, errOut := runCLI(t, "-d", "1s", "http://192.0.2.7/"); code != 2 || !strings.Contains(errOut, "--allow-remote") {
		t.Errorf("remote target: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "-mix", "read=1", "-preload"); code != 2 {
		t.Errorf("no URL: exit %d", code)
	}
	if code, _, _ := runCLI(t, "-c", "x", "http://127.0.0.1/"); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	t.Setenv("BRAINY_LOADTEST_MIX", "nonsense")
	if code, _, errOut := runCLI(t, "http://127.0.0.1:1/"); code != 2 || !strings.Contains(errOut, "mix") {
		t.Errorf("env mix: exit %d %s", code, errOut)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}
