package backend_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
	"github.com/soullabs/brainy/tiers/s3"
)

// r2Setting returns an r2:// setting for a fresh prefix whose ?endpoint=
// points at the S3 test server (versitygw), as R2's own endpoint would,
// and sets the server's keys where R2's API tokens go: the AWS variables.
// The region is the server's: versitygw checks the signature's region, and
// R2 takes us-east-1 as an alias of its "auto" (the r2:// default, which
// TestParse checks).
func r2Setting(t *testing.T) string {
	e := objstoretest.Use(t, objstoretest.S3)
	t.Setenv("AWS_ACCESS_KEY_ID", e["BRAINY_TEST_S3_ACCESS_KEY"])
	t.Setenv("AWS_SECRET_ACCESS_KEY", e["BRAINY_TEST_S3_SECRET_KEY"])
	t.Setenv("CLOUDFLARE_ACCOUNT_ID", "")
	return dropAfter(t, "r2://"+e["BRAINY_TEST_S3_BUCKET"]+"/r2-"+strings.ToLower(rand.Text()[:10])+
		"?endpoint="+url.QueryEscape(e["BRAINY_TEST_S3_ENDPOINT"])+"&region="+e["BRAINY_TEST_S3_REGION"])
}

// TestR2AgainstS3Server: an r2:// setting resolves to R2's S3 dialect
// (path-style requests to the endpoint, never the EC2 metadata service,
// whatever the machine) and the store it opens puts, gets, lists,
// conditionally writes and deletes on a real S3 server.
func TestR2AgainstS3Server(t *testing.T) {
	setting := r2Setting(t)
	spec, err := backend.Parse(setting)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(spec.URL, "s3://") {
		t.Fatalf("r2:// resolved to %q, want s3://", spec.URL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := backend.OpenObjects(ctx, spec.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	cfg := objs.(*s3.Store).Config()
	if cfg.UseIMDS || cfg.AddressingStyle != "auto" || cfg.Endpoint == "" {
		t.Fatalf("r2 store config %+v: want no IMDS, path style through the endpoint", cfg)
	}

	etag, err := objs.Put(ctx, "a/1", []byte("one"), objstore.Cond{IfNoneMatch: true})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := objs.Put(ctx, "a/1", []byte("again"), objstore.Cond{IfNoneMatch: true}); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Fatalf("second create-only Put: %v, want ErrPreconditionFailed", err)
	}
	if _, err := objs.Put(ctx, "a/2", []byte("two"), objstore.Cond{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	body, got, err := objs.Get(ctx, "a/1")
	if err != nil || string(body) != "one" || got != etag {
		t.Fatalf("Get = %q, %s, %v; want one, %s", body, got, err, etag)
	}
	if _, err := objs.Put(ctx, "a/1", []byte("uno"), objstore.Cond{IfMatch: etag}); err != nil {
		t.Fatalf("compare-and-swap Put: %v", err)
	}
	var keys []string
	if err := objs.List(ctx, "a/", func(k string, _ int64) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(keys, []string{"a/1", "a/2"}) {
		t.Fatalf("List = %q, want a/1 a/2", keys)
	}
	for _, k := range keys {
		if err := objs.Delete(ctx, k); err != nil {
			t.Fatalf("Delete %s: %v", k, err)
		}
	}
	if _, _, err := objs.Get(ctx, "a/1"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	keys = nil
	if err := objs.List(ctx, "", func(k string, _ int64) error { keys = append(keys, k); return nil }); err != nil || len(keys) != 0 {
		t.Fatalf("List after deleting everything = %q, %v", keys, err)
	}
}

// TestR2NodeStore: a node's store on r2:// (a claimed prefix and a segment
// log) keeps what it was given across a reopen.
func TestR2NodeStore(t *testing.T) {
	setting := r2Setting(t)
	ctx := context.Background()
	st, spec := openSetting(t, setting, backend.Options{NodeID: "r2"})
	var b tiers.Batch
	b.Set([]byte("k"), []byte("v"))
	if err := st.Apply(ctx, &b, true); err != nil {
		t.Fatal(err)
	}
	closeStore(t, st)
	st = openSpec(t, spec, backend.Options{NodeID: "r2"})
	if v, err := st.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopening: %q, %v", v, err)
	}
}
