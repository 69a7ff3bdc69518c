package loadtest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHTMLIsSelfContained(t *testing.T) {
	r := &Result{Format: ResultFormat, Model: "open", Label: `<script>alert("x")</script>`, Rate: 10}
	var buf bytes.Buffer
	if err := r.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"http://", "https://cdn", "src=", `<script>alert`} {
		if bad == "http://" {
			// The SVG namespace is the only URL allowed.
			page := strings.ReplaceAll(page, "http://www.w3.org/2000/svg", "")
			if strings.Contains(page, bad) {
				t.Errorf("page references an external resource (%q)", bad)
			}
			continue
		}
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

// chromiumPath finds headless Chromium, installing it with the project's
// script when missing. Under CI=true a missing browser fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p
	}
	script, _ := filepath.Abs("../scripts/loadtest-chromium.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput()
	if p := find(); p != "" {
		return p
	}
	msg := "chromium is not installed and " + script + " could not install it: " + strings.TrimSpace(string(out))
	if err != nil {
		msg += " (" + err.Error() + ")"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// dumpDOM loads page in headless Chromium and returns the DOM after its
// scripts ran.
func dumpDOM(t *testing.T, page string) string {
	t.Helper()
	bin := chromiumPath(t)
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile,
		"--dump-dom", "file://"+page)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Chromium leaves helper processes in its group: end them all.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return stdout.String()
}

// TestHTMLRendersInChromium runs a short test, writes the HTML report and
// checks in a real browser that the charts were drawn from the run's data:
// one p99 point per second of the series, each carrying that second's value.
func TestHTMLRendersInChromium(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL)
	cfg.Rate = 300
	cfg.Duration = 3 * time.Second
	r := run(t, cfg)
	if len(r.Series) < 2 {
		t.Fatalf("series has %d points", len(r.Series))
	}
	page := filepath.Join(t.TempDir(), "report.html")
	if err := r.WriteFile(page, (*Result).WriteHTML); err != nil {
		t.Fatal(err)
	}
	dom := dumpDOM(t, page)
	if !strings.Contains(dom, `data-rendered="true"`) {
		t.Fatalf("the report's script did not finish:\n%.2000s", dom)
	}
	for _, id := range []string{"latency-chart", "throughput-chart", "percentile-chart"} {
		if !regexp.MustCompile(`<svg[^>]*data-chart="` + id + `"`).MatchString(dom) {
			t.Errorf("chart %s has no SVG", id)
		}
	}
	if n := strings.Count(dom, `class="l-p99"`); n != 1 {
		t.Errorf("%d p99 lines, want 1", n)
	}
	p99 := regexp.MustCompile(`<circle[^>]*class="pt pt-p99"[^>]*data-p99-us="(\d+)"`).FindAllStringSubmatch(dom, -1)
	if len(p99) != len(r.Series) {
		t.Fatalf("%d p99 points, want one per second of the series (%d)", len(p99), len(r.Series))
	}
	for i, m := range p99 {
		if v, _ := strconv.ParseInt(m[1], 10, 64); v != r.Series[i].P99US {
			t.Errorf("point %d: p99 %d µs, series says %d", i, v, r.Series[i].P99US)
		}
	}
	if n := strings.Count(dom, `class="pt pt-rps"`); n != len(r.Series) {
		t.Errorf("%d throughput points, want %d", n, len(r.Series))
	}
	if n := strings.Count(dom, `class="pt pt-pct"`); n != len(r.Latency.spectrum()) || n < 5 {
		t.Errorf("%d percentile points, want %d", n, len(r.Latency.spectrum()))
	}
}
