package layering

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/soullabs/brainy"

// deps returns every package pkg links, by `go list -deps`.
func deps(t *testing.T, pkg string, env ...string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", pkg)
	cmd.Dir = "../.."
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// TestLayering checks that each package links none of what its layer
// must not: I/O below the state machine, servers inside the edge, cloud
// SDKs inside programs that only embed Brainy.
func TestLayering(t *testing.T) {
	rules := []struct {
		pkg, why string
		banned   []string
	}{
		{"./core", "the state machine does no network I/O: raft messages leave through the transport cluster gives it",
			[]string{module + "/transport", "github.com/quic-go/quic-go", module + "/cluster", module + "/itemrpc"}},
		{".", "a program embedding Brainy links no cloud SDK unless it imports brainycloud",
			[]string{"github.com/aws/aws-sdk-go-v2", "github.com/Azure/azure-sdk-for-go", "cloud.google.com/go", module + "/tiers/backend"}},
		{"./cmd/brainy-edge", "an edge holds no data: no store, no raft, no core",
			[]string{module + "/core", module + "/cluster", module + "/tiers", "github.com/cockroachdb/pebble", "go.etcd.io/raft"}},
		{"./httpapi", "the HTTP API serves any Backend and knows no transport, cache or core",
			[]string{module + "/transport", module + "/core", module + "/edge", module + "/upstream"}},
		{"./itemrpc", "the item RPC is transport-level: it must not pull the node in",
			[]string{module + "/core", module + "/cluster", "github.com/cockroachdb/pebble"}},
		{"./upstream", "an edge's view of the cores calls them; it is not one",
			[]string{module + "/core", module + "/cluster", module + "/edge"}},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkg) {
			for _, b := range r.banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("%s links %s: %s (find the chain with: go mod why -m or go list -deps)", r.pkg, d, r.why)
				}
			}
		}
	}
}

// TestCrossBuild builds both binaries for macOS and Windows, where users
// try edges on laptops: nothing Linux-only may leak into them.
func TestCrossBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross builds take a while; run without -short")
	}
	for _, goos := range []string{"darwin", "windows"} {
		cmd := exec.Command("go", "build", "-o", t.TempDir()+"/", "./cmd/brainy-core", "./cmd/brainy-edge")
		cmd.Dir = "../.."
		cmd.Env = append(cmd.Environ(), "GOOS="+goos, "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go build ./cmd/...: %v\n%s", goos, err, out)
		}
	}
}
