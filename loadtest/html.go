package loadtest

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
)

//go:embed report.html.tmpl
var reportHTML string

var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// htmlPoint is one second of the series as the page's script reads it.
type htmlPoint struct {
	T        float64 `json:"t"`
	Dur      float64 `json:"dur"`
	RPS      float64 `json:"rps"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50      int64   `json:"p50"`
	P99      int64   `json:"p99"`
	Max      int64   `json:"max"`
}

type htmlData struct {
	Series   []htmlPoint     `json:"series"`
	Spectrum []spectrumPoint `json:"spectrum"`
	Service  []spectrumPoint `json:"service"`
	Count    int64           `json:"count"`
}

type htmlRow struct{ Label, Value string }

// WriteHTML writes a self-contained HTML report (inline CSS and script, no
// external resources) with latency-over-time, throughput-over-time and
// percentile-distribution charts. The charts are SVG drawn by the inline
// script: one p99 point per second of the series.
func (r *Result) WriteHTML(w io.Writer) error {
	r.finalize()
	d := htmlData{Spectrum: r.Latency.spectrum(), Count: r.Requests, Series: []htmlPoint{}}
	for _, s := range r.Series {
		d.Series = append(d.Series, htmlPoint{T: s.T, Dur: s.DurS, RPS: s.Throughput, Requests: s.Requests,
			Errors: s.Errors, P50: s.P50US, P99: s.P99US, Max: s.MaxUS})
	}
	var service []string
	if r.Service != nil {
		d.Service = r.Service.spectrum()
		for _, row := range r.ServiceSum.Rows() {
			service = append(service, fmtUS(row.US))
		}
	}
	var rows []htmlRow
	for _, row := range r.Summary.Rows() {
		rows = append(rows, htmlRow{row.Label, fmtUS(row.US)})
	}
	model := fmt.Sprintf("closed loop, %d connections", r.Connections)
	if r.Model == "open" {
		model = fmt.Sprintf("open model at %.0f req/s, %d connections, latency from intended send time", r.Rate, r.Connections)
	}
	err := reportTmpl.Execute(w, map[string]any{"R": r, "Data": d, "Rows": rows, "Service": service, "Model": model})
	if err != nil {
		return fmt.Errorf("loadtest: write html: %w", err)
	}
	return nil
}
