package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Workload names for Config.Workload.
const (
	// WorkloadURL sends Config.Method to Config.Target, a URL or URL template
	// (see ParseTemplate).
	WorkloadURL = "url"
	// WorkloadItems drives Brainy's item API under Config.Target (a base URL):
	// GET and PUT /v1/items/{id} and POST /v1/items in the ratio of Config.Mix.
	WorkloadItems = "items"
)

// Config describes one load test run. Zero means default: EnsureDefaults fills
// zero fields in and Validate checks the result without changing it.
type Config struct {
	// Target is the URL to load. For WorkloadURL it may be a template with
	// {key}, {seq} and {worker} placeholders in the path and query, e.g.
	// "http://127.0.0.1:8080/v1/items/k{key}". For WorkloadItems it is the
	// server's base URL, e.g. "http://127.0.0.1:8080". Required.
	Target string

	// Workload is WorkloadURL (default) or WorkloadItems.
	Workload string

	// Method is the HTTP method of WorkloadURL requests. Default "GET".
	// A method other than GET and HEAD sends a generated JSON body of
	// BodySize bytes.
	Method string

	// Connections is the number of connections, one per worker goroutine.
	// Default 16. More connections reach more throughput in the closed loop;
	// in the open model they bound how many requests can be in flight, so
	// give it at least Rate × expected latency.
	Connections int

	// Rate selects the model. 0 (default) is the closed loop: every
	// connection sends as fast as answers come back. A positive Rate is the
	// open model at Rate requests per second, with latency measured from each
	// request's intended send time.
	Rate float64

	// Duration bounds the run, warm-up included. Default 10s, or unlimited
	// when Requests is set; a negative value means unlimited (Requests must
	// then be set).
	Duration time.Duration

	// Requests bounds the number of requests sent, warm-up included.
	// Default 0: unlimited (Duration bounds the run).
	Requests int64

	// Warmup is excluded from the results: responses that complete in the
	// first Warmup of the run are not recorded. Default 0.
	Warmup time.Duration

	// Timeout is the per-request read and write timeout. Default 5s. A
	// request that times out counts as a transport error "timeout".
	Timeout time.Duration

	// LateAfter is how far behind its intended send time a request may be
	// sent before it counts as late (open model only). Default 1ms.
	LateAfter time.Duration

	// Mix is the WorkloadItems operation mix, "read=90,write=10" (default);
	// see ParseMix.
	Mix string

	// Keys is the size of the key space. Default 10000.
	Keys int

	// KeyDist is the key distribution: "uniform" (default), "zipf[:theta]",
	// "sequential" or "hot"; see ParseKeyDist.
	KeyDist string

	// KeyPrefix is prepended to the key number to form item ids in
	// WorkloadItems. Default "lt-".
	KeyPrefix string

	// BodySize is the size in bytes of each generated JSON body. Default 256;
	// the minimum is the size of the JSON envelope (about 40 bytes).
	BodySize int

	// MetadataFields, when positive, gives generated items that many
	// top-level metadata fields (strings, numbers, booleans and an array,
	// taking turns), whose values differ between the generated bodies:
	// what a store's metadata indexes cost on writes. At most 64.
	MetadataFields int

	// ItemType is the "type" of generated items. Default "loadtest".
	ItemType string

	// Tenant, when set, is sent as the X-Brainy-Tenant header.
	Tenant string

	// APIKey, when set, is sent as "Authorization: Bearer APIKey".
	APIKey string

	// Headers are extra "Name: value" request headers.
	Headers []string

	// Preload writes every key once (PUT, closed loop, not measured) before
	// the run, so that reads find their items. WorkloadItems only.
	Preload bool

	// AllowRemote permits a target that is not loopback. Default false: a
	// load test pointed at the wrong host is an attack.
	AllowRemote bool

	// Seed seeds the key and mix generators; worker i uses Seed+i.
	// Default 1, so runs are reproducible.
	Seed uint64

	// Label names the run in reports. Default: Target.
	Label string

	// Progress, when set, is called once per second from the collector
	// goroutine with a snapshot of the run so far. It must not block for
	// long; it is never called concurrently with itself.
	Progress func(Progress)

	// Logger receives run events (start, preload, stop). Nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns the profile for an operator's run against target:
// 16 connections, closed loop, 10 s.
func DefaultConfig(target string) Config {
	c := Config{Target: target}
	c.EnsureDefaults()
	return c
}

// LocalConfig returns a profile for tests: 4 connections, 2 s, a short
// timeout and a small key space.
func LocalConfig(target string) Config {
	c := DefaultConfig(target)
	c.Connections = 4 // few goroutines on a small test machine
	c.Duration = 2 * time.Second
	c.Timeout = 2 * time.Second // fail fast when a test server is gone
	c.Keys = 1000
	return c
}

// EnsureDefaults fills in zero fields with their documented defaults.
func (c *Config) EnsureDefaults() {
	if c.Workload == "" {
		c.Workload = WorkloadURL
	}
	if c.Method == "" {
		c.Method = "GET"
	}
	if c.Connections == 0 {
		c.Connections = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
		if c.Requests > 0 {
			c.Duration = -1 // unlimited: the request count bounds the run
		}
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.LateAfter == 0 {
		c.LateAfter = time.Millisecond
	}
	if c.Mix == "" {
		c.Mix = "read=90,write=10"
	}
	if c.Keys == 0 {
		c.Keys = 10000
	}
	if c.KeyDist == "" {
		c.KeyDist = "uniform"
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "lt-"
	}
	if c.BodySize == 0 {
		c.BodySize = 256
	}
	if c.ItemType == "" {
		c.ItemType = "loadtest"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Label == "" {
		c.Label = c.Target
	}
}

// maxConnections bounds Connections: each is a goroutine and a socket.
const maxConnections = 100000

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("loadtest: "+format, args...))
	}
	if c.Target == "" {
		bad("Target is required")
	} else if err := c.checkTarget(); err != nil {
		errs = append(errs, err)
	}
	switch c.Workload {
	case WorkloadURL, WorkloadItems:
	default:
		bad("Workload (%q) must be %q or %q", c.Workload, WorkloadURL, WorkloadItems)
	}
	if c.Method == "" || strings.ContainsAny(c.Method, " \t\r\n") {
		bad("Method (%q) must be a single token", c.Method)
	}
	if c.Connections < 1 || c.Connections > maxConnections {
		bad("Connections (%d) must be in [1, %d]", c.Connections, maxConnections)
	}
	if c.Rate < 0 || c.Rate != c.Rate || c.Rate > 1e8 {
		bad("Rate (%v) must be in [0, 1e8] requests/s", c.Rate)
	}
	if c.Duration == 0 {
		bad("Duration must be set (or negative for unlimited)")
	}
	if c.Duration < 0 && c.Requests <= 0 {
		bad("Duration (%v) is unlimited, so Requests (%d) must be > 0", c.Duration, c.Requests)
	}
	if c.Requests < 0 {
		bad("Requests (%d) must be >= 0", c.Requests)
	}
	if c.Warmup < 0 {
		bad("Warmup (%v) must be >= 0", c.Warmup)
	}
	if c.Duration > 0 && c.Warmup >= c.Duration {
		bad("Warmup (%v) must be shorter than Duration (%v)", c.Warmup, c.Duration)
	}
	if c.Timeout <= 0 {
		bad("Timeout (%v) must be > 0", c.Timeout)
	}
	if c.LateAfter <= 0 {
		bad("LateAfter (%v) must be > 0", c.LateAfter)
	}
	if _, err := ParseMix(c.Mix); err != nil {
		errs = append(errs, err)
	}
	if c.Keys < 1 {
		bad("Keys (%d) must be >= 1", c.Keys)
	}
	if _, err := ParseKeyDist(c.KeyDist); err != nil {
		errs = append(errs, err)
	}
	if c.BodySize < 0 || c.BodySize > 64<<20 {
		bad("BodySize (%d) must be in [0, 64MiB]", c.BodySize)
	}
	if c.MetadataFields < 0 || c.MetadataFields > 64 {
		bad("MetadataFields (%d) must be in [0, 64]", c.MetadataFields)
	}
	if strings.ContainsAny(c.KeyPrefix, "/?#% ") {
		bad("KeyPrefix (%q) must not contain '/', '?', '#', '%%' or spaces", c.KeyPrefix)
	}
	for _, h := range c.Headers {
		if _, _, err := parseHeader(h); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Preload && c.Workload != WorkloadItems {
		bad("Preload needs Workload %q", WorkloadItems)
	}
	if c.Workload == WorkloadURL {
		if _, err := ParseTemplate(c.Target); err != nil && c.Target != "" {
			// checkTarget already reported a malformed URL; report template errors only.
			if !errors.Is(err, errBadURL) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// parseHeader splits "Name: value".
func parseHeader(h string) (name, value string, err error) {
	name, value, ok := strings.Cut(h, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
		return "", "", fmt.Errorf("loadtest: header %q must be \"Name: value\"", h)
	}
	return name, strings.TrimSpace(value), nil
}
