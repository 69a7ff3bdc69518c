// Package systemd_test checks the systemd units in this directory: that
// systemd accepts them, and that each unit's ExecStart, run as written with
// its environment and the shipped environment file, starts a working node.
package systemd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/server"
)

var bins = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brainy-systemd-test")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"brainy-core", "brainy-edge"} {
		if bins[name], err = coretest.Build("../..", dir, name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// unit is the [Service] section of a unit file: its settings in order
// (a key may repeat, as Environment= does).
type unit struct {
	keys, values []string
}

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u unit
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", path, line)
			}
			u.keys, u.values = append(u.keys, k), append(u.values, v)
		}
	}
	return u
}

// all returns every value of key.
func (u unit) all(key string) []string {
	var out []string
	for i, k := range u.keys {
		if k == key {
			out = append(out, u.values[i])
		}
	}
	return out
}

func (u unit) one(t *testing.T, key string) string {
	t.Helper()
	vs := u.all(key)
	if len(vs) != 1 {
		t.Fatalf("%s= appears %d times, want once", key, len(vs))
	}
	return vs[0]
}

// envFile reads a file as systemd reads an EnvironmentFile: KEY=VALUE lines,
// comments and blank lines skipped.
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if !strings.Contains(line, "=") {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env = append(env, line)
	}
	return env
}

// TestUnitsVerify: systemd-analyze verify accepts both units (with
// ExecStart pointing at a built binary, as an install puts it).
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing (make provision installs systemd)")
		}
		t.Skip("systemd-analyze is missing (apt-get install systemd)")
	}
	for _, name := range []string{"brainy-core", "brainy-edge"} {
		b, err := os.ReadFile(name + ".service")
		if err != nil {
			t.Fatal(err)
		}
		exe := "/usr/local/bin/" + name
		if !bytes.Contains(b, []byte("ExecStart="+exe+"\n")) {
			t.Fatalf("%s.service does not start %s", name, exe)
		}
		path := filepath.Join(t.TempDir(), name+".service")
		if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("ExecStart="+exe), []byte("ExecStart="+bins[name])), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s.service: %v\n%s", name, err, out)
		}
	}
}

// TestStopTimeouts: systemd waits longer than the binaries' own shutdown
// (leadership hand-over, then --shutdown-timeout) before it kills.
func TestStopTimeouts(t *testing.T) {
	for name, shutdown := range map[string]time.Duration{"brainy-core": server.DefaultShutdownTimeout, "brainy-edge": edge.DefaultShutdownTimeout} {
		u := readUnit(t, name+".service")
		stop, err := time.ParseDuration(u.one(t, "TimeoutStopSec"))
		if err != nil {
			t.Fatal(err)
		}
		if stop < 2*shutdown {
			t.Errorf("%s: TimeoutStopSec %v leaves no room past its %v shutdown", name, stop, shutdown)
		}
		if got := u.one(t, "KillSignal"); got != "SIGTERM" {
			t.Errorf("%s: KillSignal %s, want SIGTERM", name, got)
		}
	}
}

// daemon is a process started as a unit would start it.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// startUnit runs the unit's ExecStart (its binary swapped for the built
// one) in an environment of the unit's Environment= lines, then the
// shipped environment file, then site, which stands for what differs per
// host (addresses, directories, the API keys file): as systemd layers them.
func startUnit(t *testing.T, name, envPath string, site ...string) *daemon {
	t.Helper()
	u := readUnit(t, name+".service")
	fields := strings.Fields(u.one(t, "ExecStart"))
	if fields[0] != "/usr/local/bin/"+name {
		t.Fatalf("ExecStart runs %s", fields[0])
	}
	env := []string{"PATH=/usr/bin:/bin"} // systemd's: no HOME for a DynamicUser service
	env = append(env, u.all("Environment")...)
	if want := "-/etc/brainy/" + filepath.Base(envPath); u.one(t, "EnvironmentFile") != want {
		t.Fatalf("EnvironmentFile=%s, want %s", u.one(t, "EnvironmentFile"), want)
	}
	env = append(append(env, envFile(t, envPath)...), site...)
	d := &daemon{cmd: exec.Command(bins[name], fields[1:]...), done: make(chan error, 1)}
	d.cmd.Env, d.cmd.Stdout, d.cmd.Stderr = env, d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, d.output())
		}
	})
	return d
}

