package loadtest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMergeHistogramsNotPercentiles checks that merged percentiles equal
// those of one histogram holding every value, which averaging percentiles
// would not give.
func TestMergeHistogramsNotPercentiles(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a, b, all := newHDR(), newHDR(), newHDR()
	for range 10000 {
		v := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		recordUS(a, v)
		recordUS(all, v)
	}
	for range 1000 {
		v := time.Duration(50+r.IntN(50)) * time.Millisecond // a slow generator
		recordUS(b, v)
		recordUS(all, v)
	}
	ra := &Result{Format: ResultFormat, Model: "closed", Requests: a.TotalCount(), Latency: histFrom(a), MeasuredS: 1, Connections: 2, Sources: 1}
	rb := &Result{Format: ResultFormat, Model: "closed", Requests: b.TotalCount(), Latency: histFrom(b), MeasuredS: 1, Connections: 3, Sources: 1}
	m, err := Merge(ra, rb)
	if err != nil {
		t.Fatal(err)
	}
	if want := summarize(all); m.Summary != want {
		t.Errorf("merged summary %+v, want %+v", m.Summary, want)
	}
	if m.Requests != 11000 || m.Connections != 5 || m.Sources != 2 || m.Throughput != 11000 {
		t.Errorf("merged counts: %+v", m)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "7") {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := LocalConfig(srv.URL + "/k{key}")
	cfg.Keys = 10
	cfg.Rate = 500
	cfg.Duration = 1200 * time.Millisecond
	r := run(t, cfg)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := DecodeResult(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	// Started loses its monotonic reading in JSON; compare the rest.
	back.Started, r.Started = time.Time{}, time.Time{}
	if !reflect.DeepEqual(back, r) {
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(back)
		t.Errorf("round trip differs:\n%s\n%s", a, b)
	}
	if r.Status[418] == 0 || r.Errors != r.Status[418] {
		t.Errorf("status %v errors %d", r.Status, r.Errors)
	}
}

// TestMergeEqualsOneRun runs two generators at once against one server and
// checks that the merged result counts exactly what the server saw.
func TestMergeEqualsOneRun(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	results := make([]*Result, 2)
	done := make(chan int)
	for i := range results {
		go func() {
			cfg := LocalConfig(srv.URL)
			cfg.Duration = -1
			cfg.Requests = 700 + int64(i)*300
			cfg.Connections = 2
			r, err := Run(t.Context(), cfg)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
			done <- i
		}()
	}
	<-done
	<-done
	if t.Failed() {
		return
	}
	// Through JSON, as the merge subcommand does.
	var files []*Result
	for _, r := range results {
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeResult(&buf)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, back)
	}
	m, err := Merge(files...)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != hits.Load() || m.Requests != 1700 || m.Latency.Total() != 1700 || m.Status[200] != 1700 {
		t.Errorf("merged %d requests (hist %d, status %v), server saw %d, want 1700", m.Requests, m.Latency.Total(), m.Status, hits.Load())
	}
	var inSeries int64
	for _, s := range m.Series {
		inSeries += s.Requests
		if s.Latency.Total() != s.Requests {
			t.Errorf("series point t=%v: hist %d != requests %d", s.T, s.Latency.Total(), s.Requests)
		}
	}
	if inSeries != 1700 {
		t.Errorf("series holds %d requests, want 1700", inSeries)
	}
	if _, err := Merge(results[0], &Result{Model: "open"}); err == nil {
		t.Errorf("merging open and closed results succeeded")
	}
}

func TestDecodeResultRejects(t *testing.T) {
	good := `{"format":"brainy-loadtest/1","model":"closed","requests":2,"latency":{"unit":"us","sig_figs":3,"counts":[5,1,9,1]}}`
	if _, err := DecodeResult(strings.NewReader(good)); err != nil {
		t.Fatalf("good result rejected: %v", err)
	}
	for name, bad := range map[string]string{
		"format":   strings.Replace(good, "/1", "/9", 1),
		"count":    strings.Replace(good, `"requests":2`, `"requests":3`, 1),
		"order":    strings.Replace(good, "[5,1,9,1]", "[9,1,5,1]", 1),
		"negative": strings.Replace(good, "[5,1,9,1]", "[5,-1,9,3]", 1),
		"odd":      strings.Replace(good, "[5,1,9,1]", "[5,1,9]", 1),
		"unit":     strings.Replace(good, `"us"`, `"ms"`, 1),
		"model":    strings.Replace(good, "closed", "half-open", 1),
		"huge":     strings.Replace(good, "[5,1,9,1]", "[5,1,99999999999999,1]", 1),
		"syntax":   good[:40],
	} {
		if _, err := DecodeResult(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"format":"brainy-loadtest/1","model":"closed","requests":2,"latency":{"unit":"us","sig_figs":3,"counts":[5,1,9,1]},"series":[{"t":0,"dur_s":1,"requests":2,"latency":{"unit":"us","sig_figs":3,"counts":[5,2]}}]}`))
	f.Add([]byte(`{"format":"brainy-loadtest/1","model":"open","status":{"200":1},"ops":{"read":null}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := DecodeResult(&buf)
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, buf.Bytes())
		}
		if back.Requests != r.Requests || back.Summary != r.Summary {
			t.Fatalf("round trip changed the result")
		}
		if _, err := Merge(r, back); err != nil {
			t.Fatalf("merge with itself: %v", err)
		}
		var sink bytes.Buffer
		if err := r.WriteText(&sink); err != nil {
			t.Fatal(err)
		}
		if err := r.WriteHTML(&sink); err != nil {
			t.Fatal(err)
		}
	})
}
