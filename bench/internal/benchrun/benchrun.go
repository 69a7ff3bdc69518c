// Package benchrun holds the plumbing the benchmark drivers under bench/
// share around their own measurements: the settings and flags every driver
// has, reading the command line, and running the measurements bounded in
// time and by SIGINT and SIGTERM, with every process started stopped and
// the work directory removed on every way out.
package benchrun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchproc"
)

// ErrStopped is returned (or wrapped) by waits cut short by the run's
// context: its time bound passed or a signal arrived.
var ErrStopped = errors.New("run stopped (time bound or signal)")

// StopGrace is how long a process gets between SIGTERM and SIGKILL when a
// run ends.
const StopGrace = 15 * time.Second

// Base is the part of a driver's configuration that every driver has. A
// driver's Config embeds it.
type Base struct {
	// BrainyCore is the brainy-core binary. Required.
	BrainyCore string
	// WorkDir holds the data directories and logs; it is removed at the
	// end unless KeepWorkDir. Required.
	WorkDir     string
	KeepWorkDir bool
	// Parts selects which of the driver's parts run. Default all of them.
	Parts []string
	// MaxRun bounds the whole run. The default is the driver's.
	MaxRun time.Duration
	// Log receives progress. Default: text on stderr.
	Log *slog.Logger
}

// SetDefaults fills Base's zero fields: Parts with parts (all of the
// driver's), MaxRun with maxRun, Log with text on stderr.
func (b *Base) SetDefaults(parts []string, maxRun time.Duration) {
	if len(b.Parts) == 0 {
		b.Parts = parts
	}
	if b.MaxRun == 0 {
		b.MaxRun = maxRun
	}
	if b.Log == nil {
		b.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
}

// Check lists the problems with Base's required fields, for a driver's
// Validate to join with its own.
func (b *Base) Check() []error {
	var errs []error
	if b.BrainyCore == "" {
		errs = append(errs, errors.New("BrainyCore (the brainy-core binary) is required"))
	}
	if b.WorkDir == "" {
		errs = append(errs, errors.New("WorkDir is required"))
	}
	return errs
}

// Has reports whether part is one of the parts to run.
func (b *Base) Has(part string) bool { return slices.Contains(b.Parts, part) }

// Config is what Command.Setup needs of a driver's configuration, besides
// its Base.
type Config interface {
	// EnsureDefaults fills the zero fields with their defaults.
	EnsureDefaults()
	// Validate reports every problem at once.
	Validate() error
}

// Command is a driver's command line: the flags every driver has, defined
// by NewCommand into the driver's Base, and the driver's own, which it
// defines on Flags.
type Command struct {
	// Flags is the flag set; its name prefixes usage errors.
	Flags *flag.FlagSet
	// NoArgs makes Setup refuse arguments after the flags (otherwise they
	// are ignored).
	NoArgs bool

	stderr io.Writer
	base   *Base
	parts  string
}

// NewCommand returns the command line of the driver named name (say
// "bench-profile"), writing usage and errors to stderr, with the flags
// every driver has: -brainy-core, -work-dir, -keep, -parts (comma-separated,
// default defaultParts) and -max-run (default maxRun), read into base.
func NewCommand(name string, stderr io.Writer, base *Base, defaultParts string, maxRun time.Duration) *Command {
	c := &Command{Flags: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr, base: base}
	fs := c.Flags
	fs.SetOutput(stderr)
	fs.StringVar(&base.BrainyCore, "brainy-core", "", "brainy-core `binary`")
	fs.StringVar(&base.WorkDir, "work-dir", "", "`directory` for data and logs (removed at the end)")
	fs.BoolVar(&base.KeepWorkDir, "keep", false, "keep the work directory")
	fs.StringVar(&c.parts, "parts", defaultParts, "comma-separated `parts` to run")
	fs.DurationVar(&base.MaxRun, "max-run", maxRun, "bound on the whole run")
	return c
}

// Setup reads args into the configuration cfg (whose Base NewCommand was
// given): it parses the flags, splits -parts, sets the progress log (text
// on stderr), fills the defaults and validates. When it returns false, the
// driver exits with status: 0 after -help, 2 after a bad command line
// (which the flag set or Setup has reported on stderr).
func (c *Command) Setup(args []string, cfg Config) (status int, ok bool) {
	fs := c.Flags
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if c.NoArgs && fs.NArg() > 0 {
		return c.usageError(fmt.Errorf("unexpected arguments: %v", fs.Args())), false
	}
	c.base.Parts = strings.Split(c.parts, ",")
	c.base.Log = slog.New(slog.NewTextHandler(c.stderr, nil))
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return c.usageError(err), false
	}
	return 0, true
}

// usageError reports a bad command line on stderr, prefixed with the
// command's name, and returns its exit status, 2.
func (c *Command) usageError(err error) int {
	fmt.Fprintln(c.stderr, c.Flags.Name()+":", err)
	return 2
}

// Run runs measure, the driver's measurements, under a context that ends
// after MaxRun or on SIGINT or SIGTERM. Then it stops every process procs
// holds (SIGTERM, SIGKILL after StopGrace), calls report (which prints what
// was measured, also after a failure) and returns the exit status: 0, or 1
// when measure failed (logged). On the way out, a panic included, the
// processes are stopped again and the work directory is removed unless
// KeepWorkDir.
func (c *Command) Run(procs *benchproc.Registry, measure func(context.Context) error, report func()) int {
	b := c.base
	ctx, cancel := context.WithTimeout(context.Background(), b.MaxRun)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			b.Log.Warn("stopping on signal", "signal", s.String())
			cancel()
		}
	}()

	defer func() {
		procs.StopAll(StopGrace)
		if !b.KeepWorkDir {
			os.RemoveAll(b.WorkDir)
		}
	}()
	err := measure(ctx)
	procs.StopAll(StopGrace)
	report()
	if err != nil {
		b.Log.Error("run failed", "err", err)
		return 1
	}
	return 0
}
