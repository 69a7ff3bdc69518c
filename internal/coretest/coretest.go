// Package coretest runs real brainy-core and brainy-edge processes for
// end-to-end tests: it builds the binaries once, starts them on loopback
// ports chosen by the kernel, and stops or kills them by PID.
//
// Tests that need fixed ports bind their own loopback addresses, and test
// packages run at once, so each keeps to its own range of 127.0.0.x:
//
//	30-33    cmd/brainy-core TestClusterGrowsFromOneNode
//	61-63    cmd/brainy-edge freshness tests
//	71-73    cmd/brainy-edge TestEdgeRoutesToLeaders
//	77       cmd/brainy-edge zero-config test
//	141-146  cmd/brainy-core TestFederationFormsAndReplicates
//	151-153  cmd/brainy-core TestFederationConflictsConverge
//	131-133, 161-163, 171-173  cmd/brainy-core TestFederationRegionReturns
//	181-182, 189      cmd/brainy-core BenchmarkFederation
//	186-187  cmd/brainy-core BenchmarkFederationResync
//	191-192  cmd/brainy-edge TestEdgeSeesOtherRegionsWrites
//	201-202  cmd/brainy-core TestFederationTombstonesCollected
//	211-219  cmd/brainy-core blue/green sync tests (sync_test.go)
//	221-223  cmd/brainy-core TestFederationGlobalReads
//	231-232  cmd/brainy-edge region routing and failover tests (regions_test.go)
//	235-238  cmd/brainy-core TestDiscoverHeadlessService
//	241-244  cmd/brainy-core TestRegionDetectedByLatency
//	251-252  deploy/systemd TestUnitsStartWorkingNodes
package coretest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles ./cmd/NAME into dir and returns the binary's path.
// moduleRoot is the directory holding go.mod.
func Build(moduleRoot, dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = moduleRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Process is a running brainy-core or brainy-edge.
type Process struct {
	// Addr is the HTTP API's host:port.
	Addr string
	// QUICAddr is brainy-core's QUIC address (empty for an edge).
	QUICAddr string
	// GossipAddr is where a brainy-core gossips (for --peers).
	GossipAddr string

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer // guarded by mu
	exit chan error
}

// StartCore starts brainy-core with its QUIC listener on a free port too.
func StartCore(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	if slices.Contains(args, "--bind") {
		return Start(t, bin, env, args...) // --bind places every listener
	}
	return Start(t, bin, env, append([]string{"--quic-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"}, args...)...)
}

// Start runs bin with args plus --http-addr 127.0.0.1:0 and JSON logs, and
// waits until it listens. The process is killed when the test ends.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p, err := start(bin, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

// StartWrapped is Start with the command run through wrapper, for example
// {"ip", "netns", "exec", "ns1"}: wrapper + bin + args.
func StartWrapped(t testing.TB, wrapper []string, bin string, env []string, args ...string) *Process {
	t.Helper()
	p, err := startWrapped(wrapper, bin, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

func start(bin string, env []string, args ...string) (*Process, error) {
	return startWrapped(nil, bin, env, args...)
}

func startWrapped(wrapper []string, bin string, env []string, args ...string) (*Process, error) {
	if !slices.Contains(args, "--bind") {
		args = append([]string{"--http-addr", "127.0.0.1:0"}, args...)
	}
	args = append([]string{"--log-format", "json"}, args...)
	var cmd *exec.Cmd
	if len(wrapper) > 0 {
		cmd = exec.Command(wrapper[0], append(append(wrapper[1:len(wrapper):len(wrapper)], bin), args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	// Every process of one test binary shares a configuration directory,
	// as the processes of one user on one host do (the per-host cluster
	// secret lives there), and none touches the real user's.
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+configHome()), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exit: make(chan error, 1)}
	addr := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.log.Write(line)
			p.log.WriteByte('\n')
			p.mu.Unlock()
			var rec struct {
				Msg      string `json:"msg"`
				Addr     string `json:"http_addr"`
				QUICAddr string `json:"quic_addr"`
				Gossip   string `json:"gossip_addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" {
				p.GossipAddr = rec.Gossip
				addr <- [2]string{rec.Addr, rec.QUICAddr}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.exit <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		p.Addr, p.QUICAddr = a[0], a[1]
		return p, nil
	case err := <-p.exit:
		p.exit <- err
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", filepath.Base(bin), err, p.Log())
	case <-time.After(30 * time.Second):
		// SIGQUIT makes a Go program print every goroutine's stack before
		// it exits: the log then says where start-up was stuck.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case err := <-p.exit:
			p.exit <- err
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
		return nil, fmt.Errorf("%s did not listen within 30s; its log, then its goroutines:\n%s", filepath.Base(bin), p.Log())
	}
}

// configHome is the configuration directory of the processes this test
// binary starts, made once.
var configHome = sync.OnceValue(func() string {
	dir, err := os.MkdirTemp("", "brainy-test-config-")
	if err != nil {
		panic(err)
	}
	return dir
})

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// URL returns the http:// URL of path on the process.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Log returns what the process has logged so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Kill sends SIGKILL and waits for the process to go.
func (p *Process) Kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(10 * time.Second)
}

// Stop sends SIGTERM and returns the exit error (nil for status 0).
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Wait waits for the process to exit.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case err := <-p.exit:
		p.exit <- err
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v:\n%s", timeout, lastLines(p.Log(), 20))
	}
}

// Run runs bin to completion (for commands expected to fail fast) and
// returns its exit code and stderr.
func Run(bin string, env []string, args ...string) (int, string) {
	cmd := exec.Command(bin, args...)
	// The same configuration directory as Start's processes.
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+configHome()), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, stderr.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// NewSecret returns a cluster secret made for one test: never a constant,
// which would be a CA anyone could derive.
func NewSecret(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Output runs bin to completion and returns its standard output, failing t
// (with its standard error) unless it exits 0.
func Output(t testing.TB, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+configHome()), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
