package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"
)

// This file holds what the adapters (tiers/s3, tiers/gcs, tiers/azure) share beyond
// their SDKs: reading a response body, turning a backend's answer into a sentinel,
// building a Config from a storage URL and validating it.

// ReadAll reads and closes body, preallocating size bytes when known (size <= 0: not
// known). Adapters read every response body with it, so that a Get of a large object
// allocates its buffer once.
func ReadAll(body io.ReadCloser, size int64) ([]byte, error) {
	defer body.Close()
	if size <= 0 {
		return io.ReadAll(body)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	_, err := buf.ReadFrom(body)
	return buf.Bytes(), err
}

// StatusSentinel returns the sentinel that an HTTP status means on every backend, or nil
// if the status has none: 412 is ErrPreconditionFailed, 401 and 403 ErrAccessDenied,
// 429, 5xx and 0 (no HTTP response at all: connection refused, DNS, TLS, timeouts)
// ErrUnavailable. 404 is left to the adapters: whether it means a missing object or a
// missing bucket depends on the backend's error code.
func StatusSentinel(status int) error {
	switch {
	case status == http.StatusPreconditionFailed:
		return ErrPreconditionFailed
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrAccessDenied
	case status == http.StatusTooManyRequests || status >= 500 || status == 0:
		return ErrUnavailable
	}
	return nil
}

// Classify wraps err, a backend's error, with sentinel, the one the adapter found for it
// (usually from its error code, else StatusSentinel), so that callers can test it with
// errors.Is. If ctx is done its error is wrapped instead: a cancelled call is not an
// outage of the backend. A nil sentinel returns err as it is.
func Classify(ctx context.Context, err, sentinel error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// URLParam is one storage URL parameter that an adapter's ConfigFromURL accepts: its
// name and how to store its value in the adapter's Config.
type URLParam struct {
	Name string
	Set  func(value string) error
}

// StringParam is the URLParam name that sets *p to its value.
func StringParam(name string, p *string) URLParam {
	return URLParam{Name: name, Set: func(v string) error { *p = v; return nil }}
}

// BoolParam is the URLParam name that sets *p to its value, parsed by strconv.ParseBool.
func BoolParam(name string, p *bool) URLParam {
	return URLParam{Name: name, Set: func(v string) (err error) { *p, err = strconv.ParseBool(v); return err }}
}

// IntParam is the URLParam name that sets *p to its value, parsed by strconv.Atoi.
func IntParam(name string, p *int) URLParam {
	return URLParam{Name: name, Set: func(v string) (err error) { *p, err = strconv.Atoi(v); return err }}
}

// URLConfig is what ConfigFromURL needs of an adapter's Config.
type URLConfig interface {
	EnsureDefaults()
	Validate() error
}

// ConfigFromURL is the common part of the adapters' ConfigFromURL functions, so that
// all of them treat a storage URL alike: it checks that loc has the adapter's scheme,
// sets the params present in loc.Params (any other parameter is an error), then fills
// in cfg's defaults and validates it. cfg is the adapter's Config with the bucket and
// prefix of loc already set, and the params store into it. adapter prefixes the errors
// ("s3"); Validate's errors are returned as they are.
func ConfigFromURL(loc Location, adapter, scheme string, cfg URLConfig, params ...URLParam) error {
	if loc.Scheme != scheme {
		return fmt.Errorf("%s: storage URL scheme %q is not %s: %w", adapter, loc.Scheme, scheme, ErrInvalidArgument)
	}
	names := make([]string, len(params))
	set := make(map[string]func(string) error, len(params))
	for i, p := range params {
		names[i] = p.Name
		set[p.Name] = p.Set
	}
	if err := loc.TakeParams(func(k, v string) error { return set[k](v) }, names...); err != nil {
		return fmt.Errorf("%s: %w", adapter, err)
	}
	cfg.EnsureDefaults()
	return cfg.Validate()
}

// ConfigProblems collects what is wrong with an adapter's Config, so that its Validate
// reports every problem at once, and checks the fields all adapters' Configs share.
type ConfigProblems []error

// Add records one problem, formatted as by fmt.Errorf.
func (p *ConfigProblems) Add(format string, args ...any) {
	*p = append(*p, fmt.Errorf(format, args...))
}

// Prefix checks a Config.Prefix: valid UTF-8 of at most 512 bytes (ParseURL's limit).
func (p *ConfigProblems) Prefix(prefix string) {
	if !utf8.ValidString(prefix) || len(prefix) > 512 {
		p.Add("Prefix (%q) must be valid UTF-8 of at most 512 bytes", prefix)
	}
}

// Endpoint checks a Config.Endpoint: empty (the service's own) or an http:// or https://
// URL with a host.
func (p *ConfigProblems) Endpoint(endpoint string) {
	if endpoint == "" {
		return
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add("Endpoint (%q) must be an http:// or https:// URL with a host", endpoint)
	}
}

// Err returns nil without problems, else all of them as the error of adapter's
// Validate ("s3: invalid config: ...").
func (p ConfigProblems) Err(adapter string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s: invalid config: %w", adapter, errors.Join(p...))
}
