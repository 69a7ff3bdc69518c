package gcs_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/objstore"
)

// TestUploadType checks that Put sends each object in one uploadType=multipart request:
// fake-gcs-server ignores ifGenerationMatch on uploadType=media, so the race cases of the
// conformance suite are only meaningful for multipart uploads.
func TestUploadType(t *testing.T) {
	cfg := testConfig(t)
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	target.Path = ""
	var (
		mu    sync.Mutex
		types []string
	)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Query().Has("uploadType") {
			mu.Lock()
			types = append(types, r.URL.Query().Get("uploadType"))
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg.Endpoint = srv.URL + "/storage/v1/"
	s := open(t, cfg)
	ctx := context.Background()
	etag, err := s.Put(ctx, "u", make([]byte, 3<<20), objstore.Cond{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "u", []byte("small"), objstore.Cond{IfMatch: etag}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(types) != 2 || types[0] != "multipart" || types[1] != "multipart" {
		t.Fatalf("upload requests = %q, want two multipart uploads", types)
	}
	if _, ok := gcs.ParseETag(etag); !ok {
		t.Fatalf("ETag %q is not a generation", etag)
	}
}
