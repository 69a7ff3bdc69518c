package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// FreshnessConfig describes a freshness measurement: how long after a write
// is acknowledged by one server another server (a cache in front of it, or
// an edge) first answers with the written value. Zero means default:
// EnsureDefaults fills zero fields in and Validate checks the result.
type FreshnessConfig struct {
	// WriteURL is the base URL writes go to, e.g. the core
	// "http://127.0.0.1:7070". Required.
	WriteURL string

	// ReadURL is the base URL polled for the written value, e.g. the edge
	// "http://127.0.0.1:8080". Required; may equal WriteURL.
	ReadURL string

	// Writes is the number of measured writes. Default 1000.
	Writes int

	// Timeout bounds the wait for one write to become visible at ReadURL;
	// a write still not visible then counts as timed out and the next write
	// follows. Default 2s. It bounds the whole run to about
	// Writes × (Timeout + write latency).
	Timeout time.Duration

	// PollInterval is the pause between two reads of the same write. Default
	// 100µs: the measurement's resolution is about one read's latency plus
	// this. A negative value polls back to back.
	PollInterval time.Duration

	// RequestTimeout bounds one request (write or read). Default 5s.
	RequestTimeout time.Duration

	// ItemID is the id of the item written and read. Default
	// "freshness-probe".
	ItemID string

	// ItemType is the item's type. Default "bench".
	ItemType string

	// Tenant, if set, is sent as X-Brainy-Tenant.
	Tenant string

	// Headers are extra "Name: value" headers sent with every request.
	Headers []string

	// AllowRemote permits URLs that are not loopback. Default false.
	AllowRemote bool

	// Logger receives run events; nil discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills in zero fields.
func (c *FreshnessConfig) EnsureDefaults() {
	if c.Writes == 0 {
		c.Writes = 1000
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Microsecond
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.ItemID == "" {
		c.ItemID = "freshness-probe"
	}
	if c.ItemType == "" {
		c.ItemType = "bench"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks every field and reports all problems at once. It does not
// change c.
func (c *FreshnessConfig) Validate() error {
	var errs []error
	for _, u := range []struct{ name, v string }{{"WriteURL", c.WriteURL}, {"ReadURL", c.ReadURL}} {
		if err := c.checkURL(u.name, u.v); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Writes < 1 {
		errs = append(errs, fmt.Errorf("loadtest: Writes (%d) must be >= 1", c.Writes))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("loadtest: Timeout (%v) must be > 0", c.Timeout))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("loadtest: RequestTimeout (%v) must be > 0", c.RequestTimeout))
	}
	if c.ItemID == "" || strings.ContainsAny(c.ItemID, "/?#% ") {
		errs = append(errs, fmt.Errorf("loadtest: ItemID %q must be non-empty without '/', '?', '#', '%%' or spaces", c.ItemID))
	}
	for _, h := range c.Headers {
		if _, _, err := parseHeader(h); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *FreshnessConfig) checkURL(name, v string) error {
	if v == "" {
		return fmt.Errorf("loadtest: %s is required", name)
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadtest: %s %q must be an http(s) base URL", name, v)
	}
	if !c.AllowRemote && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("loadtest: %s host %q is not loopback (127.0.0.0/8, ::1, localhost); set AllowRemote (--allow-remote) to use a remote host", name, u.Hostname())
	}
	return nil
}

// FreshnessResult is the outcome of MeasureFreshness.
type FreshnessResult struct {
	WriteURL string `json:"write_url"`
	ReadURL  string `json:"read_url"`
	// Writes is the number of acknowledged, measured writes.
	Writes int `json:"writes"`
	// Fresh counts writes seen at ReadURL within Timeout; TimedOut the rest.
	Fresh    int `json:"fresh"`
	TimedOut int `json:"timed_out"`
	// Reads counts every read sent; ReadErrors those that failed or were
	// not 2xx (the poll goes on after them).
	Reads      int64 `json:"reads"`
	ReadErrors int64 `json:"read_errors"`
	// TimeoutMS is the configured Timeout in milliseconds.
	TimeoutMS float64 `json:"timeout_ms"`
	// Lag holds, for every fresh write, the time from the write's
	// acknowledgement (its response received) to the arrival of the first
	// read answer carrying the written value.
	Lag     Hist    `json:"lag"`
	Summary Summary `json:"summary"`
	// Interrupted is true when the context ended the run early.
	Interrupted bool `json:"interrupted,omitempty"`
}

// freshnessBody is what the probe writes: {"type":T,"data":{"seq":N}}.
type freshnessBody struct {
	Type string `json:"type"`
	Data struct {
		Seq int64 `json:"seq"`
	} `json:"data"`
}

// MeasureFreshness writes the item ItemID Writes times through one HTTP
// client (to WriteURL), each time with a new counter in its data, and after
// each acknowledged write polls ReadURL through a second client (its own
// connections) until the answer carries that counter or Timeout passes. It
// runs one write at a time, on the calling goroutine. A failed or non-2xx
// write ends the run with an error.
func MeasureFreshness(ctx context.Context, cfg FreshnessConfig) (*FreshnessResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &prober{
		cfg:    &cfg,
		writer: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: cfg.RequestTimeout},
		reader: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: cfg.RequestTimeout},
		wURL:   strings.TrimSuffix(cfg.WriteURL, "/") + "/v1/items/" + cfg.ItemID,
		rURL:   strings.TrimSuffix(cfg.ReadURL, "/") + "/v1/items/" + cfg.ItemID,
	}
	defer p.writer.CloseIdleConnections()
	defer p.reader.CloseIdleConnections()
	res := &FreshnessResult{WriteURL: cfg.WriteURL, ReadURL: cfg.ReadURL, TimeoutMS: float64(cfg.Timeout) / 1e6}
	h := newHDR()

	// Seq 0 creates the item and lets the reader see it once, so that the
	// measured writes replace a value the read side already knows (a cache
	// holds it) rather than create one.
	base := time.Now().UnixNano()
	if _, err := p.write(ctx, base); err != nil {
		return nil, err
	}
	if _, ok := p.poll(ctx, base, res); !ok && ctx.Err() == nil {
		cfg.Logger.Warn("freshness: the initial write did not become visible", "timeout", cfg.Timeout)
	}
	for i := 1; i <= cfg.Writes; i++ {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		seq := base + int64(i)
		acked, err := p.write(ctx, seq)
		if err != nil {
			if ctx.Err() != nil {
				res.Interrupted = true
				break
			}
			return nil, err
		}
		res.Writes++
		seenAt, ok := p.poll(ctx, seq, res)
		switch {
		case ok:
			res.Fresh++
			recordUS(h, seenAt.Sub(acked))
		case ctx.Err() != nil:
			res.Writes--
			res.Interrupted = true
		default:
			res.TimedOut++
		}
	}
	res.Lag = histFrom(h)
	res.Summary = summarize(h)
	cfg.Logger.Info("freshness done", "writes", res.Writes, "fresh", res.Fresh, "timed_out", res.TimedOut,
		"p50_us", res.Summary.P50US, "p99_us", res.Summary.P99US, "max_us", res.Summary.MaxUS)
	return res, nil
}

type prober struct {
	cfg            *FreshnessConfig
	writer, reader *http.Client
	wURL, rURL     string
}

func (p *prober) header(r *http.Request) {
	if p.cfg.Tenant != "" {
		r.Header.Set("X-Brainy-Tenant", p.cfg.Tenant)
	}
	for _, h := range p.cfg.Headers {
		name, value, _ := parseHeader(h) // checked by Validate
		r.Header.Set(name, value)
	}
}

// write PUTs the item with counter seq and returns when the answer arrived.
func (p *prober) write(ctx context.Context, seq int64) (time.Time, error) {
	var b freshnessBody
	b.Type = p.cfg.ItemType
	b.Data.Seq = seq
	body, _ := json.Marshal(b) // cannot fail
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.wURL, bytes.NewReader(body))
	if err != nil {
		return time.Time{}, fmt.Errorf("loadtest: freshness write: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	p.header(req)
	resp, err := p.writer.Do(req)
	if err != nil {
		return time.Time{}, fmt.Errorf("loadtest: freshness write: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	acked := time.Now()
	if resp.StatusCode/100 != 2 {
		return time.Time{}, fmt.Errorf("loadtest: freshness write: PUT %s: %s: %s", p.wURL, resp.Status, bytes.TrimSpace(msg))
	}
	return acked, nil
}

// poll reads until the answer carries seq; it returns when that answer
// arrived, or false after Timeout or when ctx ends.
func (p *prober) poll(ctx context.Context, seq int64, res *FreshnessResult) (time.Time, bool) {
	deadline := time.Now().Add(p.cfg.Timeout)
	want := []byte(`"seq":` + strconv.FormatInt(seq, 10))
	var buf bytes.Buffer
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.rURL, nil)
		if err != nil {
			return time.Time{}, false
		}
		p.header(req)
		res.Reads++
		resp, err := p.reader.Do(req)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			now := time.Now()
			if err == nil && resp.StatusCode/100 == 2 {
				if hasSeq(buf.Bytes(), want) {
					return now, true
				}
			} else {
				res.ReadErrors++
				if res.ReadErrors <= 3 {
					p.cfg.Logger.Warn("freshness read failed", "url", p.rURL, "status", resp.StatusCode, "err", err)
				}
			}
		} else if ctx.Err() == nil {
			res.ReadErrors++
			if res.ReadErrors <= 3 {
				p.cfg.Logger.Warn("freshness read failed", "url", p.rURL, "err", err)
			}
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return time.Time{}, false
		}
		if p.cfg.PollInterval > 0 {
			time.Sleep(p.cfg.PollInterval)
		}
	}
}

// hasSeq reports whether body holds want ("seq":N) followed by a byte that
// does not continue the number. Servers answer compact JSON, as written.
func hasSeq(body, want []byte) bool {
	for {
		i := bytes.Index(body, want)
		if i < 0 {
			return false
		}
		body = body[i+len(want):]
		if len(body) == 0 || body[0] < '0' || body[0] > '9' {
			return true
		}
	}
}

// WriteText writes a human-readable summary, ending with one
// machine-readable "result" line of key=value pairs (milliseconds).
func (r *FreshnessResult) WriteText(w io.Writer) error {
	s := r.Summary
	ms := func(us int64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 3, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "freshness: write %s, read %s\n", r.WriteURL, r.ReadURL)
	fmt.Fprintf(&b, "  writes %d, fresh %d, timed out %d (timeout %s ms), reads %d, read errors %d\n",
		r.Writes, r.Fresh, r.TimedOut, strconv.FormatFloat(r.TimeoutMS, 'f', -1, 64), r.Reads, r.ReadErrors)
	if s.Count > 0 {
		fmt.Fprintf(&b, "  write acknowledged -> first fresh read, ms: min %s  p50 %s  p90 %s  p99 %s  max %s\n",
			ms(s.MinUS), ms(s.P50US), ms(s.P90US), ms(s.P99US), ms(s.MaxUS))
	}
	if r.Interrupted {
		b.WriteString("  interrupted\n")
	}
	fmt.Fprintf(&b, "result writes=%d fresh=%d timed_out=%d read_errors=%d p50_ms=%s p99_ms=%s max_ms=%s\n",
		r.Writes, r.Fresh, r.TimedOut, r.ReadErrors, ms(s.P50US), ms(s.P99US), ms(s.MaxUS))
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes r as indented JSON.
func (r *FreshnessResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
