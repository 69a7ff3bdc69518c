// Package objstoretest is the conformance suite that every objstore.Store implementation
// runs, plus the provisioning of the local servers (versitygw, Azurite, fake-gcs-server)
// that the adapters' tests run it against.
//
// An adapter's test calls Run with a Harness whose New returns a fresh, empty store
// (for example one with a unique key prefix in a shared bucket). Run uses t.Run for each
// case and t.Parallel nowhere, so the cases see only their own writes; the race cases
// start their own goroutines.
package objstoretest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Harness describes the store under test.
type Harness struct {
	// New returns a fresh, empty store and registers its cleanup with t.Cleanup.
	// Required.
	New func(t *testing.T) objstore.Store

	// NewUnauthorized returns a store whose credentials the backend refuses. Nil skips
	// the credentials case (backends without authentication, like the GCS emulator).
	NewUnauthorized func(t *testing.T) objstore.Store

	// NewUnreachable returns a store pointed at an address where nothing listens,
	// configured with few retries. Nil skips the case.
	NewUnreachable func(t *testing.T) objstore.Store

	// ListPageSize is the listing page size the stores from New use; the pagination case
	// writes 2*ListPageSize+3 keys (at most 2503). Default 1000 (the S3 default).
	ListPageSize int

	// LargeSize is the body size in bytes of the large-value case. Default 8 MiB.
	LargeSize int

	// Racers is the number of concurrent writers in the race cases. Default 8.
	Racers int
}

func (h *Harness) ensureDefaults() {
	if h.ListPageSize <= 0 {
		h.ListPageSize = 1000
	}
	if h.LargeSize <= 0 {
		h.LargeSize = 8 << 20
	}
	if h.Racers <= 0 {
		h.Racers = 8
	}
}

// Run runs the conformance cases against the stores h makes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("objstoretest: Harness.New is nil")
	}
	h.ensureDefaults()
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"PutGetOverwrite", testPutGet},
		{"EmptyBody", testEmptyBody},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"Keys", testKeys},
		{"InvalidArguments", testInvalid},
		{"GetRange", testGetRange},
		{"Large", testLarge},
		{"ListPrefixes", testListPrefixes},
		{"ListPagination", testListPagination},
		{"ListStop", testListStop},
		{"Conditional", testConditional},
		{"CreateRace", testCreateRace},
		{"CASRace", testCASRace},
		{"Canceled", testCanceled},
		{"AccessDenied", testAccessDenied},
		{"Unavailable", testUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t *testing.T, s objstore.Store, key string, body []byte, cond objstore.Cond) string {
	t.Helper()
	etag, err := s.Put(ctx(t), key, body, cond)
	if err != nil {
		t.Fatalf("Put(%q, %d bytes, %+v): %v", key, len(body), cond, err)
	}
	if etag == "" {
		t.Fatalf("Put(%q) returned an empty ETag", key)
	}
	return etag
}

func mustGet(t *testing.T, s objstore.Store, key string, want []byte, wantETag string) {
	t.Helper()
	got, etag, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes %.40q, want %d bytes %.40q", key, len(got), got, len(want), want)
	}
	if wantETag != "" && etag != wantETag {
		t.Fatalf("Get(%q) ETag = %s, want %s (as returned by Put)", key, etag, wantETag)
	}
}

func wantErr(t *testing.T, what string, err, sentinel error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: err = %v, want %v", what, err, sentinel)
	}
}

type listed struct {
	key  string
	size int64
}

