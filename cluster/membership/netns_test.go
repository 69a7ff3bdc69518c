package membership

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helper process's settings, passed in its environment.
const (
	helperEnv        = "BRAINY_MEMBERSHIP_HELPER"
	helperBindEnv    = "BRAINY_MEMBERSHIP_HELPER_BIND"
	helperIDEnv      = "BRAINY_MEMBERSHIP_HELPER_ID"
	helperClusterEnv = "BRAINY_MEMBERSHIP_HELPER_CLUSTER"
	helperWantEnv    = "BRAINY_MEMBERSHIP_HELPER_WANT"
)

// requireNetns skips the test unless it can create network namespaces;
// under CI=true a missing prerequisite fails it instead, so that CI never
// passes without running it.
func requireNetns(t *testing.T) {
	t.Helper()
	var missing string
	if _, err := exec.LookPath("ip"); err != nil {
		missing = "the ip command (iproute2) is not installed"
	} else if os.Geteuid() != 0 {
		missing = "network namespaces need root"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", missing)
	}
	t.Skipf("skipping: %s", missing)
}

// TestBroadcastDiscoveryInNetns runs four nodes, each alone in a network
// namespace on one bridged /24, with no peers and no discovery sources:
// three of cluster "netns-a" must find each other by beacon alone, and the
// fourth, of cluster "netns-b", must hear their beacons and ignore them
// (as they ignore its).
func TestBroadcastDiscoveryInNetns(t *testing.T) {
	requireNetns(t)
	script, err := filepath.Abs("../../scripts/netns/hosts.sh")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("brainy-mt-%d", os.Getpid())
	hosts := func(args ...string) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), "NETNS_PREFIX="+prefix, "NETNS_NET=10.77.0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("hosts.sh %v: %v\n%s", args, err, out)
		}
	}
	hosts("up", "4")
	t.Cleanup(func() { hosts("down") })

	type node struct {
		id, cluster string
		stdin       io.WriteCloser
		lines       chan string
		seen        map[string]string // first value printed for each prefix
		cmd         *exec.Cmd
	}
	var nodes []*node
	for i := 1; i <= 4; i++ {
		n := &node{id: fmt.Sprintf("host-%d", i), cluster: "netns-a", lines: make(chan string, 64), seen: map[string]string{}}
		want := "3"
		if i == 4 {
			n.cluster, want = "netns-b", "1"
		}
		n.cmd = exec.Command("ip", "netns", "exec", fmt.Sprintf("%s-%d", prefix, i), exe, "-test.run=^TestHelperProcess$")
		n.cmd.Env = append(os.Environ(), helperEnv+"=1", helperBindEnv+"=10.77.0."+fmt.Sprint(i),
			helperIDEnv+"="+n.id, helperClusterEnv+"="+n.cluster, helperWantEnv+"="+want)
		n.cmd.Stderr = os.Stderr
		if n.stdin, err = n.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := n.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(n.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				n.lines <- sc.Text()
			}
		}()
		t.Cleanup(func() {
			_ = n.stdin.Close()
			done := make(chan struct{})
			go func() { _ = n.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = n.cmd.Process.Kill()
				<-done
			}
		})
		nodes = append(nodes, n)
	}

	// Each helper prints "SAW <ids>" once it sees the members it wants and
	// "IGNORED" once it dropped a beacon of another cluster; on stdin's EOF
	// it prints "FINAL <ids>" and exits.
	expect := func(n *node, prefix string, timeout time.Duration) string {
		t.Helper()
		if v, ok := n.seen[prefix]; ok {
			return v
		}
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-n.lines:
				if !ok {
					t.Fatalf("%s exited before printing %s", n.id, prefix)
				}
				p, v, _ := strings.Cut(l, " ")
				if _, dup := n.seen[p]; !dup {
					n.seen[p] = v
				}
				if p == prefix {
					return v
				}
			case <-deadline:
				t.Fatalf("%s did not print %s within %v", n.id, prefix, timeout)
			}
		}
	}
	for _, n := range nodes[:3] {
		if got := expect(n, "SAW", 60*time.Second); got != "host-1,host-2,host-3" {
			t.Fatalf("%s saw %s", n.id, got)
		}
	}
	expect(nodes[3], "SAW", 60*time.Second)
	for _, n := range nodes {
		expect(n, "IGNORED", 60*time.Second)
	}
	for _, n := range nodes {
		_ = n.stdin.Close()
	}
	for i, n := range nodes {
		got := expect(n, "FINAL", 30*time.Second)
		want := "host-1,host-2,host-3"
		if i == 3 {
			want = "host-4"
		}
		if got != want {
			t.Fatalf("%s (cluster %s) finally saw %s, want %s", n.id, n.cluster, got, want)
		}
	}
}

// ignoreCounter reports the first beacon dropped for its cluster.
type ignoreCounter struct {
	once *sync.Once
	f    func()
}

func (h ignoreCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h ignoreCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "beacon of another cluster ignored" {
		h.once.Do(h.f)
	}
	return nil
}
func (h ignoreCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h ignoreCounter) WithGroup(string) slog.Handler      { return h }

// TestHelperProcess is the node that TestBroadcastDiscoveryInNetns runs in
// each namespace; run directly, it does nothing.
func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	var want int
	fmt.Sscan(os.Getenv(helperWantEnv), &want)
	var mu sync.Mutex // serialises stdout lines
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	m, err := Start(context.Background(), Config{
		Meta:        Meta{ID: os.Getenv(helperIDEnv)},
		ClusterName: os.Getenv(helperClusterEnv),
		BindAddr:    os.Getenv(helperBindEnv),
		Logger:      slog.New(ignoreCounter{once: &sync.Once{}, f: func() { say("IGNORED") }}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	ids := func() string {
		a := aliveIDs(m)
		slices.Sort(a)
		return strings.Join(a, ",")
	}
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	// A guard against a parent that died without closing stdin.
	guard := time.After(2 * time.Minute)
	saw := false
	for done := false; !done; {
		if !saw && len(aliveIDs(m)) >= want {
			saw = true
			say("SAW %s", ids())
		}
		select {
		case <-eof:
			done = true
		case <-guard:
			done = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	say("FINAL %s", ids())
	_ = m.Leave(time.Second)
	_ = m.Shutdown()
	os.Exit(0)
}
