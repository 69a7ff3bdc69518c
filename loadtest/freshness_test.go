package loadtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lagServer is an item server whose reads show a write only delay after
// the write was acknowledged; delay < 0 means never.
type lagServer struct {
	delay time.Duration

	mu      sync.Mutex
	old     []byte    // body served until visible
	cur     []byte    // last written body
	visible time.Time // when cur becomes visible
}

func (s *lagServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/items/") {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		switch {
		case s.cur == nil:
			s.old = b // the first write is visible at once
		case s.delay >= 0 && !time.Now().Before(s.visible):
			s.old = s.cur
		}
		s.cur = b
		s.visible = time.Now().Add(s.delay)
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		s.mu.Lock()
		b := s.old
		if s.delay >= 0 && !time.Now().Before(s.visible) {
			b = s.cur
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(bytes.Replace(b, []byte(`"type":"bench",`), []byte(`"id":"x","type":"bench",`), 1))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func TestMeasureFreshnessDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := httptest.NewServer(&lagServer{delay: delay})
	defer srv.Close()
	res, err := MeasureFreshness(context.Background(), FreshnessConfig{
		WriteURL: srv.URL, ReadURL: srv.URL, Writes: 40, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 40 || res.Fresh != 40 || res.TimedOut != 0 || res.ReadErrors != 0 {
		t.Fatalf("writes %d fresh %d timed out %d read errors %d, want 40 40 0 0", res.Writes, res.Fresh, res.TimedOut, res.ReadErrors)
	}
	if got := res.Lag.Total(); got != 40 {
		t.Fatalf("histogram holds %d values, want 40", got)
	}
	// The server shows a write delay after it sends the acknowledgement,
	// which reaches the client a little later, so a lag may fall short of
	// delay by the acknowledgement's delivery time; the poll interval,
	// scheduling and a busy machine add time. The bounds are loose; the
	// median stays near delay.
	min, p50 := time.Duration(res.Summary.MinUS)*time.Microsecond, time.Duration(res.Summary.P50US)*time.Microsecond
	if min < delay/2 {
		t.Errorf("min lag %v, want >= about %v", min, delay)
	}
	if p50 < delay*3/4 || p50 > delay+60*time.Millisecond {
		t.Errorf("median lag %v, want near %v", p50, delay)
	}
	var b strings.Builder
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "result writes=40 fresh=40 timed_out=0 read_errors=0 p50_ms=") {
		t.Errorf("text output lacks the result line:\n%s", b.String())
	}
}

func TestMeasureFreshnessNeverFresh(t *testing.T) {
	srv := httptest.NewServer(&lagServer{delay: -1})
	defer srv.Close()
	start := time.Now()
	res, err := MeasureFreshness(context.Background(), FreshnessConfig{
		WriteURL: srv.URL, ReadURL: srv.URL, Writes: 3, Timeout: 30 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 3 || res.Fresh != 0 || res.TimedOut != 3 || res.Lag.Total() != 0 {
		t.Fatalf("writes %d fresh %d timed out %d histogram %d, want 3 0 3 0", res.Writes, res.Fresh, res.TimedOut, res.Lag.Total())
	}
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Errorf("run took %v; each of 3 writes should have waited its 30ms timeout", el)
	}
}

func TestMeasureFreshnessWriteError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := MeasureFreshness(context.Background(), FreshnessConfig{WriteURL: srv.URL, ReadURL: srv.URL, Writes: 1})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want a 503 write error", err)
	}
}

func TestFreshnessConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*FreshnessConfig)
		want string
	}{
		{"ok", func(*FreshnessConfig) {}, ""},
		{"remote refused", func(c *FreshnessConfig) { c.ReadURL = "http://192.0.2.1:80" }, "not loopback"},
		{"remote allowed", func(c *FreshnessConfig) { c.ReadURL = "http://192.0.2.1:80"; c.AllowRemote = true }, ""},
		{"no write url", func(c *FreshnessConfig) { c.WriteURL = "" }, "WriteURL is required"},
		{"bad writes", func(c *FreshnessConfig) { c.Writes = -1 }, "Writes (-1)"},
		{"bad id", func(c *FreshnessConfig) { c.ItemID = "a/b" }, "ItemID"},
		{"bad header", func(c *FreshnessConfig) { c.Headers = []string{"nocolon"} }, "Name: value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := FreshnessConfig{WriteURL: "http://127.0.0.1:1", ReadURL: "http://[::1]:2"}
			tc.mod(&c)
			c.EnsureDefaults()
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHasSeq(t *testing.T) {
	for _, tc := range []struct {
		body string
		seq  string
		want bool
	}{
		{`{"data":{"seq":12}}`, `"seq":12`, true},
		{`{"data":{"seq":123}}`, `"seq":12`, false},
		{`{"data":{"seq":123,"x":{"seq":12}}}`, `"seq":12`, true},
		{`{"data":{}}`, `"seq":1`, false},
	} {
		if got := hasSeq([]byte(tc.body), []byte(tc.seq)); got != tc.want {
			t.Errorf("hasSeq(%s, %s) = %v, want %v", tc.body, tc.seq, got, tc.want)
		}
	}
}