func list(t *testing.T, s objstore.Store, prefix string) []listed {
	t.Helper()
	var out []listed
	err := s.List(ctx(t), prefix, func(k string, n int64) error {
		out = append(out, listed{k, n})
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func testPutGet(t *testing.T, h Harness) {
	s := h.New(t)
	e1 := mustPut(t, s, "k", []byte("one"), objstore.Cond{})
	mustGet(t, s, "k", []byte("one"), e1)
	e2 := mustPut(t, s, "k", []byte("two, longer"), objstore.Cond{})
	if e2 == e1 {
		t.Fatalf("overwrite kept ETag %s", e1)
	}
	mustGet(t, s, "k", []byte("two, longer"), e2)
}

func testEmptyBody(t *testing.T, h Harness) {
	s := h.New(t)
	e := mustPut(t, s, "empty", nil, objstore.Cond{})
	mustGet(t, s, "empty", []byte{}, e)
	got := list(t, s, "empty")
	if len(got) != 1 || got[0] != (listed{"empty", 0}) {
		t.Fatalf("List = %v, want [{empty 0}]", got)
	}
	b, err := s.GetRange(ctx(t), "empty", 0, 10)
	if err != nil || len(b) != 0 {
		t.Fatalf("GetRange(empty, 0, 10) = %q, %v; want empty, nil", b, err)
	}
}

func testMissing(t *testing.T, h Harness) {
	s := h.New(t)
	_, _, err := s.Get(ctx(t), "nope")
	wantErr(t, "Get(missing)", err, objstore.ErrNotFound)
	_, err = s.GetRange(ctx(t), "nope", 0, 10)
	wantErr(t, "GetRange(missing)", err, objstore.ErrNotFound)
	if err := s.Delete(ctx(t), "nope"); err != nil {
		t.Fatalf("Delete(missing) = %v, want nil", err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("List of a fresh store = %v, want nothing", got)
	}
}

func testDelete(t *testing.T, h Harness) {
	s := h.New(t)
	mustPut(t, s, "d/1", []byte("x"), objstore.Cond{})
	mustPut(t, s, "d/2", []byte("y"), objstore.Cond{})
	if err := s.Delete(ctx(t), "d/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, _, err := s.Get(ctx(t), "d/1")
	wantErr(t, "Get(deleted)", err, objstore.ErrNotFound)
	mustGet(t, s, "d/2", []byte("y"), "")
	if got := list(t, s, "d/"); len(got) != 1 || got[0].key != "d/2" {
		t.Fatalf("List after delete = %v, want [d/2]", got)
	}
	// A deleted key can be created again with a create-only Put.
	mustPut(t, s, "d/1", []byte("again"), objstore.Cond{IfNoneMatch: true})
	mustGet(t, s, "d/1", []byte("again"), "")
}

func testKeys(t *testing.T, h Harness) {
	s := h.New(t)
	keys := []string{
		"a",
		"deep/er/and/deeper/key",
		"with space",
		"unicode/äöü-日本",
		"punct/a+b=c,d;e@f$g&h'(i)!~*",
		"pct/%41%2F",
		strings.Repeat("x", 200),
	}
	for i, k := range keys {
		mustPut(t, s, k, []byte(fmt.Sprint(i)), objstore.Cond{})
	}
	for i, k := range keys {
		mustGet(t, s, k, []byte(fmt.Sprint(i)), "")
	}
	got := list(t, s, "")
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("List = %v, want keys %q", got, want)
	}
	for i := range want {
		if got[i].key != want[i] {
			t.Fatalf("List[%d] = %q, want %q (all: %v)", i, got[i].key, want[i], got)
		}
	}
}

func testInvalid(t *testing.T, h Harness) {
	s := h.New(t)
	for _, k := range []string{"", ".", "..", "a\nb", "bad\xff", strings.Repeat("k", objstore.MaxKeyLen+1)} {
		_, err := s.Put(ctx(t), k, []byte("x"), objstore.Cond{})
		wantErr(t, fmt.Sprintf("Put(%q)", k), err, objstore.ErrInvalidArgument)
		_, _, err = s.Get(ctx(t), k)
		wantErr(t, fmt.Sprintf("Get(%q)", k), err, objstore.ErrInvalidArgument)
	}
	_, err := s.Put(ctx(t), "k", nil, objstore.Cond{IfNoneMatch: true, IfMatch: `"x"`})
	wantErr(t, "Put with both conditions", err, objstore.ErrInvalidArgument)
	for _, r := range [][2]int64{{-1, 1}, {0, 0}, {0, -5}} {
		_, err := s.GetRange(ctx(t), "k", r[0], r[1])
		wantErr(t, fmt.Sprintf("GetRange(off=%d, n=%d)", r[0], r[1]), err, objstore.ErrInvalidArgument)
	}
}

func testGetRange(t *testing.T, h Harness) {
	s := h.New(t)
	body := make([]byte, 100)
	for i := range body {
		body[i] = byte(i)
	}
	mustPut(t, s, "r", body, objstore.Cond{})
	cases := []struct {
		off, n int64
		want   []byte
	}{
		{0, 10, body[:10]},
		{42, 1, body[42:43]},
		{90, 10, body[90:]},
		{95, 10, body[95:]},
		{0, 1000, body},
		{99, 1, body[99:]},
		{100, 5, nil},
		{1000, 1, nil},
	}
	for _, c := range cases {
		got, err := s.GetRange(ctx(t), "r", c.off, c.n)
		if err != nil {
			t.Fatalf("GetRange(off=%d, n=%d): %v", c.off, c.n, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Fatalf("GetRange(off=%d, n=%d) = %v, want %v", c.off, c.n, got, c.want)
		}
	}
}

func testLarge(t *testing.T, h Harness) {
	s := h.New(t)
	body := randomBytes(t, h.LargeSize)
	e := mustPut(t, s, "large", body, objstore.Cond{})
	mustGet(t, s, "large", body, e)
	off := int64(h.LargeSize/2 - 1000)
	got, err := s.GetRange(ctx(t), "large", off, 1<<20)
	if err != nil {
		t.Fatalf("GetRange: %v", err)
	}
	end := min(off+1<<20, int64(h.LargeSize))
	if !bytes.Equal(got, body[off:end]) {
		t.Fatalf("GetRange of the large value: %d bytes differ from the expected %d", len(got), end-off)
	}
	if l := list(t, s, "large"); len(l) != 1 || l[0].size != int64(h.LargeSize) {
		t.Fatalf("List = %v, want size %d", l, h.LargeSize)
	}
}

func testListPrefixes(t *testing.T, h Harness) {
	s := h.New(t)
	// No key is also a "directory" of another ("a" and "a/1"): see the package doc.
	keys := []string{"a-", "a/1", "a/2", "a/b/1", "ab", "b/1", "b/2/x"}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k), objstore.Cond{})
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"a", []string{"a-", "a/1", "a/2", "a/b/1", "ab"}},
		{"a/", []string{"a/1", "a/2", "a/b/1"}},
		{"a/b/", []string{"a/b/1"}},
		{"b/2", []string{"b/2/x"}},
		{"c", nil},
		{"a/1/", nil},
	} {
		got := list(t, s, c.prefix)
		var gotKeys []string
		for _, l := range got {
			gotKeys = append(gotKeys, l.key)
			if l.size != int64(len(l.key)) {
				t.Fatalf("List(%q): %q has size %d, want %d", c.prefix, l.key, l.size, len(l.key))
			}
		}
		if fmt.Sprint(gotKeys) != fmt.Sprint(c.want) {
			t.Fatalf("List(%q) = %q, want %q", c.prefix, gotKeys, c.want)
		}
	}
}

func testListPagination(t *testing.T, h Harness) {
	s := h.New(t)
	n := min(2*h.ListPageSize+3, 2503)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("p/%05d", i)
	}
	mustPut(t, s, "other", nil, objstore.Cond{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for k := range work {
				if _, err := s.Put(ctx(t), k, []byte(k), objstore.Cond{}); err != nil {
					errs <- fmt.Errorf("Put(%q): %w", k, err)
				}
			}
		})
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := list(t, s, "p/")
	if len(got) != n {
		t.Fatalf("List returned %d keys, want %d", len(got), n)
	}
	for i, l := range got {
		if l.key != keys[i] {
			t.Fatalf("List[%d] = %q, want %q", i, l.key, keys[i])
		}
	}
}

