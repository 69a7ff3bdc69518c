package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// fmtUS formats microseconds with a unit that keeps 3-4 significant digits.
func fmtUS(us int64) string {
	switch {
	case us < 1000:
		return strconv.FormatInt(us, 10) + "µs"
	case us < 1_000_000:
		return strconv.FormatFloat(float64(us)/1e3, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(float64(us)/1e6, 'f', 3, 64) + "s"
	}
}

// WriteText writes a human-readable summary of r.
func (r *Result) WriteText(w io.Writer) error {
	r.finalize()
	var b strings.Builder
	fmt.Fprintf(&b, "brainy-loadtest: %s\n", r.Label)
	model := fmt.Sprintf("closed loop, %d connections", r.Connections)
	if r.Model == "open" {
		model = fmt.Sprintf("open model at %.0f req/s, %d connections (latency from intended send time)", r.Rate, r.Connections)
	}
	fmt.Fprintf(&b, "  model:      %s\n", model)
	switch r.Workload {
	case WorkloadItems:
		fmt.Fprintf(&b, "  workload:   items, mix %s, %d keys %s, body %d B\n", r.Mix, r.Keys, r.KeyDist, r.BodySize)
	default:
		fmt.Fprintf(&b, "  workload:   %s %s", r.Method, r.Target)
		if r.Keys > 0 {
			fmt.Fprintf(&b, ", %d keys %s", r.Keys, r.KeyDist)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "  duration:   %.2fs measured (%.2fs run, %.2fs warm-up excluded)", r.MeasuredS, r.ElapsedS, r.WarmupS)
	if r.Sources > 1 {
		fmt.Fprintf(&b, ", merged from %d generators", r.Sources)
	}
	if r.Interrupted {
		b.WriteString(", INTERRUPTED")
	}
	b.WriteByte('\n')
	if p := r.Preload; p != nil {
		fmt.Fprintf(&b, "  preload:    %d keys in %.2fs, %d errors\n", p.Keys, p.ElapsedS, p.Errors)
	}
	fmt.Fprintf(&b, "  requests:   %d (%.1f req/s)\n", r.Requests, r.Throughput)
	errPct := 0.0
	if r.Requests > 0 {
		errPct = 100 * float64(r.Errors) / float64(r.Requests+r.TransportErrorsTotal())
	}
	fmt.Fprintf(&b, "  errors:     %d (%.2f%%): %s\n", r.Errors, errPct, r.ErrorBreakdown())
	if len(r.Status) > 0 {
		b.WriteString("  status:    ")
		for _, code := range r.statusKeys() {
			fmt.Fprintf(&b, " %d=%d", code, r.Status[code])
		}
		b.WriteByte('\n')
	}
	if r.Model == "open" {
		fmt.Fprintf(&b, "  sends:      %d scheduled, %d sent, %d late (> %s), %d dropped (never sent)\n",
			r.Scheduled, r.Sent, r.Late, fmtUS(int64(r.LateAfter*1e6)), r.Dropped)
	}
	b.WriteString("\n  latency")
	if r.Model == "open" {
		b.WriteString("   (from intended send; service time from actual send)")
	}
	b.WriteByte('\n')
	rows := r.Summary.Rows()
	var svc []SummaryRow
	if r.ServiceSum != nil {
		svc = r.ServiceSum.Rows()
	}
	for i, row := range rows {
		fmt.Fprintf(&b, "    %-7s %10s", row.Label, fmtUS(row.US))
		if svc != nil {
			fmt.Fprintf(&b, "   service %10s", fmtUS(svc[i].US))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "    %-7s %10s\n", "mean", fmtUS(int64(r.Summary.MeanUS)))
	if len(r.Ops) > 0 {
		b.WriteString("\n  by operation\n")
		for _, name := range slices.Sorted(maps.Keys(r.Ops)) {
			o := r.Ops[name]
			fmt.Fprintf(&b, "    %-6s %9d req %6d err  p50 %9s  p99 %9s  max %9s\n",
				name, o.Requests, o.Errors, fmtUS(o.Summary.P50US), fmtUS(o.Summary.P99US), fmtUS(o.Summary.MaxUS))
		}
	}
	if len(r.Series) > 0 {
		b.WriteString("\n  per second\n       t      req/s    errors        p50        p99        max\n")
		for _, s := range r.Series {
			fmt.Fprintf(&b, "    %4.0fs %10.0f %9d %10s %10s %10s\n", s.T, s.Throughput, s.Errors, fmtUS(s.P50US), fmtUS(s.P99US), fmtUS(s.MaxUS))
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("loadtest: write text: %w", err)
	}
	return nil
}

// TransportErrorsTotal returns the number of requests that got no response.
func (r *Result) TransportErrorsTotal() int64 {
	var n int64
	for _, v := range r.TransportErrors {
		n += v
	}
	return n
}
