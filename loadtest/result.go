package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ResultFormat identifies the JSON result format; DecodeResult refuses others.
const ResultFormat = "brainy-loadtest/1"

// Result is what a run measured. It is plain data: JSON round-trips it, and
// Merge combines results of the same workload from several machines.
// Latencies are in microseconds.
type Result struct {
	Format      string    `json:"format"`
	Label       string    `json:"label"`
	Target      string    `json:"target"`
	Workload    string    `json:"workload"`
	Method      string    `json:"method,omitempty"`
	Mix         string    `json:"mix,omitempty"`
	KeyDist     string    `json:"key_dist,omitempty"`
	Keys        int       `json:"keys,omitempty"`
	BodySize    int       `json:"body_size,omitempty"`
	Model       string    `json:"model"` // "closed" or "open"
	Connections int       `json:"connections"`
	Rate        float64   `json:"rate,omitempty"` // intended requests/s (open model)
	Started     time.Time `json:"started"`
	// ElapsedS is the run's wall time in seconds, warm-up included.
	ElapsedS float64 `json:"elapsed_s"`
	// WarmupS is the excluded warm-up in seconds.
	WarmupS float64 `json:"warmup_s"`
	// MeasuredS is the time the results cover, in seconds.
	MeasuredS   float64 `json:"measured_s"`
	Interrupted bool    `json:"interrupted,omitempty"`
	// Sources is the number of generator runs merged into this result.
	Sources int `json:"sources"`

	// Requests counts measured responses (any status); Errors counts
	// responses with status >= 400 plus transport errors.
	Requests        int64            `json:"requests"`
	Errors          int64            `json:"errors"`
	Status          map[int]int64    `json:"status"`
	TransportErrors map[string]int64 `json:"transport_errors"`

	// Open model, whole run including warm-up: Scheduled requests were due
	// before the run stopped; Sent of them were sent, Late of those more
	// than LateAfter after their intended time; Dropped were never sent.
	// Invariant: Scheduled == Sent + Dropped.
	Scheduled int64   `json:"scheduled,omitempty"`
	Sent      int64   `json:"sent,omitempty"`
	Late      int64   `json:"late,omitempty"`
	Dropped   int64   `json:"dropped,omitempty"`
	LateAfter float64 `json:"late_after_s,omitempty"`

	// Latency is measured from the intended send time (open model) or the
	// actual send time (closed loop). Service is measured from the actual
	// send time in the open model (what a closed-loop tool would report).
	Latency Hist  `json:"latency"`
	Service *Hist `json:"service,omitempty"`

	// Ops breaks results down by operation when a mix has more than one.
	Ops map[string]*OpResult `json:"ops,omitempty"`

	// Series has one entry per second of the measured run.
	Series []Second `json:"series"`

	Preload *PreloadResult `json:"preload,omitempty"`

	// Derived fields, recomputed on decode and merge.
	Throughput float64  `json:"throughput"`
	Summary    Summary  `json:"summary"`
	ServiceSum *Summary `json:"service_summary,omitempty"`
}

// OpResult is one operation's share of a run.
type OpResult struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Hist    `json:"latency"`
	Summary  Summary `json:"summary"`
}

