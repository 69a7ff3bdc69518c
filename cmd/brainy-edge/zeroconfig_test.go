package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/coretest"
)

// TestZeroConfigEdgeOnOneHost: a core started with no TLS setting, then
// an edge given only the core's address: the edge issues itself an edge
// certificate from the per-host secret the core derived its CA from, and
// serves the core's items. Nothing is copied, and the edge writes no CA
// key anywhere. (The core binds its own loopback address so that its
// default ports cannot meet another test's.)
func TestZeroConfigEdgeOnOneHost(t *testing.T) {
	dir := t.TempDir()
	core := coretest.Start(t, coreBin, nil, "--bind", "127.0.0.77", "--storage", filepath.Join(dir, "data"))
	if status, body := do(t, "PUT", core.URL("/v1/items/zero"), `{"data":"config"}`); status != 201 {
		t.Fatalf("PUT at the core: %d %s", status, body)
	}
	edgeDir := filepath.Join(dir, "edge-tls")
	edge := coretest.Start(t, edgeBin, nil, "--upstream", "127.0.0.77:7071", "--tls-dir", edgeDir)
	status, body := do(t, "GET", edge.URL("/v1/items/zero"), "")
	if status != 200 || !strings.Contains(body, `"data":"config"`) {
		t.Fatalf("GET through the zero-config edge: %d %s", status, body)
	}
	if _, err := os.Stat(edgeDir); err == nil {
		t.Fatalf("the edge wrote %s; it must keep what it derives in memory", edgeDir)
	}
	if !strings.Contains(edge.Log(), "per-host secret") {
		t.Fatalf("the edge did not say where its certificate came from:\n%s", edge.Log())
	}
}
