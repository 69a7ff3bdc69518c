// Command brainy-loadtest is Brainy's HTTP load generator. It only wires
// flags, environment and output; package loadtest does the work.
//
//	brainy-loadtest [flags] URL              run a load test
//	brainy-loadtest merge [flags] A.json ... merge results of several generators
//	brainy-loadtest compare [flags] URL_A URL_B
//	brainy-loadtest freshness [flags] WRITE_URL READ_URL
//
// Every flag can also be set with BRAINY_LOADTEST_<FLAG> (upper case, '-' as
// '_'); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/soullabs/brainy/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stdout) && isTerminal(os.Stderr)))
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// headerList is a repeatable -H flag.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// options are the flags shared by run and compare, on top of a Config.
type options struct {
	cfg      loadtest.Config
	headers  headerList
	jsonOut  bool
	outFile  string
	htmlFile string
	quiet    bool
	verbose  bool
	rounds   int
}

func newFlagSet(name string, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	d := loadtest.DefaultConfig("")
	fs.IntVar(&c.Connections, "c", d.Connections, "connections (one worker each)")
	fs.Float64Var(&c.Rate, "rate", 0, "open model: requests/s, latency from intended send time (0 = closed loop)")
	fs.DurationVar(&c.Duration, "d", 0, "duration, warm-up included (default 10s, unlimited with -n)")
	fs.Int64Var(&c.Requests, "n", 0, "stop after this many requests (0 = no limit)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "warm-up excluded from results")
	fs.DurationVar(&c.Timeout, "timeout", d.Timeout, "per-request timeout")
	fs.DurationVar(&c.LateAfter, "late-after", d.LateAfter, "open model: a send this far behind its intended time counts as late")
	fs.StringVar(&c.Workload, "workload", "", `"url" (default) or "items" (Brainy item API; implied by -mix)`)
	fs.StringVar(&c.Method, "m", d.Method, "HTTP method for the url workload")
	fs.StringVar(&c.Mix, "mix", "", "items workload mix, e.g. read=90,write=10 (ops: read, write, add)")
	fs.IntVar(&c.Keys, "keys", d.Keys, "key space size")
	fs.StringVar(&c.KeyDist, "dist", d.KeyDist, "key distribution: uniform, zipf[:theta], sequential, hot")
	fs.StringVar(&c.KeyPrefix, "key-prefix", d.KeyPrefix, "item id prefix")
	fs.IntVar(&c.BodySize, "body-size", d.BodySize, "generated JSON body size in bytes")
	fs.StringVar(&c.ItemType, "type", d.ItemType, "item type of generated bodies")
	fs.IntVar(&c.MetadataFields, "metadata-fields", 0, "top-level metadata fields of generated bodies (0-64), their values varying between bodies")
	fs.StringVar(&c.Tenant, "tenant", "", "X-Brainy-Tenant header")
	fs.StringVar(&c.APIKey, "api-key", "", "API key (sent as Authorization: Bearer KEY); prefer BRAINY_LOADTEST_API_KEY")
	fs.Var(&o.headers, "H", `extra header "Name: value" (repeatable)`)
	fs.BoolVar(&c.Preload, "preload", false, "write every key once before the run so reads hit")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a target that is not loopback")
	fs.Uint64Var(&c.Seed, "seed", d.Seed, "random seed")
	fs.StringVar(&c.Label, "label", "", "name of the run in reports (default: the target)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON on stdout instead of text")
	fs.StringVar(&o.outFile, "o", "", "also write the JSON result to this file")
	fs.StringVar(&o.htmlFile, "html", "", "also write a self-contained HTML report to this file")
	fs.BoolVar(&o.quiet, "quiet", false, "no live progress line")
	fs.BoolVar(&o.verbose, "v", false, "log run events to stderr")
	if name == "compare" {
		fs.IntVar(&o.rounds, "rounds", 3, "alternating runs per target; -d is split between them")
	}
	return fs
}

// parseArgs parses flags that may come before or after positional arguments,
// then applies BRAINY_LOADTEST_* for flags not given.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := "BRAINY_LOADTEST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
			set[f.Name] = true
		}
	})
	if set["mix"] && !set["workload"] {
		fs.Set("workload", loadtest.WorkloadItems)
	}
	return pos, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	if len(args) > 0 {
		switch args[0] {
		case "merge":
			return runMerge(args[1:], stdout, stderr)
		case "compare":
			return runCompare(ctx, args[1:], stdout, stderr, tty)
		case "freshness":
			return runFreshness(ctx, args[1:], stdout, stderr)
		}
	}
	var o options
	fs := newFlagSet("brainy-loadtest", &o, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: brainy-loadtest [flags] URL\n       brainy-loadtest merge [-json] [-o out.json] [-html out.html] a.json b.json ...\n       brainy-loadtest compare [flags] URL_A URL_B\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(stderr, err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	cfg := o.config(pos[0], stderr, tty)
	if err := cfg.Validate(); err != nil {
		return usageError(stderr, err)
	}
	cfg.Logger.Info("config", "target", cfg.Target, "workload", cfg.Workload, "connections", cfg.Connections,
		"rate", cfg.Rate, "duration", cfg.Duration, "requests", cfg.Requests, "warmup", cfg.Warmup,
		"mix", cfg.Mix, "keys", cfg.Keys, "dist", cfg.KeyDist, "preload", cfg.Preload)
	res, err := loadtest.Run(ctx, cfg)
	if cfg.Progress != nil {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if code := o.output(res, stdout, stderr); code != 0 {
		return code
	}
	if res.Interrupted {
		return 130
	}
	return 0
}

// config turns the options into a Config with defaults applied.
func (o *options) config(target string, stderr io.Writer, tty bool) loadtest.Config {
	cfg := o.cfg
	cfg.Target = target
	cfg.Headers = o.headers
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if tty && !o.quiet && !o.verbose {
		cfg.Progress = func(p loadtest.Progress) { fmt.Fprintf(stderr, "\r%s\x1b[K", p) }
	}
	cfg.EnsureDefaults()
	return cfg
}

func (o *options) output(res *loadtest.Result, stdout, stderr io.Writer) int {
	var err error
	if o.jsonOut {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err == nil && o.outFile != "" {
		err = res.WriteFile(o.outFile, (*loadtest.Result).WriteJSON)
	}
	if err == nil && o.htmlFile != "" {
		err = res.WriteFile(o.htmlFile, (*loadtest.Result).WriteHTML)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func runMerge(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet("merge", &o, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(stderr, err)
	}
	if len(pos) < 1 {
		fmt.Fprintln(stderr, "usage: brainy-loadtest merge [-json] [-o out.json] [-html out.html] a.json b.json ...")
		return 2
	}
	var rs []*loadtest.Result
	for _, p := range pos {
		r, err := loadtest.ReadResultFile(p)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		rs = append(rs, r)
	}
	m, err := loadtest.Merge(rs...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.cfg.Label != "" {
		m.Label = o.cfg.Label
	}
	return o.output(m, stdout, stderr)
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer, tty bool) int {
	var o options
	fs := newFlagSet("compare", &o, stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(stderr, err)
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: brainy-loadtest compare [flags] URL_A URL_B")
		return 2
	}
	a, b := o.config(pos[0], stderr, tty), o.config(pos[1], stderr, tty)
	a.Label, b.Label = pos[0], pos[1]
	if o.cfg.Duration == 0 && o.cfg.Requests == 0 {
		a.Duration, b.Duration = 10*time.Second, 10*time.Second
	}
	cmp, err := loadtest.Compare(ctx, a, b, o.rounds)
	if a.Progress != nil {
		fmt.Fprint(stderr, "\r\x1b[K")
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := cmp.WriteText(stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// runFreshness measures how long a write acknowledged at WRITE_URL takes to
// be served by READ_URL (see loadtest.MeasureFreshness).
func runFreshness(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		c       loadtest.FreshnessConfig
		headers headerList
		jsonOut bool
		outFile string
		verbose bool
	)
	fs := flag.NewFlagSet("freshness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Writes, "n", 1000, "measured writes, one at a time")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Second, "longest wait for one write to be served by READ_URL; later counts as timed out")
	fs.DurationVar(&c.PollInterval, "poll", 100*time.Microsecond, "pause between two reads (negative: none)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "per-request timeout")
	fs.StringVar(&c.ItemID, "id", "freshness-probe", "id of the item written and read")
	fs.StringVar(&c.ItemType, "type", "bench", "item type")
	fs.StringVar(&c.Tenant, "tenant", "", "X-Brainy-Tenant header")
	fs.Var(&headers, "H", `extra header "Name: value" (repeatable)`)
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow URLs that are not loopback")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON on stdout instead of text")
	fs.StringVar(&outFile, "o", "", "also write the JSON result to this file")
	fs.BoolVar(&verbose, "v", false, "log run events to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: brainy-loadtest freshness [flags] WRITE_URL READ_URL\n\nWrites an item N times at WRITE_URL and after each acknowledged write polls\nREAD_URL until it serves the new value; reports the delay's percentiles.\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usageError(stderr, err)
	}
	if len(pos) != 2 {
		fs.Usage()
		return 2
	}
	c.WriteURL, c.ReadURL, c.Headers = pos[0], pos[1], headers
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		return usageError(stderr, err)
	}
	res, err := loadtest.MeasureFreshness(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := writeFreshness(res, jsonOut, outFile, stdout); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if res.Interrupted {
		return 130
	}
	return 0
}

// writeFreshness prints res as text or JSON, and writes the JSON to
// outFile when one is named.
func writeFreshness(res *loadtest.FreshnessResult, jsonOut bool, outFile string, stdout io.Writer) error {
	var err error
	if jsonOut {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err == nil && outFile != "" {
		var f *os.File
		if f, err = os.Create(outFile); err == nil {
			err = errors.Join(res.WriteJSON(f), f.Close())
		}
	}
	return err
}

func usageError(stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, err)
	return 2
}
