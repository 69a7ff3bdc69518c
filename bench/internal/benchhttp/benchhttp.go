// Package benchhttp holds what the benchmark drivers under bench/ share to
// talk to the servers they start: one request with its own timeout, and
// polling until a condition holds.
package benchhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Do makes one request through c with its own timeout and returns the
// status and body. A non-nil body is sent as JSON.
func Do(ctx context.Context, c *http.Client, method, url string, body []byte, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// WaitFor polls cond every 100 ms until it holds, the timeout passes, or
// ctx ends; the error names the last reason cond gave. When ctx ends, the
// error wraps stopped, or ctx's error if stopped is nil.
func WaitFor(ctx context.Context, timeout time.Duration, stopped error, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached after %v: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			if stopped == nil {
				stopped = ctx.Err()
			}
			return fmt.Errorf("%w: %s", stopped, why)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
