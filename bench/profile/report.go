package main

import (
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/soullabs/brainy/loadtest"
)

// Goals the issue states for the profile part: B reaches at least
// goalRatio × A's req/s, with a lower p99.
const goalRatio = 1.3

// ratio returns a/b, or 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", r)
}

// pairs returns the rounds in which both A and B completed, as
// (A, B) pairs in round order.
func pairs(runs []*profileRun) [][2]*profileRun {
	var out [][2]*profileRun
	byRound := map[int]*[2]*profileRun{}
	var rounds []int
	for _, r := range runs {
		if r.load == nil || r.err != nil {
			continue
		}
		p := byRound[r.round]
		if p == nil {
			p = &[2]*profileRun{}
			byRound[r.round] = p
			rounds = append(rounds, r.round)
		}
		if r.config == "A" {
			p[0] = r
		} else {
			p[1] = r
		}
	}
	slices.Sort(rounds)
	for _, k := range rounds {
		if p := byRound[k]; p[0] != nil && p[1] != nil {
			out = append(out, *p)
		}
	}
	return out
}

// means returns the mean req/s and mean p99 (in ms) of the pairs' A side
// (side 0) or B side (side 1).
func means(ps [][2]*profileRun, side int) (rps, p99 float64) {
	if len(ps) == 0 {
		return 0, 0
	}
	for _, p := range ps {
		rps += p[side].load.rps()
		p99 += float64(p[side].load.p99()) / float64(time.Millisecond)
	}
	return rps / float64(len(ps)), p99 / float64(len(ps))
}

// errorsCell is "none" or the count and kinds of errors of r.
func errorsCell(r *loadtest.Result) string {
	if r.Errors == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", r.Errors, r.ErrorBreakdown())
}

func cpuCell(c float64) string {
	if c < 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", c)
}

// perNodeCell lists each node's req/s.
func perNodeCell(l *loadResult) string {
	var s []string
	for i, r := range l.perNode {
		s = append(s, fmt.Sprintf("%s %.0f", l.nodeIDs[i], r.Throughput))
	}
	return strings.Join(s, ", ")
}

func argsCell(args []string) string {
	if len(args) == 0 {
		return "(none: brainy-core's defaults)"
	}
	return "`" + strings.Join(args, " ") + "`"
}

// summary prints the results as markdown.
func (b *bench) summary(w io.Writer) {
	c, r := b.cfg, b.res
	cpus := runtime.NumCPU()
	fmt.Fprintf(w, "## Profile benchmark, %s\n\n", r.started.UTC().Format("2006-01-02 15:04 UTC"))
	if cpus <= 2 {
		fmt.Fprintf(w, "**This machine has only %d CPU cores.** The 3 or 4 brainy-core nodes and the load generator (the loadtest package, in the driver's process) all share them, so every load here is CPU-bound: absolute req/s and latencies say little about a real deployment; compare the ratios, measured in the same run on the same machine.\n\n", cpus)
	} else {
		fmt.Fprintf(w, "Machine: %d CPU cores, shared by the brainy-core nodes and the load generator (in the driver's process).\n\n", cpus)
	}
	fmt.Fprintf(w, "Nodes on 127.0.0.91 to .94, fresh data directories for every cluster; %d items of %d-byte JSON bodies preloaded (%d writers spread over the nodes) and replicated to every node before each load; zipf θ = %g over those keys (key 0 the hottest); %d connections in all, split evenly over the nodes the load goes through (one loadtest run per node, merged); %v unreported warm-up then %v measured, closed loop.\n\n",
		c.Items, c.ValueSize, c.PreloadConnections, c.Theta, c.Connections, c.Warmup, c.Duration)

	if c.Has("profile") {
		b.profileSection(w)
	}
	if c.Has("reader") {
		b.readerSection(w)
	}

	fmt.Fprintln(w, "### Summary")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | value |")
	fmt.Fprintln(w, "|---|---:|")
	if ps := pairs(r.profile); len(ps) > 0 {
		aRPS, aP99 := means(ps, 0)
		bRPS, bP99 := means(ps, 1)
		fmt.Fprintf(w, "| profile A: mean req/s, p99 (%d rounds) | %.0f, %.2f ms |\n", len(ps), aRPS, aP99)
		fmt.Fprintf(w, "| profile B: mean req/s, p99 | %.0f, %.2f ms |\n", bRPS, bP99)
		fmt.Fprintf(w, "| profile B/A req/s, p99 | %s, %s |\n", fmtRatio(ratio(bRPS, aRPS)), fmtRatio(ratio(bP99, aP99)))
	}
	if x := r.reader; x != nil && x.before != nil && x.after != nil {
		fmt.Fprintf(w, "| stale reads, 3 voters: req/s, p99 | %.0f, %s ms |\n", x.before.rps(), ms(x.before.p99()))
		fmt.Fprintf(w, "| stale reads, 3 voters + reader: req/s, p99 | %.0f, %s ms |\n", x.after.rps(), ms(x.after.p99()))
		fmt.Fprintf(w, "| after/before req/s, p99 | %s, %s |\n", fmtRatio(ratio(x.after.rps(), x.before.rps())),
			fmtRatio(ratio(float64(x.after.p99()), float64(x.before.p99()))))
	}
	if len(r.problems) > 0 {
		fmt.Fprintln(w, "\nProblems:")
		for _, p := range r.problems {
			fmt.Fprintf(w, "- %s\n", p)
		}
	}
}

