package benchrun

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchproc"
)

// testConfig is a driver's configuration as the drivers write theirs.
type testConfig struct {
	Base
	Rounds int
}

func (c *testConfig) EnsureDefaults() {
	c.SetDefaults([]string{"one", "two"}, time.Minute)
	if c.Rounds == 0 {
		c.Rounds = 2
	}
}

func (c *testConfig) Validate() error {
	errs := c.Check()
	for _, p := range c.Parts {
		if p != "one" && p != "two" {
			errs = append(errs, errors.New("unknown part "+p))
		}
	}
	return errors.Join(errs...)
}

func newTest(stderr *bytes.Buffer) (*testConfig, *Command) {
	var c testConfig
	cmd := NewCommand("bench-test", stderr, &c.Base, "one,two", time.Minute)
	cmd.Flags.IntVar(&c.Rounds, "rounds", 2, "rounds")
	return &c, cmd
}

// TestSetup: the common flags land in Base, -parts is split, the defaults
// are filled, and each way a command line fails gives its status and
// message.
func TestSetup(t *testing.T) {
	var stderr bytes.Buffer
	c, cmd := newTest(&stderr)
	status, ok := cmd.Setup([]string{"-brainy-core", "bc", "-work-dir", "wd", "-keep", "-parts", "two", "-max-run", "5s", "-rounds", "3", "extra"}, c)
	if !ok || status != 0 {
		t.Fatalf("Setup = %d, %v; stderr %q", status, ok, stderr.String())
	}
	if c.BrainyCore != "bc" || c.WorkDir != "wd" || !c.KeepWorkDir || !slices.Equal(c.Parts, []string{"two"}) ||
		c.MaxRun != 5*time.Second || c.Rounds != 3 || c.Log == nil || !c.Has("two") || c.Has("one") {
		t.Fatalf("config %+v", c)
	}

	for _, tc := range []struct {
		args   []string
		noArgs bool
		status int
		stderr string
	}{
		{[]string{"-h"}, false, 0, "Usage of bench-test:"},
		{[]string{"-bogus"}, false, 2, "flag provided but not defined: -bogus"},
		{[]string{"-work-dir", "wd"}, false, 2, "bench-test: BrainyCore (the brainy-core binary) is required\n"},
		{[]string{"-brainy-core", "bc", "-work-dir", "wd", "-parts", "one,three"}, false, 2, "bench-test: unknown part three\n"},
		{[]string{"-brainy-core", "bc", "-work-dir", "wd", "x", "y"}, true, 2, "bench-test: unexpected arguments: [x y]\n"},
	} {
		stderr.Reset()
		c, cmd := newTest(&stderr)
		cmd.NoArgs = tc.noArgs
		status, ok := cmd.Setup(tc.args, c)
		if ok || status != tc.status || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("Setup(%q) = %d, %v; stderr %q, want status %d and %q", tc.args, status, ok, stderr.String(), tc.status, tc.stderr)
		}
	}
}

// TestRun: the measurements get a context bounded by MaxRun, the report is
// printed after a failure too, the processes are stopped and the work
// directory is removed unless kept.
func TestRun(t *testing.T) {
	for _, keep := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "work")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b := &Base{WorkDir: dir, KeepWorkDir: keep, MaxRun: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
		cmd := &Command{base: b}
		procs := benchproc.NewRegistry(b.Log)
		p := &benchproc.Proc{Name: "sleep", Path: "sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleep.log")}
		reported := false
		status := cmd.Run(procs, func(ctx context.Context) error {
			if err := procs.Start(p); err != nil {
				return err
			}
			<-ctx.Done()
			return ErrStopped
		}, func() {
			reported = true
			if p.Running() {
				t.Error("report called with a process still running")
			}
		})
		if status != 1 || !reported {
			t.Errorf("keep %v: status %d, reported %v", keep, status, reported)
		}
		if _, err := os.Stat(dir); (err == nil) != keep {
			t.Errorf("keep %v: work directory: %v", keep, err)
		}
	}
	b := &Base{WorkDir: t.TempDir(), MaxRun: time.Minute, Log: slog.New(slog.DiscardHandler)}
	if status := (&Command{base: b}).Run(benchproc.NewRegistry(b.Log), func(context.Context) error { return nil }, func() {}); status != 0 {
		t.Errorf("a run that succeeds: status %d", status)
	}
}