// Second is one point of the time series.
type Second struct {
	// T is the start of the interval in seconds since the measured run began.
	T float64 `json:"t"`
	// DurS is the interval's length in seconds (1 except for the last).
	DurS     float64 `json:"dur_s"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Latency  Hist    `json:"latency"`
	// Derived.
	Throughput float64 `json:"throughput"`
	P50US      int64   `json:"p50_us"`
	P99US      int64   `json:"p99_us"`
	MaxUS      int64   `json:"max_us"`
}

// PreloadResult describes the preload phase.
type PreloadResult struct {
	Keys     int64   `json:"keys"`
	Errors   int64   `json:"errors"`
	ElapsedS float64 `json:"elapsed_s"`
}

// finalize recomputes the derived fields.
func (r *Result) finalize() {
	r.Summary = r.Latency.Summarize()
	r.Throughput = 0
	if r.MeasuredS > 0 {
		r.Throughput = float64(r.Requests) / r.MeasuredS
	}
	r.ServiceSum = nil
	if r.Service != nil {
		s := r.Service.Summarize()
		r.ServiceSum = &s
	}
	for _, o := range r.Ops {
		o.Summary = o.Latency.Summarize()
	}
	for i := range r.Series {
		s := &r.Series[i]
		sum := s.Latency.Summarize()
		s.P50US, s.P99US, s.MaxUS = sum.P50US, sum.P99US, sum.MaxUS
		s.Throughput = 0
		if s.DurS > 0 {
			s.Throughput = float64(s.Requests) / s.DurS
		}
	}
	if r.Status == nil {
		r.Status = map[int]int64{}
	}
	if r.TransportErrors == nil {
		r.TransportErrors = map[string]int64{}
	}
}

// WriteJSON writes r as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	r.finalize()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("loadtest: write json: %w", err)
	}
	return nil
}

// maxResultBytes bounds a result file DecodeResult accepts.
const maxResultBytes = 256 << 20

// DecodeResult reads a JSON result written by WriteJSON and validates it.
func DecodeResult(rd io.Reader) (*Result, error) {
	b, err := io.ReadAll(io.LimitReader(rd, maxResultBytes+1))
	if err != nil {
		return nil, fmt.Errorf("loadtest: read result: %w", err)
	}
	if len(b) > maxResultBytes {
		return nil, fmt.Errorf("loadtest: result larger than %d bytes", maxResultBytes)
	}
	var r Result
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("loadtest: decode result: %w", err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.finalize()
	return &r, nil
}

func (r *Result) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("loadtest: result: "+format, args...))
	}
	if r.Format != ResultFormat {
		bad("format %q, want %q", r.Format, ResultFormat)
	}
	if r.Model != "open" && r.Model != "closed" {
		bad("model %q must be open or closed", r.Model)
	}
	for _, v := range []float64{r.ElapsedS, r.WarmupS, r.MeasuredS, r.Rate, r.LateAfter} {
		if v < 0 || v != v || v > 1e12 {
			bad("durations and rate must be finite and >= 0")
			break
		}
	}
	for _, v := range []int64{r.Requests, r.Errors, r.Scheduled, r.Sent, r.Late, r.Dropped} {
		if v < 0 {
			bad("counters must be >= 0")
			break
		}
	}
	if r.Connections < 0 || r.Sources < 0 {
		bad("connections and sources must be >= 0")
	}
	if r.Latency.Total() != r.Requests {
		bad("latency histogram holds %d values but requests is %d", r.Latency.Total(), r.Requests)
	}
	for code, n := range r.Status {
		if code < 0 || code > 999 || n < 0 {
			bad("status %d: %d", code, n)
		}
	}
	for _, n := range r.TransportErrors {
		if n < 0 {
			bad("transport error counts must be >= 0")
		}
	}
	for name, o := range r.Ops {
		if o == nil {
			bad("op %q is null", name)
		}
	}
	for _, s := range r.Series {
		if s.T < 0 || s.DurS < 0 || s.T != s.T || s.DurS != s.DurS || s.T > 1e12 || s.DurS > 1e12 || s.Requests < 0 || s.Errors < 0 {
			bad("series point at t=%v is out of range", s.T)
			break
		}
	}
	return errors.Join(errs...)
}

// Merge combines results of the same workload run from several generator
// machines at the same time into one: counters add up, histograms merge
// exactly (percentiles are recomputed, never averaged), series points merge
// by their index (second) and rates add up.
func Merge(rs ...*Result) (*Result, error) {
	if len(rs) == 0 {
		return nil, errors.New("loadtest: merge: no results")
	}
	first := rs[0]
	out := &Result{
		Format: ResultFormat, Label: first.Label, Target: first.Target,
		Workload: first.Workload, Method: first.Method, Mix: first.Mix,
		KeyDist: first.KeyDist, Keys: first.Keys, BodySize: first.BodySize,
		Model: first.Model, Started: first.Started, LateAfter: first.LateAfter,
		Status: map[int]int64{}, TransportErrors: map[string]int64{},
	}
	var lat, svc []Hist
	ops := map[string][]Hist{}
	var series [][]Hist
	for _, r := range rs {
		if r.Model != first.Model {
			return nil, fmt.Errorf("loadtest: merge: model %q and %q differ", first.Model, r.Model)
		}
		if r.Workload != first.Workload {
			return nil, fmt.Errorf("loadtest: merge: workload %q and %q differ", first.Workload, r.Workload)
		}
		if r.Started.Before(out.Started) {
			out.Started = r.Started
		}
		out.Connections += r.Connections
		out.Rate += r.Rate
		out.ElapsedS = max(out.ElapsedS, r.ElapsedS)
		out.WarmupS = max(out.WarmupS, r.WarmupS)
		out.MeasuredS = max(out.MeasuredS, r.MeasuredS)
		out.Interrupted = out.Interrupted || r.Interrupted
		out.Sources += max(r.Sources, 1)
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Scheduled += r.Scheduled
		out.Sent += r.Sent
		out.Late += r.Late
		out.Dropped += r.Dropped
		for k, v := range r.Status {
			out.Status[k] += v
		}
		for k, v := range r.TransportErrors {
			out.TransportErrors[k] += v
		}
		lat = append(lat, r.Latency)
		if r.Service != nil {
			svc = append(svc, *r.Service)
		}
		for name, o := range r.Ops {
			if out.Ops == nil {
				out.Ops = map[string]*OpResult{}
			}
			if out.Ops[name] == nil {
				out.Ops[name] = &OpResult{}
			}
			out.Ops[name].Requests += o.Requests
			out.Ops[name].Errors += o.Errors
			ops[name] = append(ops[name], o.Latency)
		}
		for i, s := range r.Series {
			for len(out.Series) <= i {
				out.Series = append(out.Series, Second{T: float64(len(out.Series))})
				series = append(series, nil)
			}
			o := &out.Series[i]
			o.T = s.T
			o.DurS = max(o.DurS, s.DurS)
			o.Requests += s.Requests
			o.Errors += s.Errors
			series[i] = append(series[i], s.Latency)
		}
		if r.Preload != nil {
			if out.Preload == nil {
				out.Preload = &PreloadResult{}
			}
			out.Preload.Keys += r.Preload.Keys
			out.Preload.Errors += r.Preload.Errors
			out.Preload.ElapsedS = max(out.Preload.ElapsedS, r.Preload.ElapsedS)
		}
	}
	if len(rs) > 1 {
		out.Label = fmt.Sprintf("%s (merged from %d)", first.Label, out.Sources)
	}
	out.Latency = mergeHists(lat...)
	if len(svc) > 0 {
		s := mergeHists(svc...)
		out.Service = &s
	}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		out.Ops[name].Latency = mergeHists(ops[name]...)
	}
	for i := range out.Series {
		out.Series[i].Latency = mergeHists(series[i]...)
	}
	out.finalize()
	return out, nil
}

// statusKeys returns the status codes of r in increasing order.
func (r *Result) statusKeys() []int {
	return slices.Sorted(maps.Keys(r.Status))
}

// ErrorBreakdown returns "404: 12, timeout: 3"-style text, or "none".
func (r *Result) ErrorBreakdown() string {
	var b []byte
	for _, code := range r.statusKeys() {
		if code < 400 {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, r.Status[code], 10)
	}
	for _, k := range slices.Sorted(maps.Keys(r.TransportErrors)) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, r.TransportErrors[k], 10)
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
