package loadtest

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram parameters shared by every histogram in a run and in result
// files, so histograms from different runs and machines merge exactly.
const (
	histUnit    = "us"                   // values are microseconds
	histSigFigs = 3                      // 3 significant digits: ±0.1%
	histMaxUS   = int64(time.Hour / 1e3) // highest trackable latency; larger values are clamped
)

func newHDR() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, histMaxUS, histSigFigs)
}

// recordUS records d in microseconds, clamping to [0, histMaxUS].
func recordUS(h *hdrhistogram.Histogram, d time.Duration) {
	v := int64(d / time.Microsecond)
	if v < 0 {
		v = 0
	} else if v > histMaxUS {
		v = histMaxUS
	}
	_ = h.RecordValue(v) // cannot fail: v is in range
}

// Hist is a latency histogram in its portable form: the non-empty buckets
// of an HDR histogram (1 µs to 1 h, 3 significant digits) as pairs of
// (lowest value in the bucket in µs, count). Merging two Hists merges the
// underlying histograms exactly.
type Hist struct {
	// Counts holds value, count, value, count, ... with increasing values.
	Counts []int64
}

type histJSON struct {
	Unit    string  `json:"unit"`
	SigFigs int     `json:"sig_figs"`
	Counts  []int64 `json:"counts"`
}

// MarshalJSON encodes h as {"unit":"us","sig_figs":3,"counts":[v,c,...]}.
func (h Hist) MarshalJSON() ([]byte, error) {
	c := h.Counts
	if c == nil {
		c = []int64{}
	}
	return json.Marshal(histJSON{Unit: histUnit, SigFigs: histSigFigs, Counts: c})
}

// UnmarshalJSON decodes and validates the form MarshalJSON writes.
func (h *Hist) UnmarshalJSON(b []byte) error {
	var j histJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("loadtest: histogram: %w", err)
	}
	if j.Unit != histUnit || j.SigFigs != histSigFigs {
		return fmt.Errorf("loadtest: histogram: unit %q with %d significant digits, want %q with %d", j.Unit, j.SigFigs, histUnit, histSigFigs)
	}
	if err := validateCounts(j.Counts); err != nil {
		return err
	}
	h.Counts = j.Counts
	return nil
}

func validateCounts(c []int64) error {
	if len(c)%2 != 0 {
		return fmt.Errorf("loadtest: histogram: counts must be value,count pairs (got %d numbers)", len(c))
	}
	var total int64
	prev := int64(-1)
	for i := 0; i < len(c); i += 2 {
		v, n := c[i], c[i+1]
		if v < 0 || v > histMaxUS || v <= prev {
			return fmt.Errorf("loadtest: histogram: value %d must be in [0, %d] and increasing", v, histMaxUS)
		}
		if n <= 0 || n > math.MaxInt64-total {
			return fmt.Errorf("loadtest: histogram: count %d must be positive and the total must fit in int64", n)
		}
		prev, total = v, total+n
	}
	return nil
}

// histFrom returns the portable form of h.
func histFrom(h *hdrhistogram.Histogram) Hist {
	var out Hist
	if h.TotalCount() == 0 {
		return out
	}
	for _, b := range h.Distribution() {
		if b.Count > 0 {
			out.Counts = append(out.Counts, b.From, b.Count)
		}
	}
	return out
}

// HDR returns h as an HDR histogram. Counts must be valid (UnmarshalJSON
// and histFrom guarantee it); invalid pairs are skipped.
func (h Hist) HDR() *hdrhistogram.Histogram {
	out := newHDR()
	for i := 0; i+1 < len(h.Counts); i += 2 {
		if v, n := h.Counts[i], h.Counts[i+1]; v >= 0 && v <= histMaxUS && n > 0 {
			_ = out.RecordValues(v, n)
		}
	}
	return out
}

// Total returns the number of recorded values.
func (h Hist) Total() int64 {
	var t int64
	for i := 1; i < len(h.Counts); i += 2 {
		t += h.Counts[i]
	}
	return t
}

// mergeHists merges hs exactly.
func mergeHists(hs ...Hist) Hist {
	acc := newHDR()
	for _, h := range hs {
		acc.Merge(h.HDR())
	}
	return histFrom(acc)
}

// Summary is the percentile table of a histogram, in microseconds.
type Summary struct {
	Count  int64   `json:"count"`
	MinUS  int64   `json:"min_us"`
	MeanUS float64 `json:"mean_us"`
	P50US  int64   `json:"p50_us"`
	P75US  int64   `json:"p75_us"`
	P90US  int64   `json:"p90_us"`
	P99US  int64   `json:"p99_us"`
	P999US int64   `json:"p99_9_us"`
	P9999  int64   `json:"p99_99_us"`
	MaxUS  int64   `json:"max_us"`
}

// Summarize computes the percentile table of h.
func (h Hist) Summarize() Summary {
	return summarize(h.HDR())
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	return Summary{
		Count:  h.TotalCount(),
		MinUS:  h.Min(),
		MeanUS: math.Round(h.Mean()*10) / 10,
		P50US:  h.ValueAtQuantile(50),
		P75US:  h.ValueAtQuantile(75),
		P90US:  h.ValueAtQuantile(90),
		P99US:  h.ValueAtQuantile(99),
		P999US: h.ValueAtQuantile(99.9),
		P9999:  h.ValueAtQuantile(99.99),
		MaxUS:  h.Max(),
	}
}

// Rows returns the summary as (label, µs) rows in report order.
func (s Summary) Rows() []SummaryRow {
	return []SummaryRow{
		{"p50", 50, s.P50US}, {"p75", 75, s.P75US}, {"p90", 90, s.P90US},
		{"p99", 99, s.P99US}, {"p99.9", 99.9, s.P999US}, {"p99.99", 99.99, s.P9999},
		{"max", 100, s.MaxUS},
	}
}

// SummaryRow is one line of the percentile table.
type SummaryRow struct {
	Label      string
	Percentile float64
	US         int64
}

// spectrumPoint is one point of the percentile distribution chart.
type spectrumPoint struct {
	Percentile float64 `json:"p"`
	US         int64   `json:"us"`
}

// spectrum returns latency at percentiles 0, 29.3, 50, 64.6, 75, ...
// (halving the distance to 100 every two steps, as HdrHistogram's plots do)
// up to the resolution of the sample count, then the max.
func (h Hist) spectrum() []spectrumPoint {
	hh := h.HDR()
	n := hh.TotalCount()
	if n == 0 {
		return nil
	}
	var pts []spectrumPoint
	for k := 0; k <= 60; k++ {
		tail := 100 / math.Pow(2, float64(k)/2) // percent of samples above
		if tail < 100/float64(n) {
			break
		}
		q := 100 - tail
		pts = append(pts, spectrumPoint{Percentile: q, US: hh.ValueAtQuantile(q)})
	}
	return append(pts, spectrumPoint{Percentile: 100, US: hh.Max()})
}
