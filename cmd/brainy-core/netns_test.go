package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/nodestats"
)

// netnsHosts creates n fake LAN hosts with scripts/netns/hosts.sh and
// returns their namespaces and addresses. It skips (fails under CI=true)
// without root or iproute2.
func netnsHosts(t *testing.T, n int) (ns, addrs []string) {
	t.Helper()
	_, ipErr := exec.LookPath("ip")
	if os.Geteuid() != 0 || ipErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("network namespaces need root and iproute2 (euid %d, ip: %v)", os.Geteuid(), ipErr)
		}
		t.Skipf("network namespaces need root and iproute2 (euid %d, ip: %v)", os.Geteuid(), ipErr)
	}
	script, err := filepath.Abs("../../scripts/netns/hosts.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), fmt.Sprintf("NETNS_PREFIX=brainy-ct-%d", os.Getpid()), "NETNS_NET=10.78.0")
	out, err := (&exec.Cmd{Path: script, Args: []string{script, "up", fmt.Sprint(n)}, Env: env}).CombinedOutput()
	if err != nil {
		t.Fatalf("hosts.sh up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := (&exec.Cmd{Path: script, Args: []string{script, "down"}, Env: env}).CombinedOutput(); err != nil {
			t.Errorf("hosts.sh down: %v\n%s", err, out)
		}
	})
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			ns, addrs = append(ns, f[0]), append(addrs, f[1])
		}
	}
	if len(ns) != n {
		t.Fatalf("hosts.sh up %d printed:\n%s", n, out)
	}
	return ns, addrs
}

// nsClient is an HTTP client whose connections are made inside network
// namespace ns: the dialing thread enters it for the socket() call, which
// is where a socket's namespace is decided.
func nsClient(t *testing.T, ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return nil, err
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			return nil, err
		}
		defer func() {
			if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
				panic(fmt.Sprintf("cannot return to the test's network namespace: %v", err))
			}
		}()
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// TestBroadcastClusterInNetns: three nodes on three hosts of one LAN
// (network namespaces), started with the same command and no peers, find
// each other by broadcast and form one cluster: every partition has three
// voters on three distinct nodes, and an item added through node 1 is
// read through nodes 2 and 3.
func TestBroadcastClusterInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes in network namespaces")
	}
	ns, addrs := netnsHosts(t, 3)
	dir := t.TempDir()
	var nodes []*coretest.Process
	var clients []*http.Client
	secret := coretest.NewSecret(t)
	for i := range ns {
		// The same command on every host; only the data directory differs
		// because the three "hosts" share one file system.
		p := coretest.StartWrapped(t, []string{"ip", "netns", "exec", ns[i]}, bin, nil,
			"--bind", addrs[i], "--storage", filepath.Join(dir, fmt.Sprint("host-", i+1)),
			"--cluster-secret", secret, "--insecure")
		nodes = append(nodes, p)
		clients = append(clients, nsClient(t, ns[i]))
	}
	get := func(i int, path string) (int, []byte) {
		resp, err := clients[i].Get(nodes[i].URL(path))
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for {
		ok := true
		for i := range nodes {
			code, body := get(i, "/v1/metrics")
			var m nodestats.Snapshot
			if code != 200 || json.Unmarshal(body, &m) != nil {
				ok, last = false, fmt.Sprintf("node %d metrics: %d %s", i+1, code, body)
				continue
			}
			if m.Nodes.Total != 3 || len(m.Partitions) != 64 {
				ok, last = false, fmt.Sprintf("node %d sees %d nodes and holds %d partitions", i+1, m.Nodes.Total, len(m.Partitions))
				continue
			}
			for _, p := range m.Partitions {
				distinct := map[string]bool{}
				for _, v := range p.Voters {
					distinct[v] = true
				}
				if len(distinct) != 3 || len(p.Voters) != 3 {
					ok, last = false, fmt.Sprintf("node %d: partition %d has voters %v", i+1, p.ID, p.Voters)
				}
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cluster of three formed by broadcast: %s\nnode 1 log:\n%s", last, nodes[0].Log())
		}
		time.Sleep(250 * time.Millisecond)
	}
	resp, err := clients[0].Post(nodes[0].URL("/v1/items"), "application/json", strings.NewReader(`{"id":"lan","data":"found by broadcast"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("add through node 1: %d", resp.StatusCode)
	}
	for i := 1; i < 3; i++ {
		code, body := get(i, "/v1/items/lan")
		if code != 200 || !strings.Contains(string(body), "found by broadcast") {
			t.Fatalf("read through node %d: %d %s", i+1, code, body)
		}
	}
}
