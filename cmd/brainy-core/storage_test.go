package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// s3Env provisions versitygw and returns the storage URL of a fresh
// prefix and the environment that gives a process its credentials.
func s3Env(t *testing.T) (url string, env []string) {
	e := objstoretest.Use(t, objstoretest.S3)
	prefix := "e2e-" + strings.ToLower(rand.Text()[:10])
	url = fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s", e["BRAINY_TEST_S3_BUCKET"], prefix,
		e["BRAINY_TEST_S3_ENDPOINT"], e["BRAINY_TEST_S3_REGION"])
	env = []string{"AWS_ACCESS_KEY_ID=" + e["BRAINY_TEST_S3_ACCESS_KEY"], "AWS_SECRET_ACCESS_KEY=" + e["BRAINY_TEST_S3_SECRET_KEY"]}
	return url, env
}

// countObjects lists what a storage URL holds.
func countObjects(t *testing.T, url string, env []string) (objects int, keys []string) {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	objs, err := backend.OpenObjects(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	err = objs.List(context.Background(), "", func(k string, _ int64) error {
		objects++
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objects, keys
}

// TestS3StorageSurvivesSIGKILL: brainy-core --storage s3://… acknowledges a
// write only once it is in the bucket. Concurrent writers, SIGKILL, restart:
// every acknowledged item is there, and the bucket holds segment objects,
// far fewer than items.
func TestS3StorageSurvivesSIGKILL(t *testing.T) {
	url, env := s3Env(t)
	args := []string{"--storage", url, "--node-id", "n1"}
	core := coretest.StartCore(t, bin, env, args...)
	var acked sync.Map
	var count atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 64 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				code, _ := doQuiet("POST", core.URL("/v1/items"), `{"id":"`+id+`","data":"`+id+`"}`)
				if code == 201 {
					acked.Store(id, true)
					count.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for count.Load() < 2000 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	core.Kill()
	close(stop)
	wg.Wait()
	if count.Load() < 500 {
		t.Fatalf("only %d writes acknowledged before the kill", count.Load())
	}

	core = coretest.StartCore(t, bin, env, args...)
	missing := 0
	acked.Range(func(k, _ any) bool {
		code, body := do(t, "GET", core.URL("/v1/items/"+k.(string)), "", "")
		if code != 200 || !strings.Contains(string(body), k.(string)) {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged items missing after SIGKILL", missing, count.Load())
	}
	objects, keys := countObjects(t, url, env)
	segs := 0
	for _, k := range keys {
		if strings.Contains(k, "/seg/") {
			segs++
		}
	}
	t.Logf("%d acknowledged items in %d objects (%d segments)", count.Load(), objects, segs)
	if segs == 0 || int64(objects)*3 > count.Load() {
		t.Fatalf("%d items in %d objects (%d segments): want segment objects holding many items each", count.Load(), objects, segs)
	}
}

// TestS3SparseWritesOnePutEach: a write that arrives alone (well after the
// one before, as on a lightly loaded node) costs brainy-core on S3 one
// object Put: its raft log entry's. The state it applies waits for the
// next write's Put instead of being flushed on its own a moment later.
func TestS3SparseWritesOnePutEach(t *testing.T) {
	url, env := s3Env(t)
	core := coretest.StartCore(t, bin, env, "--storage", url, "--node-id", "sparse")
	puts := func() int64 {
		r := metrics(t, core).Storage.ObjectRequests
		if r == nil {
			t.Fatal("no object requests in /v1/metrics")
		}
		return r.Puts
	}
	// Let startup's writes end: no Put for half a second.
	last, since := puts(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < 500*time.Millisecond; {
		if time.Now().After(deadline) {
			t.Fatal("the node kept writing objects for 30 s after starting")
		}
		time.Sleep(50 * time.Millisecond)
		if p := puts(); p != last {
			last, since = p, time.Now()
		}
	}
	const writes = 8
	for i := range writes {
		id := fmt.Sprintf("sparse-%d", i)
		if code, body := do(t, "POST", core.URL("/v1/items"), "application/json", `{"id":"`+id+`","data":1}`); code != 201 {
			t.Fatalf("write %d: %d %s", i, code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// One Put per write; one more may flush the last write's applied state.
	if got := puts() - last; got > writes+1 {
		t.Fatalf("%d sparse writes made %d object Puts, want at most %d", writes, got, writes+1)
	}
}

// doQuiet is do without a test: writers run on after the node dies.
func doQuiet(method, url, body string) (int, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestSharedBucket: two nodes on one bucket claim distinct prefixes; a
// third asking for a live node's prefix is refused and names the holder.
func TestSharedBucket(t *testing.T) {
	url, env := s3Env(t)
	a := coretest.StartCore(t, bin, env, "--storage", url)
	b := coretest.StartCore(t, bin, env, "--storage", url)
	for _, p := range []*coretest.Process{a, b} {
		if code, body := do(t, "POST", p.URL("/v1/items"), "application/json", `{"id":"x","data":1}`); code != 201 {
			t.Fatalf("write: %d %s", code, body)
		}
	}
	_, keys := countObjects(t, url, env)
	prefixes := map[string]bool{}
	for _, k := range keys {
		if strings.HasPrefix(k, "node-") {
			prefixes[strings.SplitN(k, "/", 2)[0]] = true
		}
	}
	if len(prefixes) != 2 {
		t.Fatalf("two nodes on one bucket wrote under %v; want two distinct node-* prefixes", prefixes)
	}
	taken := ""
	for p := range prefixes {
		taken = strings.TrimPrefix(p, "node-")
	}
	code, out := coretest.Run(bin, env, "--storage", url, "--node-id", taken,
		"--http-addr", "127.0.0.1:0", "--quic-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "is held by") {
		t.Fatalf("a third node took node-%s/ from its live owner (exit %d):\n%s", taken, code, out)
	}
}

// TestTieredStorage: a node with a local hot tier, S3 as warm and Azure as
// cold demotes idle items under small thresholds and promotes them on
// read; /v1/metrics shows the tier sizes move.
func TestTieredStorage(t *testing.T) {
	url, env := s3Env(t)
	az := objstoretest.Use(t, objstoretest.Azurite)
	cold := "azure://brainy-cold/e2e-" + strings.ToLower(rand.Text()[:10]) + "?create_container=true"
	env = append(env, "AZURE_STORAGE_CONNECTION_STRING="+az["BRAINY_TEST_AZURE_CONNSTR"])
	hot := filepath.Join(t.TempDir(), "hot")
	core := coretest.StartCore(t, bin, env, "--storage-hot", hot, "--storage-warm", url, "--storage-cold", cold,
		"--tier-demote-after", "1s", "--tier-cold-after", "3s", "--tier-interval", "200ms")
	for i := range 50 {
		if code, body := do(t, "POST", core.URL("/v1/items"), "application/json", fmt.Sprintf(`{"id":"i%d","data":"%s"}`, i, strings.Repeat("x", 1000))); code != 201 {
			t.Fatalf("write: %d %s", code, body)
		}
	}
	tier := func(name string) int64 {
		for _, tr := range metrics(t, core).Storage.Tiers {
			if tr.Name == name {
				return tr.Bytes
			}
		}
		t.Fatalf("no %s tier in /v1/metrics: %+v", name, metrics(t, core).Storage)
		return 0
	}
	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened: storage %+v", what, metrics(t, core).Storage)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("demotion to cold", func() bool { return tier("cold") >= 50*1000 })
	if w := tier("warm"); w >= 50*1000 {
		t.Errorf("warm still holds %d bytes after everything went cold", w)
	}
	// The node's record cache answers recent reads without asking the
	// store; a restart empties it, so the reads below reach the tiers.
	if err := core.Stop(30 * time.Second); err != nil {
		t.Fatalf("stopping: %v\n%s", err, core.Log())
	}
	core = coretest.StartCore(t, bin, env, "--storage-hot", hot, "--storage-warm", url, "--storage-cold", cold,
		"--tier-demote-after", "1h", "--tier-interval", "200ms")
	if c := tier("cold"); c < 50*1000 {
		t.Fatalf("after a restart the cold tier holds %d bytes", c)
	}
	before := tier("hot")
	for i := range 10 {
		code, body := do(t, "GET", core.URL(fmt.Sprintf("/v1/items/i%d", i)), "", "")
		if code != 200 || !strings.Contains(string(body), strings.Repeat("x", 1000)) {
			t.Fatalf("read of a cold item: %d %s", code, body)
		}
	}
	var promoted uint64
	for _, tr := range metrics(t, core).Storage.Tiers {
		promoted += tr.Promoted
	}
	if promoted < 10 {
		t.Errorf("10 cold reads promoted %d items", promoted)
	}
	if after := tier("hot"); after <= before {
		t.Errorf("hot tier did not grow on promotion: %d then %d bytes", before, after)
	}
}
