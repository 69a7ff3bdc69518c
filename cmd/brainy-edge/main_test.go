package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/transport/pki"
)

var coreBin, edgeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brainy-edge-test")
	if err != nil {
		panic(err)
	}
	if coreBin, err = coretest.Build("../..", dir, "brainy-core"); err == nil {
		edgeBin, err = coretest.Build("../..", dir, "brainy-edge")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var client = &http.Client{Timeout: 15 * time.Second}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("X-Brainy-Tenant", "acme")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newSecret returns a random cluster secret: never a constant.
func newSecret(t *testing.T) string { return coretest.NewSecret(t) }

// enrolment returns the edge flags that enrol it with core, as an operator
// would on another host: a token from `brainy-core edge-token` run with
// the core's own settings (coreArgs), the core's HTTP address, and an
// empty --tls-dir where the edge keeps what it is issued (never the CA key).
func enrolment(t *testing.T, core *coretest.Process, edgeTLS string, coreArgs ...string) []string {
	t.Helper()
	token := strings.TrimSpace(coretest.Output(t, coreBin, nil, append([]string{"edge-token", "--ttl", "10m"}, coreArgs...)...))
	if !strings.HasPrefix(token, pki.TokenPrefix) {
		t.Fatalf("brainy-core edge-token printed %q", token)
	}
	return []string{"--tls-dir", edgeTLS, "--join-token", token, "--enrol-addr", core.URL("")}
}

// TestEdgeServesThroughCore, without a cache: writes through the edge land
// in the core, reads through the edge see the core's data, and with the
// core gone the edge answers 503 until the core is back, with no edge restart.
func TestEdgeServesThroughCore(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "core-data")
	secret := newSecret(t)
	core := coretest.StartCore(t, coreBin, nil, "--storage", data, "--cluster-secret", secret)
	edgeTLS := filepath.Join(dir, "edge-tls")
	edge := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, edgeTLS, "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr, "--cache-size", "0")...)
	if _, err := os.Stat(filepath.Join(edgeTLS, pki.CAKeyFile)); err == nil {
		t.Fatal("the enrolled edge holds the CA key")
	}

	status, put := do(t, "PUT", edge.URL("/v1/items/john"), `{"type":"person","data":{"name":"John"}}`)
	if status != 201 {
		t.Fatalf("PUT via edge: %d %s", status, put)
	}
	if status, got := do(t, "GET", core.URL("/v1/items/john"), ""); status != 200 || got != put {
		t.Fatalf("GET via core: %d %s, want %s", status, got, put)
	}
	if status, got := do(t, "GET", edge.URL("/v1/items/john"), ""); status != 200 || got != put {
		t.Fatalf("GET via edge: %d %s", status, got)
	}
	if status, got := do(t, "GET", edge.URL("/v1/items/nobody"), ""); status != 404 || !strings.Contains(got, "not_found") {
		t.Fatalf("GET of a missing item via edge: %d %s", status, got)
	}

	core.Kill()
	if status, got := do(t, "GET", edge.URL("/v1/items/john"), ""); status != 503 || !strings.Contains(got, "unavailable") {
		t.Fatalf("GET via edge with the core down: %d %s", status, got)
	}
	// The core comes back on the same address; the edge reconnects by itself.
	core = coretest.Start(t, coreBin, nil, "--storage", data, "--quic-addr", core.QUICAddr, "--cluster-secret", secret)
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, got := do(t, "GET", edge.URL("/v1/items/john"), "")
		if status == 200 && got == put {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge did not recover after the core restarted: %d %s\n%s", status, got, edge.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEdgeWithoutClusterCredentials: an edge with another cluster's CA is
// refused by the core; it serves nothing from it.
func TestEdgeWithoutClusterCredentials(t *testing.T) {
	dir := t.TempDir()
	core := coretest.StartCore(t, coreBin, nil, "--storage", filepath.Join(dir, "core-data"))
	foreign := filepath.Join(dir, "foreign")
	if _, err := pki.LoadOrCreate(foreign, "someone", nil); err != nil {
		t.Fatal(err)
	}
	edge := coretest.Start(t, edgeBin, nil, "--upstream", core.QUICAddr, "--tls-dir", foreign, "--call-timeout", "2s")
	if status, got := do(t, "PUT", edge.URL("/v1/items/x"), `{"data":1}`); status != 503 {
		t.Fatalf("PUT through an edge of another cluster: %d %s", status, got)
	}
	if status, _ := do(t, "GET", core.URL("/v1/items/x"), ""); status != 404 {
		t.Fatalf("the foreign edge's write reached the core: %d", status)
	}
	// A token of another cluster enrols nothing: the core refuses it.
	foreignToken := strings.TrimSpace(coretest.Output(t, coreBin, nil, "edge-token", "--storage", filepath.Join(dir, "other"), "--cluster-secret", newSecret(t)))
	if code, out := coretest.Run(edgeBin, nil, "--tls-dir", filepath.Join(dir, "enrolled"), "--http-addr", "127.0.0.1:0",
		"--upstream", core.QUICAddr, "--join-token", foreignToken, "--enrol-addr", core.URL("")); code == 0 || !strings.Contains(out, "enrolment_refused") {
		t.Fatalf("an edge with another cluster's token should be refused: %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "enrolled", pki.NodeCertFile)); err == nil {
		t.Fatal("a refused enrolment left a certificate")
	}
	// Off this host there is no per-host secret to enrol from: enrolment is needed.
	if code, out := coretest.Run(edgeBin, nil, "--tls-dir", filepath.Join(dir, "empty"), "--http-addr", "127.0.0.1:0",
		"--upstream", "192.0.2.1:7071"); code == 0 || !strings.Contains(out, "--join-token") {
		t.Fatalf("an edge of remote cores without the cluster CA should refuse to start: %d\n%s", code, out)
	}
}

func doH(t *testing.T, url string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Brainy-Tenant", "acme")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Cache")
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
	}
}

// TestEdgeCache is the edge's contract with real processes: MISS then HIT;
// an update made at the core shows at the edge without waiting for the TTL
// (60 s here); an item created after a 404 shows right after its write; with
// the core killed, cached items answer 200 STALE and others 503; when the
// core is back, fresh answers return without restarting the edge.
func TestEdgeCache(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "core-data")
	secret := newSecret(t)
	core := coretest.StartCore(t, coreBin, nil, "--storage", data, "--cluster-secret", secret)
	edgeTLS := filepath.Join(dir, "edge-tls")
	edge := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, edgeTLS, "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr, "--cache-size", "16777216", "--cache-ttl", "60s", "--call-timeout", "1s")...)

	if status, _ := do(t, "PUT", core.URL("/v1/items/a"), `{"data":1}`); status != 201 {
		t.Fatalf("PUT at core: %d", status)
	}
	if status, _, xc := doH(t, edge.URL("/v1/items/a")); status != 200 || xc != "MISS" {
		t.Fatalf("first read: %d %s", status, xc)
	}
	waitFor(t, "HIT", func() bool { _, _, xc := doH(t, edge.URL("/v1/items/a")); return xc == "HIT" })

	if status, _ := do(t, "PUT", core.URL("/v1/items/a"), `{"data":2}`); status != 200 {
		t.Fatalf("update at core: %d", status)
	}
	waitFor(t, "the update at the edge", func() bool { _, body, _ := doH(t, edge.URL("/v1/items/a")); return strings.Contains(body, `"data":2`) })

	if status, _, _ := doH(t, edge.URL("/v1/items/b")); status != 404 {
		t.Fatalf("missing item: %d", status)
	}
	if status, _ := do(t, "PUT", core.URL("/v1/items/b"), `{"data":"new"}`); status != 201 {
		t.Fatalf("create at core: %d", status)
	}
	waitFor(t, "the new item at the edge", func() bool { s, _, _ := doH(t, edge.URL("/v1/items/b")); return s == 200 })

	waitFor(t, "a cached", func() bool { _, _, xc := doH(t, edge.URL("/v1/items/a")); return xc == "HIT" })
	core.Kill()
	waitFor(t, "STALE", func() bool {
		s, body, xc := doH(t, edge.URL("/v1/items/a"))
		return s == 200 && xc == "STALE" && strings.Contains(body, `"data":2`)
	})
	if status, body, _ := doH(t, edge.URL("/v1/items/never-cached")); status != 503 || !strings.Contains(body, `"error"`) {
		t.Fatalf("uncached item with the core down: %d %s", status, body)
	}
	core = coretest.Start(t, coreBin, nil, "--storage", data, "--quic-addr", core.QUICAddr, "--cluster-secret", secret)
	if status, _ := do(t, "PUT", core.URL("/v1/items/a"), `{"data":3}`); status != 200 {
		t.Fatalf("update after restart: %d", status)
	}
	waitFor(t, "fresh answers after the core returned", func() bool {
		s, body, xc := doH(t, edge.URL("/v1/items/a"))
		return s == 200 && xc != "STALE" && strings.Contains(body, `"data":3`)
	})
}