func (b *bench) profileSection(w io.Writer) {
	c, r := b.cfg, b.res
	fmt.Fprintf(w, "### 1. Read-heavy zipf on 3 nodes, through %d of them: configuration A vs B\n\n", b.cfg.Entry)
	fmt.Fprintf(w, "Mix read=%d,write=%d (GET and PUT of the preloaded items, default consistency), %d rounds alternating A, B. A: %s; B: %s (extra brainy-core flags).\n\n",
		c.ReadPercent, 100-c.ReadPercent, c.Rounds, argsCell(strings.Fields(c.AArgs)), argsCell(strings.Fields(c.BArgs)))
	if len(r.profile) > 0 {
		fmt.Fprintf(w, "| round | config | req/s | p50 ms | p99 ms | GET p99 ms | PUT p99 ms | errors | busy cores (of %d) | req/s per node | preload s |\n", runtime.NumCPU())
		fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|")
		for _, x := range r.profile {
			if x.load == nil {
				why := "did not run"
				if x.err != nil {
					why = "failed: " + firstLine(x.err.Error())
				}
				fmt.Fprintf(w, "| %d | %s | %s | | | | | | | | |\n", x.round, x.config, why)
				continue
			}
			l := x.load
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %.1f |\n", x.round, x.config, l.rps(), ms(l.p50()), ms(l.p99()),
				ms(l.opP99("read")), ms(l.opP99("write")), errorsCell(l.total), cpuCell(l.busyCores), perNodeCell(l), x.preload.Seconds())
		}
		fmt.Fprintln(w)
	}
	ps := pairs(r.profile)
	if len(ps) > 0 {
		fmt.Fprintln(w, "| round | B/A req/s | B/A p99 |")
		fmt.Fprintln(w, "|---:|---:|---:|")
		for _, p := range ps {
			fmt.Fprintf(w, "| %d | %s | %s |\n", p[0].round, fmtRatio(ratio(p[1].load.rps(), p[0].load.rps())),
				fmtRatio(ratio(float64(p[1].load.p99()), float64(p[0].load.p99()))))
		}
		aRPS, aP99 := means(ps, 0)
		bRPS, bP99 := means(ps, 1)
		rr, pr := ratio(bRPS, aRPS), ratio(bP99, aP99)
		fmt.Fprintf(w, "| mean | %s | %s |\n\n", fmtRatio(rr), fmtRatio(pr))
		verdict := "NOT met"
		if rr >= goalRatio && pr > 0 && pr < 1 {
			verdict = "met"
		}
		fmt.Fprintf(w, "Goal (B ≥ %.1f× A's req/s and a lower p99): %s (B/A req/s %s, p99 %s, means over %d rounds).", goalRatio, verdict, fmtRatio(rr), fmtRatio(pr), len(ps))
		if strings.Join(strings.Fields(c.AArgs), " ") == strings.Join(strings.Fields(c.BArgs), " ") {
			fmt.Fprint(w, " A and B have the same flags in this run, so the ratios only show run-to-run noise.")
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
	}
	var anyB bool
	for _, x := range r.profile {
		if x.config != "B" || x.load == nil {
			continue
		}
		anyB = true
		if len(x.tuning) == 0 {
			continue
		}
		fmt.Fprintf(w, "Tuning sections of /v1/metrics at the end of B round %d:\n\n", x.round)
		for _, id := range slices.Sorted(maps.Keys(x.tuning)) {
			fmt.Fprintf(w, "%s:\n\n```json\n%s\n```\n\n", id, x.tuning[id])
		}
	}
	if anyB && !slices.ContainsFunc(r.profile, func(x *profileRun) bool { return len(x.tuning) > 0 }) {
		fmt.Fprintln(w, "No node's /v1/metrics had a tuning section at the end of the B runs.")
		fmt.Fprintln(w)
	}
}

func (b *bench) readerSection(w io.Writer) {
	x := b.res.reader
	fmt.Fprintf(w, "### 2. A reader joins 3 voters under stale-read load\n\n")
	if x == nil {
		fmt.Fprintln(w, "Did not run.")
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "Read-only GET /v1/items/%s{key}?consistency=stale (loadtest url workload), %d connections in all: through the 3 voters, then through the 3 voters and a fourth node started with `--role reader` (joined through n1), once n1 lists it as a learner of every partition and it holds every item.\n\n", keyPrefix, b.cfg.Connections)
	if x.joined > 0 {
		fmt.Fprintf(w, "The reader was a learner of every partition %.1f s after its start and held every item after %.1f s.\n\n", x.joined.Seconds(), x.caughtUp.Seconds())
	}
	fmt.Fprintf(w, "| | connections | req/s | p50 ms | p99 ms | errors | busy cores (of %d) | req/s per node |\n", runtime.NumCPU())
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|---:|---|")
	for _, row := range []struct {
		name string
		l    *loadResult
	}{{"before: 3 voters", x.before}, {"after: 3 voters + reader", x.after}} {
		if row.l == nil {
			fmt.Fprintf(w, "| %s | did not run | | | | | | |\n", row.name)
			continue
		}
		l := row.l
		var conns []string
		for _, n := range l.conns {
			conns = append(conns, fmt.Sprint(n))
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n", row.name, strings.Join(conns, "+"), l.rps(), ms(l.p50()), ms(l.p99()),
			errorsCell(l.total), cpuCell(l.busyCores), perNodeCell(l))
	}
	fmt.Fprintln(w)
	if x.before != nil && x.after != nil {
		fmt.Fprintf(w, "After/before: req/s %s, p99 %s.\n\n", fmtRatio(ratio(x.after.rps(), x.before.rps())),
			fmtRatio(ratio(float64(x.after.p99()), float64(x.before.p99()))))
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "|", "/")
}
