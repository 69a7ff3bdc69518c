package objstoretest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Service is a local server that the adapters' tests run against, started by the
// project's scripts/services/start-<Name>.sh.
type Service struct {
	// Name is the script's name: "s3", "azurite" or "gcs".
	Name string
	// Env lists the variables the start script exports. If the first is set in the
	// environment, all are taken from there and nothing is started.
	Env []string
}

// The services the adapters use.
var (
	S3 = Service{Name: "s3", Env: []string{"BRAINY_TEST_S3_ENDPOINT", "BRAINY_TEST_S3_ACCESS_KEY",
		"BRAINY_TEST_S3_SECRET_KEY", "BRAINY_TEST_S3_REGION", "BRAINY_TEST_S3_BUCKET"}}
	Azurite = Service{Name: "azurite", Env: []string{"BRAINY_TEST_AZURE_CONNSTR", "BRAINY_TEST_AZURE_ENDPOINT",
		"BRAINY_TEST_AZURE_ACCOUNT", "BRAINY_TEST_AZURE_KEY"}}
	GCS = Service{Name: "gcs", Env: []string{"BRAINY_TEST_GCS_EMULATOR_HOST", "BRAINY_TEST_GCS_BUCKET"}}
)

// provisionTimeout bounds a start script: a first-time install builds the server from
// source (about 2 minutes on two cores, more when two packages build at once).
const provisionTimeout = 9 * time.Minute

type started struct {
	env     map[string]string
	err     error
	release func() // gives up this process's use of the server; nil if nothing to release
}

var (
	mu       sync.Mutex
	services = map[string]*started{} // by Service.Name; guarded by mu
	inflight = map[string]*sync.Once{}
)

// Use returns the environment of the service (the variables in svc.Env), provisioning it
// when the first variable is not set in the environment:
//   - it runs scripts/services/start-<name>.sh (found by walking up from the working
//     directory, or in $BRAINY_SERVICES_DIR), which installs the server once into the
//     cache directory ($BRAINY_CI_CACHE or ~/.cache/brainy-ci) and starts it, or reuses the
//     one already running; the script's lock makes concurrent test processes share it;
//   - this process then holds a shared lock on the service's users file until Main
//     releases it, and Main stops the server when the tests started it and no other
//     process still uses it.
//
// If the service cannot be provisioned the test fails when CI=true and is skipped
// (with the reason) otherwise. Use is safe for concurrent use; it provisions once per
// process.
func Use(t testing.TB, svc Service) map[string]string {
	t.Helper()
	if v := os.Getenv(svc.Env[0]); v != "" {
		env := map[string]string{}
		for _, k := range svc.Env {
			env[k] = os.Getenv(k)
		}
		return env
	}
	mu.Lock()
	once, ok := inflight[svc.Name]
	if !ok {
		once = new(sync.Once)
		inflight[svc.Name] = once
	}
	mu.Unlock()
	once.Do(func() {
		s := provision(svc)
		mu.Lock()
		services[svc.Name] = s
		mu.Unlock()
	})
	mu.Lock()
	s := services[svc.Name]
	mu.Unlock()
	if s.err != nil {
		msg := fmt.Sprintf("%s server not available: %v (set %s to use a running server)", svc.Name, s.err, svc.Env[0])
		if ci() {
			t.Fatal(msg)
		}
		t.Skip(msg + "; skipping outside CI")
	}
	return s.env
}

func ci() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "0" && v != "false"
}

func scriptsDir() (string, error) {
	if d := os.Getenv("BRAINY_SERVICES_DIR"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		d := filepath.Join(dir, "scripts", "services")
		if _, err := os.Stat(filepath.Join(d, "lib.sh")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/services not found above the working directory (set BRAINY_SERVICES_DIR)")
		}
		dir = parent
	}
}

func cacheDir() string {
	if d := os.Getenv("BRAINY_CI_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "brainy-ci")
	}
	home := os.Getenv("HOME") // as the scripts do: $HOME, else /tmp
	if home == "" {
		home = "/tmp"
	}
	return filepath.Join(home, ".cache", "brainy-ci")
}

func provision(svc Service) *started {
	dir, err := scriptsDir()
	if err != nil {
		return &started{err: err}
	}
	run := filepath.Join(cacheDir(), "services")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return &started{err: err}
	}
	// Hold a shared lock on the users file for as long as this process uses the server,
	// so that another process's Main does not stop it underneath us.
	users, err := lockShared(filepath.Join(run, svc.Name+".users"))
	if err != nil {
		return &started{err: err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), provisionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(dir, "start-"+svc.Name+".sh"))
	cmd.Env = append(os.Environ(), "BRAINY_SERVICE_OWNER=go-test")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second // don't wait on pipes a stray child may hold
	t0 := time.Now()
	if err := cmd.Run(); err != nil {
		users.unlock()
		return &started{err: fmt.Errorf("start-%s.sh: %v after %s: %s", svc.Name, err,
			time.Since(t0).Round(time.Millisecond), lastLines(stderr.String(), 15))}
	}
	env := parseExports(stdout.String())
	for _, k := range svc.Env {
		if env[k] == "" {
			users.unlock()
			return &started{err: fmt.Errorf("start-%s.sh did not export %s", svc.Name, k)}
		}
	}
	if d := time.Since(t0); d > 5*time.Second {
		fmt.Fprintf(os.Stderr, "objstoretest: provisioned %s in %s\n", svc.Name, d.Round(time.Second))
	}
	return &started{env: env, release: func() {
		users.unlock()
		// Stop the server if the tests started it and nobody else holds the users lock.
		last, err := tryLockExclusive(filepath.Join(run, svc.Name+".users"))
		if err != nil || last == nil {
			return
		}
		defer last.unlock()
		owner, _ := os.ReadFile(filepath.Join(run, svc.Name+".owner"))
		if strings.TrimSpace(string(owner)) != "go-test" {
			return
		}
		stop := exec.Command("bash", filepath.Join(dir, "stop-"+svc.Name+".sh"))
		stop.Env = os.Environ()
		stop.WaitDelay = 10 * time.Second
		_ = stop.Run()
	}}
}

// parseExports reads the `export K=V` lines that the start scripts print; V may be
// single-quoted.
func parseExports(out string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	return env
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Main runs the tests of a package that uses services and then releases them: a server
// that this process's tests started is stopped unless another test process still uses
// it. Call it from TestMain: func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }.
// A run that is killed leaves the server running; scripts/services/stop-all.sh stops it.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	for _, s := range services {
		if s.release != nil {
			s.release()
		}
	}
	return code
}

// UnreachableURL returns an http:// URL on loopback where nothing listens (a port that
// was just free), for the Unavailable case.
func UnreachableURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