func testListStop(t *testing.T, h Harness) {
	s := h.New(t)
	for _, k := range []string{"s/1", "s/2", "s/3"} {
		mustPut(t, s, k, nil, objstore.Cond{})
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(ctx(t), "s/", func(string, int64) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("List with fn failing on the 2nd call: err = %v after %d calls, want %v after 2", err, calls, stop)
	}
}

func testConditional(t *testing.T, h Harness) {
	s := h.New(t)
	create := objstore.Cond{IfNoneMatch: true}
	e1 := mustPut(t, s, "c", []byte("v1"), create)
	_, err := s.Put(ctx(t), "c", []byte("v1b"), create)
	wantErr(t, "create-only Put of an existing key", err, objstore.ErrPreconditionFailed)
	mustGet(t, s, "c", []byte("v1"), e1)

	e2 := mustPut(t, s, "c", []byte("v2"), objstore.Cond{IfMatch: e1})
	_, err = s.Put(ctx(t), "c", []byte("v3"), objstore.Cond{IfMatch: e1})
	wantErr(t, "Put with a stale IfMatch", err, objstore.ErrPreconditionFailed)
	mustGet(t, s, "c", []byte("v2"), e2)

	_, err = s.Put(ctx(t), "c-missing", []byte("x"), objstore.Cond{IfMatch: e2})
	wantErr(t, "IfMatch Put of a missing key", err, objstore.ErrPreconditionFailed)
	_, _, err = s.Get(ctx(t), "c-missing")
	wantErr(t, "Get after a failed IfMatch Put", err, objstore.ErrNotFound)

	if err := s.Delete(ctx(t), "c"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx(t), "c", []byte("v4"), objstore.Cond{IfMatch: e2})
	wantErr(t, "IfMatch Put of a deleted key", err, objstore.ErrPreconditionFailed)
}

// race runs h.Racers concurrent Puts of key, writer i writing "writer-i" with cond, and
// checks that exactly one wins, that the others lost with ErrPreconditionFailed, and that
// the store holds the winner's body and ETag.
func race(t *testing.T, h Harness, s objstore.Store, key string, cond objstore.Cond) {
	type result struct {
		etag string
		err  error
	}
	results := make([]result, h.Racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			<-start
			results[i].etag, results[i].err = s.Put(ctx(t), key, fmt.Appendf(nil, "writer-%d", i), cond)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won the race (%+v)", winner, i, cond)
		case r.err == nil:
			winner = i
		case !errors.Is(r.err, objstore.ErrPreconditionFailed):
			t.Fatalf("writer %d: err = %v, want a win or %v", i, r.err, objstore.ErrPreconditionFailed)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won the race (%+v)", cond)
	}
	mustGet(t, s, key, fmt.Appendf(nil, "writer-%d", winner), results[winner].etag)
}

func testCreateRace(t *testing.T, h Harness) {
	s := h.New(t)
	race(t, h, s, "lock", objstore.Cond{IfNoneMatch: true})
}

func testCASRace(t *testing.T, h Harness) {
	s := h.New(t)
	e := mustPut(t, s, "manifest", []byte("v0"), objstore.Cond{})
	race(t, h, s, "manifest", objstore.Cond{IfMatch: e})
}

func testCanceled(t *testing.T, h Harness) {
	s := h.New(t)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Put(c, "k", []byte("x"), objstore.Cond{})
	wantErr(t, "Put with a canceled context", err, context.Canceled)
	_, _, err = s.Get(c, "k")
	wantErr(t, "Get with a canceled context", err, context.Canceled)
}

func testAccessDenied(t *testing.T, h Harness) {
	if h.NewUnauthorized == nil {
		t.Skip("the backend does not check credentials")
	}
	s := h.NewUnauthorized(t)
	_, err := s.Put(ctx(t), "k", []byte("x"), objstore.Cond{})
	wantErr(t, "Put with refused credentials", err, objstore.ErrAccessDenied)
	_, _, err = s.Get(ctx(t), "k")
	wantErr(t, "Get with refused credentials", err, objstore.ErrAccessDenied)
	err = s.List(ctx(t), "", func(string, int64) error { return nil })
	wantErr(t, "List with refused credentials", err, objstore.ErrAccessDenied)
}

func testUnavailable(t *testing.T, h Harness) {
	if h.NewUnreachable == nil {
		t.Skip("no unreachable store configured")
	}
	s := h.NewUnreachable(t)
	_, err := s.Put(ctx(t), "k", []byte("x"), objstore.Cond{})
	wantErr(t, "Put to an unreachable backend", err, objstore.ErrUnavailable)
	_, _, err = s.Get(ctx(t), "k")
	wantErr(t, "Get from an unreachable backend", err, objstore.ErrUnavailable)
}
