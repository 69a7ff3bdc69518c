package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Comparison holds the results of Compare: each target's rounds combined.
type Comparison struct {
	A, B *Result
}

// Compare runs the two configs alternately, A then B, rounds times each,
// every run lasting a.Duration/rounds (b.Duration/rounds), so that drift in
// the machine's state affects both alike. Both configs must be bounded by
// Duration. It returns each side's runs combined. Cancelling ctx stops after
// the current run and compares what ran.
func Compare(ctx context.Context, a, b Config, rounds int) (*Comparison, error) {
	if rounds < 1 {
		return nil, fmt.Errorf("loadtest: compare: rounds (%d) must be >= 1", rounds)
	}
	var runsA, runsB []*Result
	cfgs := [2]*Config{&a, &b}
	for _, c := range cfgs {
		c.EnsureDefaults()
		if err := c.Validate(); err != nil {
			return nil, err
		}
		if c.Duration <= 0 {
			return nil, errors.New("loadtest: compare: each side needs a Duration")
		}
		c.Duration /= time.Duration(rounds)
		if c.Warmup >= c.Duration {
			return nil, fmt.Errorf("loadtest: compare: Warmup (%v) must be shorter than a round (%v)", c.Warmup, c.Duration)
		}
	}
	for i := 0; i < rounds && ctx.Err() == nil; i++ {
		for side, c := range cfgs {
			c.Preload = c.Preload && i == 0 // preload once per side
			r, err := Run(ctx, *c)
			if err != nil {
				return nil, err
			}
			if side == 0 {
				runsA = append(runsA, r)
			} else {
				runsB = append(runsB, r)
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(runsA) == 0 || len(runsB) == 0 {
		return nil, errors.New("loadtest: compare: interrupted before both sides ran")
	}
	ra, err := concat(runsA)
	if err != nil {
		return nil, err
	}
	rb, err := concat(runsB)
	if err != nil {
		return nil, err
	}
	return &Comparison{A: ra, B: rb}, nil
}

// concat combines consecutive runs of one target: like Merge, but times add
// up and connections and rate stay those of one run.
func concat(rs []*Result) (*Result, error) {
	out, err := Merge(rs...)
	if err != nil {
		return nil, err
	}
	out.Label = rs[0].Label
	out.Connections, out.Rate, out.Sources = rs[0].Connections, rs[0].Rate, len(rs)
	out.ElapsedS, out.WarmupS, out.MeasuredS = 0, 0, 0
	out.Series = out.Series[:0]
	for _, r := range rs {
		for _, s := range r.Series {
			s.T += out.MeasuredS
			out.Series = append(out.Series, s)
		}
		out.ElapsedS += r.ElapsedS
		out.WarmupS += r.WarmupS
		out.MeasuredS += r.MeasuredS
	}
	out.finalize()
	return out, nil
}

// WriteText prints each figure for A and B with the ratio B/A.
func (c *Comparison) WriteText(w io.Writer) error {
	a, b := c.A, c.B
	a.finalize()
	b.finalize()
	var sb strings.Builder
	fmt.Fprintf(&sb, "compare (%d rounds each, alternating)\n  A: %s\n  B: %s\n\n", a.Sources, a.Label, b.Label)
	fmt.Fprintf(&sb, "  %-12s %14s %14s %10s\n", "figure", "A", "B", "ratio B/A")
	row := func(name, av, bv string, x, y float64) {
		ratio := "-"
		if x != 0 {
			ratio = fmt.Sprintf("%.3fx", y/x)
		}
		fmt.Fprintf(&sb, "  %-12s %14s %14s %10s\n", name, av, bv, ratio)
	}
	row("throughput", fmt.Sprintf("%.1f/s", a.Throughput), fmt.Sprintf("%.1f/s", b.Throughput), a.Throughput, b.Throughput)
	row("requests", fmt.Sprint(a.Requests), fmt.Sprint(b.Requests), float64(a.Requests), float64(b.Requests))
	row("errors", fmt.Sprint(a.Errors), fmt.Sprint(b.Errors), float64(a.Errors), float64(b.Errors))
	ar, br := a.Summary.Rows(), b.Summary.Rows()
	row("mean", fmtUS(int64(a.Summary.MeanUS)), fmtUS(int64(b.Summary.MeanUS)), a.Summary.MeanUS, b.Summary.MeanUS)
	for i := range ar {
		row(ar[i].Label, fmtUS(ar[i].US), fmtUS(br[i].US), float64(ar[i].US), float64(br[i].US))
	}
	if a.Model == "open" || b.Model == "open" {
		row("late", fmt.Sprint(a.Late), fmt.Sprint(b.Late), float64(a.Late), float64(b.Late))
		row("dropped", fmt.Sprint(a.Dropped), fmt.Sprint(b.Dropped), float64(a.Dropped), float64(b.Dropped))
	}
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return fmt.Errorf("loadtest: write comparison: %w", err)
	}
	return nil
}
