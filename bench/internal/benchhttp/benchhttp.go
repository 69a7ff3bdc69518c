// Package benchhttp holds what the benchmark drivers under bench/ share to
// talk to the servers they start: one request with its own timeout, and
// polling until a condition holds.
package benchhttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client makes a driver's own requests to the servers it starts (not its
// loads) and polls them.
type Client struct {
	// HTTP sends the requests.
	HTTP *http.Client
	// Stopped is what a wait cut short by its context wraps (nil: the
	// context's error).
	Stopped error
}

// NewClient returns a Client whose transport keeps up to 256 idle
// connections per host (enough for paced loads) and gives up connecting
// after a second; its waits wrap stopped.
func NewClient(stopped error) *Client {
	return &Client{
		HTTP: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 256,
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		}},
		Stopped: stopped,
	}
}

// Do makes one request with its own timeout (see the function Do).
func (c *Client) Do(ctx context.Context, method, url string, body []byte, timeout time.Duration) (int, []byte, error) {
	return Do(ctx, c.HTTP, method, url, body, timeout)
}

// WaitFor polls cond until it holds (see the function WaitFor), wrapping
// c.Stopped when ctx ends.
func (c *Client) WaitFor(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	return WaitFor(ctx, timeout, c.Stopped, cond)
}

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
