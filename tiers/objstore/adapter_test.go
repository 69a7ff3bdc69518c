package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestReadAll(t *testing.T) {
	for _, size := range []int64{-1, 0, 3, 5, 100} {
		body := &closeCounter{Reader: strings.NewReader("hello")}
		got, err := objstore.ReadAll(body, size)
		if err != nil || string(got) != "hello" || body.closed != 1 {
			t.Fatalf("ReadAll(size %d) = %q, %v, closed %d times; want \"hello\", nil, once", size, got, err, body.closed)
		}
	}
}

func TestStatusSentinel(t *testing.T) {
	for status, want := range map[int]error{
		0: objstore.ErrUnavailable, 200: nil, 400: nil, 401: objstore.ErrAccessDenied,
		403: objstore.ErrAccessDenied, 404: nil, 409: nil, 412: objstore.ErrPreconditionFailed,
		416: nil, 429: objstore.ErrUnavailable, 500: objstore.ErrUnavailable, 503: objstore.ErrUnavailable,
	} {
		if got := objstore.StatusSentinel(status); got != want {
			t.Errorf("StatusSentinel(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	backend := errors.New("backend says no")
	ctx := context.Background()
	if err := objstore.Classify(ctx, backend, nil); err != backend {
		t.Fatalf("Classify without a sentinel = %v, want the error as it is", err)
	}
	err := objstore.Classify(ctx, backend, objstore.ErrNotFound)
	if !errors.Is(err, objstore.ErrNotFound) || !errors.Is(err, backend) {
		t.Fatalf("Classify = %v, want ErrNotFound wrapping the backend's error", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	err = objstore.Classify(done, backend, objstore.ErrUnavailable)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backend) || errors.Is(err, objstore.ErrUnavailable) {
		t.Fatalf("Classify with a cancelled context = %v, want context.Canceled wrapping the backend's error", err)
	}
}

// testConfig is a URLConfig that records what ConfigFromURL does to it.
type testConfig struct {
	Name     string
	Flag     bool
	N        int
	defaults bool
}

func (c *testConfig) EnsureDefaults() {
	c.defaults = true
	if c.N == 0 {
		c.N = 3
	}
}

func (c *testConfig) Validate() error {
	if c.N < 1 {
		return fmt.Errorf("test: invalid config: N (%d) must be >= 1", c.N)
	}
	return nil
}

func TestConfigFromURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want *testConfig // nil: want an error
	}{
		{"s3://bucket", &testConfig{N: 3, defaults: true}},
		{"s3://bucket?name=x&flag=true&n=7", &testConfig{Name: "x", Flag: true, N: 7, defaults: true}},
		{"s3://bucket?flag=maybe", nil},
		{"s3://bucket?n=x", nil},
		{"s3://bucket?n=-1", nil},    // Validate
		{"s3://bucket?other=1", nil}, // unknown parameter
		{"gs://bucket", nil},         // wrong scheme
	} {
		t.Run(c.url, func(t *testing.T) {
			loc, err := objstore.ParseURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			var got testConfig
			err = objstore.ConfigFromURL(loc, "test", "s3", &got,
				objstore.StringParam("name", &got.Name), objstore.BoolParam("flag", &got.Flag), objstore.IntParam("n", &got.N))
			if c.want == nil {
				if err == nil || !strings.HasPrefix(err.Error(), "test: ") {
					t.Fatalf("ConfigFromURL(%s) = %+v, %v; want an error starting with \"test: \"", c.url, got, err)
				}
				return
			}
			if err != nil || got != *c.want {
				t.Fatalf("ConfigFromURL(%s) = %+v, %v; want %+v", c.url, got, err, *c.want)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	var p objstore.ConfigProblems
	p.Prefix("node-1/")
	p.Endpoint("https://host:9000")
	p.Endpoint("")
	if err := p.Err("test"); err != nil {
		t.Fatalf("Err() = %v for a valid prefix and endpoint", err)
	}
	p.Add("N (%d) must be >= 1", -1)
	p.Prefix("\xff")
	p.Endpoint("host:9000")
	err := p.Err("test")
	if err == nil {
		t.Fatal("Err() = nil with three problems")
	}
	for _, want := range []string{"test: invalid config: ", "N (-1) must be >= 1", "Prefix", "Endpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err() = %q, want it to contain %q", err, want)
		}
	}
}