// stop sends SIGTERM and waits as systemd would, TimeoutStopSec at most.
func (d *daemon) stop(t *testing.T, name string) {
	t.Helper()
	stop, _ := time.ParseDuration(readUnit(t, name+".service").one(t, "TimeoutStopSec"))
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("%s exited after SIGTERM with %v", name, err)
		}
	case <-time.After(stop):
		t.Errorf("%s still runs %v after SIGTERM: systemd would kill it", name, stop)
	}
}

func call(method, url, key, body string) (int, string, error) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !f(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
	}
}

// TestUnitsStartWorkingNodes: brainy-core started as its unit starts it,
// with core.env, serves authenticated writes and reads; brainy-edge
// started as its unit starts it, with edge.env, enrols with a token from
// the core and serves the core's items; both stop cleanly on SIGTERM
// within their units' TimeoutStopSec. Addresses 127.0.0.251-252.
func TestUnitsStartWorkingNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts brainy-core and brainy-edge")
	}
	dir := t.TempDir()
	key := coretest.NewSecret(t)[:24]
	keys := filepath.Join(dir, "api-keys")
	if err := os.WriteFile(keys, []byte(key+" acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	coreSite := []string{"BRAINY_BIND=127.0.0.251", "BRAINY_STORAGE=" + filepath.Join(dir, "core"), "BRAINY_API_KEYS=" + keys,
		"BRAINY_CLUSTER_SECRET=" + coretest.NewSecret(t)}
	core := startUnit(t, "brainy-core", "core.env", coreSite...)
	base := "http://127.0.0.251:7070"
	waitFor(t, "brainy-core to answer", func() bool {
		code, _, err := call("PUT", base+"/v1/items/unit", key, `{"data":1}`)
		return err == nil && code == 201
	})
	if code, body, err := call("GET", base+"/v1/items/unit", key, ""); err != nil || code != 200 || !strings.Contains(body, `"data":1`) {
		t.Fatalf("GET from the core: %d %s %v", code, body, err)
	}

	// An edge token, made as an operator would: brainy-core edge-token
	// with the core's own settings.
	tokenCmd := exec.Command(bins["brainy-core"], "edge-token", "--ttl", "10m")
	tokenCmd.Env = append(append(append([]string{"PATH=/usr/bin:/bin"}, readUnit(t, "brainy-core.service").all("Environment")...),
		envFile(t, "core.env")...), coreSite...)
	var stderr bytes.Buffer
	tokenCmd.Stderr = &stderr
	out, err := tokenCmd.Output()
	if err != nil {
		t.Fatalf("brainy-core edge-token: %v\n%s", err, stderr.String())
	}
	edgeD := startUnit(t, "brainy-edge", "edge.env", "BRAINY_EDGE_BIND=127.0.0.252", "BRAINY_EDGE_API_KEYS="+keys,
		"BRAINY_EDGE_UPSTREAM=127.0.0.251:7071", "BRAINY_EDGE_TLS_DIR="+filepath.Join(dir, "edge"),
		"BRAINY_EDGE_JOIN_TOKEN="+strings.TrimSpace(string(out)))
	waitFor(t, "the core's item through brainy-edge", func() bool {
		code, body, err := call("GET", "http://127.0.0.252:8080/v1/items/unit", key, "")
		return err == nil && code == 200 && strings.Contains(body, `"data":1`)
	})

	edgeD.stop(t, "brainy-edge")
	core.stop(t, "brainy-core")
}
