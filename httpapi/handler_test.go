package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/tiers/memory"
)

// testServer runs the real handler and server on a real core node over an
// in-memory listener.
type testServer struct {
	node   *core.Node
	client *fasthttp.Client
	ln     *fasthttputil.InmemoryListener
}

func newTestServer(t testing.TB, cfg Config) *testServer {
	return newTestServerWith(t, cfg, nil)
}

// newTestServerWith serves wrap(node) instead of the node when wrap is set.
func newTestServerWith(t testing.TB, cfg Config, wrap func(*core.Node) Backend) *testServer {
	t.Helper()
	store := memory.New()
	node, err := core.Open(context.Background(), core.Config{Store: store, Limits: cfg.Limits})
	if err != nil {
		t.Fatal(err)
	}
	var be Backend = node
	if wrap != nil {
		be = wrap(node)
	}
	h, err := NewHandler(cfg, be)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{}, h)
	ln := fasthttputil.NewInmemoryListener()
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		node.Close()
		store.Close()
	})
	return &testServer{node: node, ln: ln, client: &fasthttp.Client{
		Dial:                func(string) (net.Conn, error) { return ln.Dial() },
		MaxResponseBodySize: 16 << 20,
	}}
}

type response struct {
	status int
	header map[string]string
	body   []byte
}

// errorCode returns the "code" of a JSON error body, or "" if there is none.
func (r response) errorCode() string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func (s *testServer) do(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.URI().DisablePathNormalizing = true
	req.SetRequestURI("http://brainy" + path)
	req.Header.SetMethod(method)
	req.SetConnectionClose() // a 413 closes the connection; never reuse one
	if body != "" {
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if err := s.client.Do(req, resp); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	r := response{status: resp.StatusCode(), header: map[string]string{}, body: append([]byte(nil), resp.Body()...)}
	for k, v := range resp.Header.All() {
		r.header[strings.ToLower(string(k))] = string(v)
	}
	return r
}

// raw sends bytes as they are, for requests a client library would refuse
// to send or would clean up.
func (s *testServer) raw(t testing.TB, request string) response {
	t.Helper()
	c, err := s.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(request)); err != nil {
		t.Fatal(err)
	}
	var resp fasthttp.Response
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("reading the answer to %q: %v", request, err)
	}
	return response{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...)}
}

func TestMalformedRequests(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, tc := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"bad percent-encoding in id", "GET /v1/items/a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_id"},
		{"truncated percent-encoding", "GET /v1/items/a%2 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_id"},
		{"content-length over the limit", "POST /v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{}", 413, "body_too_large"},
		{"garbage request line", "BLAH\r\n\r\n", 400, "bad_request"},
		{"chunked body over the limit", "POST /v1/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(strings.Repeat(" ", 2<<20)+"{}"), 413, "body_too_large"},
		{"chunked body", "POST /v1/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(`{"data":1}`), 201, ""},
		{"headers over the read buffer", "GET /v1/items/a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("h", 20<<10) + "\r\n\r\n", 431, "headers_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.raw(t, tc.request)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	lim := item.Limits{MaxBodyBytes: 64 << 10, MaxDepth: 8, MaxFields: 50, MaxVectorDims: 16}
	s := newTestServer(t, Config{Limits: lim})
	seed := s.do(t, "PUT", "/v1/items/seed", `{"type":"person","data":{"name":"John"}}`)
	if seed.status != 201 {
		t.Fatalf("seed: %d %s", seed.status, seed.body)
	}
	etag := seed.header["etag"]

	deep := strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9)
	var many strings.Builder
	many.WriteString(`{"data":{`)
	for i := range 60 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"f%d":%d`, i, i)
	}
	many.WriteString("}}")
	vec := `{"vector":[` + strings.TrimSuffix(strings.Repeat("1,", 17), ",") + `]}`

	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
	}{
		{"id too long in path", "GET", "/v1/items/" + strings.Repeat("a", 257), "", nil, 400, "id_too_long"},
		{"id too long in body", "POST", "/v1/items", `{"id":"` + strings.Repeat("a", 257) + `"}`, nil, 400, "id_too_long"},
		{"id with control character", "PUT", "/v1/items/a%01b", `{}`, nil, 400, "invalid_id"},
		{"nesting too deep", "POST", "/v1/items", `{"data":` + deep + `}`, nil, 400, "too_deep"},
		{"too many fields", "POST", "/v1/items", many.String(), nil, 400, "too_many_fields"},
		{"vector too large", "POST", "/v1/items", vec, nil, 400, "vector_too_large"},
		{"vector of strings", "POST", "/v1/items", `{"vector":["a"]}`, nil, 400, "invalid_vector"},
		{"vector out of float32 range", "POST", "/v1/items", `{"vector":[1e39]}`, nil, 400, "invalid_vector"},
		{"malformed JSON", "POST", "/v1/items", `{"data":`, nil, 400, "invalid_json"},
		{"trailing garbage", "POST", "/v1/items", `{} x`, nil, 400, "invalid_json"},
		{"not an object", "POST", "/v1/items", `[1,2]`, nil, 400, "invalid_json"},
		{"invalid UTF-8", "POST", "/v1/items", "{\"data\":\"\xff\xfe\"}", nil, 400, "invalid_utf8"},
		{"empty body", "POST", "/v1/items", ` `, nil, 400, "empty_body"},
		{"unknown field", "POST", "/v1/items", `{"dta":{}}`, nil, 400, "unknown_field"},
		{"duplicate field", "POST", "/v1/items", `{"type":"a","type":"b"}`, nil, 400, "duplicate_field"},
		{"metadata not an object", "POST", "/v1/items", `{"metadata":[1]}`, nil, 400, "invalid_metadata"},
		{"type not a string", "POST", "/v1/items", `{"type":7}`, nil, 400, "invalid_type"},
		{"type too long", "POST", "/v1/items", `{"type":"` + strings.Repeat("t", 129) + `"}`, nil, 400, "type_too_long"},
		{"wrong content type", "POST", "/v1/items", `{}`, []string{"Content-Type", "text/xml"}, 415, "unsupported_media_type"},
		{"unknown route", "GET", "/v2/items", "", nil, 404, "route_not_found"},
		{"unknown route under v1", "GET", "/v1/itemsx", "", nil, 404, "route_not_found"},
		{"wrong method on collection", "DELETE", "/v1/items", "", nil, 405, "method_not_allowed"},
		{"wrong method on item", "POST", "/v1/items/seed", `{}`, nil, 405, "method_not_allowed"},
		{"wrong method on metrics", "POST", "/v1/metrics", `{}`, nil, 405, "method_not_allowed"},
		{"bad tenant header", "GET", "/v1/items/seed", "", []string{"X-Brainy-Tenant", "a b"}, 400, "invalid_tenant"},
		{"bad limit", "GET", "/v1/items?limit=abc", "", nil, 400, "invalid_limit"},
		{"limit too large", "GET", "/v1/items?limit=100000", "", nil, 400, "invalid_limit"},
		{"bad cursor", "GET", "/v1/items?cursor=!!", "", nil, 400, "invalid_cursor"},
		{"id mismatch", "PUT", "/v1/items/seed", `{"id":"other"}`, nil, 400, "id_mismatch"},
		{"bad If-Match", "PUT", "/v1/items/seed", `{}`, []string{"If-Match", "nope"}, 400, "invalid_if_match"},
		{"bad If-None-Match on write", "PUT", "/v1/items/seed", `{}`, []string{"If-None-Match", `"1"`}, 400, "invalid_if_none_match"},
		{"stale If-Match", "PUT", "/v1/items/seed", `{}`, []string{"If-Match", `"zz"`}, 412, "precondition_failed"},
		{"If-None-Match on existing", "PUT", "/v1/items/seed", `{}`, []string{"If-None-Match", "*"}, 412, "precondition_failed"},
		{"create existing id", "POST", "/v1/items", `{"id":"seed"}`, nil, 409, "conflict"},
		{"missing item", "GET", "/v1/items/nope", "", nil, 404, "not_found"},
		{"patch missing item", "PATCH", "/v1/items/nope", `{"data":{}}`, nil, 404, "not_found"},
		{"delete missing item", "DELETE", "/v1/items/nope", "", nil, 404, "not_found"},
		{"patch growing past the field limit", "PATCH", "/v1/items/seed", strings.Replace(many.String()[:len(many.String())-2], `"f0":0,`, ``, 1) + `,"f99":1}}`, nil, 400, "too_many_fields"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d with code %q", r.status, r.body, tc.status, tc.code)
			}
			if ct := r.header["content-type"]; ct != "application/json" {
				t.Fatalf("content-type %q", ct)
			}
		})
	}
	// Nothing was lost or changed by any of it.
	got := s.do(t, "GET", "/v1/items/seed", "")
	if got.status != 200 || got.header["etag"] != etag || !strings.Contains(string(got.body), `"data":{"name":"John"}`) {
		t.Fatalf("seed after bad input: %d %s %v", got.status, got.body, got.header)
	}
	if m := s.node.Metrics(); m.Storage.Items != 1 || m.Operations.Errors != 0 {
		t.Fatalf("after bad input: %d items, %d errors; want 1 item, 0 errors", m.Storage.Items, m.Operations.Errors)
	}
}

func TestTenantIsolation(t *testing.T) {
	s := newTestServer(t, Config{})
	a := []string{"X-Brainy-Tenant", "alice"}
	b := []string{"X-Brainy-Tenant", "bob"}
	if r := s.do(t, "PUT", "/v1/items/doc", `{"type":"note","data":"alice's"}`, a...); r.status != 201 {
		t.Fatalf("alice put: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/doc", "", b...); r.status != 404 {
		t.Fatalf("bob read alice's item: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items?type=note", "", b...); r.status != 200 || strings.Contains(string(r.body), "alice") {
		t.Fatalf("bob's list shows alice's item: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items", "", b...); r.status != 200 || string(r.body) != "{\"items\":[]}\n" {
		t.Fatalf("bob's list: %d %s", r.status, r.body)
	}
	if r := s.do(t, "DELETE", "/v1/items/doc", "", b...); r.status != 404 {
		t.Fatalf("bob deleted alice's item: %d %s", r.status, r.body)
	}
	if r := s.do(t, "PATCH", "/v1/items/doc", `{"data":"bob's"}`, b...); r.status != 404 {
		t.Fatalf("bob patched alice's item: %d %s", r.status, r.body)
	}
	// Bob's PUT of the same id creates bob's own item; alice's is untouched.
	if r := s.do(t, "PUT", "/v1/items/doc", `{"data":"bob's"}`, b...); r.status != 201 {
		t.Fatalf("bob put: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/doc", "", a...); r.status != 200 || !strings.Contains(string(r.body), `"data":"alice's"`) {
		t.Fatalf("alice's item after bob's writes: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/doc", ""); r.status != 404 {
		t.Fatalf("default tenant sees the item: %d %s", r.status, r.body)
	}
}

func TestAPIKeys(t *testing.T) {
	lim := item.DefaultLimits()
	keys, err := ParseAPIKeys(strings.NewReader("# keys\nalice-key-0123456789 alice\nbob-key-0123456789abc bob\nops-key-0123456789abc ops admin\n"), &lim)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{APIKeys: keys})
	alice := []string{"Authorization", "Bearer alice-key-0123456789"}
	bob := []string{"Authorization", "Bearer bob-key-0123456789abc"}
	if r := s.do(t, "PUT", "/v1/items/x", `{"data":1}`, alice...); r.status != 201 || !strings.Contains(string(r.body), `"tenant":"alice"`) {
		t.Fatalf("alice put: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"no key", nil, 401, "unauthorized"},
		{"wrong key", []string{"Authorization", "Bearer nope-nope-nope-nope"}, 401, "unauthorized"},
		{"not bearer", []string{"Authorization", "Basic YWxpY2U6eA=="}, 401, "unauthorized"},
		{"tenant header overrides key", append([]string{"X-Brainy-Tenant", "alice"}, bob...), 403, "forbidden"},
		{"other tenant's key", bob, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/v1/items/x", "", tc.headers...)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if r := s.do(t, "PUT", "/v1/items/x", `{"data":2}`, bob...); r.status != 201 {
		t.Fatalf("bob's put should create bob's own x: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/x", "", alice...); r.status != 200 || !strings.Contains(string(r.body), `"data":1`) {
		t.Fatalf("alice's x changed: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/healthz", ""); r.status != 200 {
		t.Fatalf("healthz needs no key: %d", r.status)
	}
	if r := s.do(t, "GET", "/metrics", ""); r.status != 401 {
		t.Fatalf("metrics without key: %d", r.status)
	}
	// The node's metrics span every tenant: a tenant's key may not read
	// them, an admin key may.
	ops := []string{"Authorization", "Bearer ops-key-0123456789abc"}
	for _, path := range []string{"/metrics", "/v1/metrics"} {
		if r := s.do(t, "GET", path, "", alice...); r.status != 403 || r.errorCode() != "forbidden" {
			t.Fatalf("%s with a tenant's key: %d %s", path, r.status, r.body)
		}
		if r := s.do(t, "GET", path, "", ops...); r.status != 200 {
			t.Fatalf("%s with an admin key: %d %s", path, r.status, r.body)
		}
	}
	for _, bad := range []string{"short tenant\n", "k-0123456789abcdef bad/tenant\n", "one-field-only-0123456\n", "# nothing\n",
		"k-0123456789abcdef t root\n", "k-0123456789abcdef t admin extra\n",
		"dup-key-0123456789 a\ndup-key-0123456789 b\n"} {
		if _, err := ParseAPIKeys(strings.NewReader(bad), &lim); err == nil {
			t.Errorf("ParseAPIKeys(%q) accepted it", bad)
		}
	}
}

func TestItemLifecycle(t *testing.T) {
	s := newTestServer(t, Config{})
	r := s.do(t, "POST", "/v1/items", `{"type":"person","data":{"name":"John","age":30},"metadata":{"src":"test"},"vector":[0.5,-1,2e-3]}`)
	if r.status != 201 {
		t.Fatalf("post: %d %s", r.status, r.body)
	}
	var it item.Item
	if err := json.Unmarshal(r.body, &it); err != nil {
		t.Fatal(err)
	}
	if it.ID == "" || r.header["location"] != "/v1/items/"+it.ID || r.header["etag"] != `"`+it.Version+`"` {
		t.Fatalf("post answer: %s %v", r.body, r.header)
	}
	if len(it.Vector) != 3 || it.Vector[2] != float32(2e-3) {
		t.Fatalf("vector %v", it.Vector)
	}
	path := "/v1/items/" + it.ID
	if r := s.do(t, "GET", path, "", "If-None-Match", r.header["etag"]); r.status != 304 {
		t.Fatalf("conditional get: %d", r.status)
	}
	r = s.do(t, "PATCH", path, `{"data":{"age":null,"city":"Oslo"}}`, "If-Match", r.header["etag"])
	if r.status != 200 || !strings.Contains(string(r.body), `"data":{"name":"John","city":"Oslo"}`) || !strings.Contains(string(r.body), `"metadata":{"src":"test"}`) {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	r = s.do(t, "PUT", path, `{"type":"person","data":{"name":"Jane"}}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"data":{"name":"Jane"}`) || strings.Contains(string(r.body), "vector") {
		t.Fatalf("replace: %d %s", r.status, r.body)
	}
	if r := s.do(t, "DELETE", path, ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", path, ""); r.status != 404 {
		t.Fatalf("get after delete: %d", r.status)
	}
	// An id with a slash and spaces round-trips through percent-encoding.
	if r := s.do(t, "PUT", "/v1/items/a%2Fb%20c", `{"data":1}`); r.status != 201 || !strings.Contains(string(r.body), `"id":"a/b c"`) {
		t.Fatalf("escaped id: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/v1/metrics", "/metrics"} {
		if r := s.do(t, "GET", p, ""); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	if r := s.do(t, "GET", "/metrics", ""); !strings.Contains(string(r.body), `brainy_http_requests_total{code="201",route="item"}`) ||
		!strings.Contains(string(r.body), "brainy_storage_items 1") {
		t.Fatalf("prometheus output lacks request or storage metrics:\n%s", r.body)
	}
}

func TestRateLimitPerTenant(t *testing.T) {
	s := newTestServer(t, Config{RateLimit: 5, RateBurst: 5})
	a := []string{"X-Brainy-Tenant", "a"}
	for i := range 5 {
		if r := s.do(t, "GET", "/v1/items/x", "", a...); r.status != 404 {
			t.Fatalf("request %d within the burst: %d %s", i, r.status, r.body)
		}
	}
	r := s.do(t, "GET", "/v1/items/x", "", a...)
	if r.status != 429 || r.errorCode() != "rate_limited" || r.header["retry-after"] == "" {
		t.Fatalf("request past the burst: %d %s %v", r.status, r.body, r.header)
	}
	if r := s.do(t, "PUT", "/v1/items/x", `{}`, a...); r.status != 429 {
		t.Fatalf("writes share the tenant's bucket: %d", r.status)
	}
	if r := s.do(t, "GET", "/v1/items/x", "", "X-Brainy-Tenant", "b"); r.status != 404 {
		t.Fatalf("another tenant was limited too: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/healthz", ""); r.status != 200 {
		t.Fatalf("health checks are not rate limited: %d", r.status)
	}
}

// chunked encodes body as one HTTP/1.1 chunk and the last chunk.
func chunked(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// TestUnknownParametersRefused: a query parameter the API does not know is
// a 400 naming it, never ignored — a list "filtered" by metadata that
// returned every item would be a silent wrong answer. The parameters each
// request does take still work.
func TestUnknownParametersRefused(t *testing.T) {
	s := newTestServer(t, Config{})
	if r := s.do(t, "PUT", "/v1/items/a", `{"type":"city","metadata":{"city":"Oslo"}}`); r.status != 201 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	if r := s.do(t, "PUT", "/v1/items/b", `{"type":"city","metadata":{"city":"Bergen"}}`); r.status != 201 {
		t.Fatalf("seed: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ method, path, param string }{
		{"GET", "/v1/items?metadata.city=Oslo", "metadata.city"},
		{"GET", "/v1/items?type=city&lmit=1", "lmit"},
		{"GET", "/v1/items/a?fields=data", "fields"},
		{"PUT", "/v1/items/a?consistency=strong", "consistency"},
		{"DELETE", "/v1/items/a?force=1", "force"},
		{"POST", "/v1/items?type=city", "type"},
	} {
		r := s.do(t, c.method, c.path, `{"data":1}`)
		if r.status != 400 || r.errorCode() != "unknown_parameter" || !strings.Contains(string(r.body), c.param) {
			t.Errorf("%s %s: %d %s, want 400 unknown_parameter naming %q", c.method, c.path, r.status, r.body, c.param)
		}
	}
	if r := s.do(t, "GET", "/v1/items?type=city&limit=1&consistency=strong", ""); r.status != 200 {
		t.Fatalf("list with its own parameters: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/a?consistency=stale", ""); r.status != 200 {
		t.Fatalf("read with ?consistency: %d %s", r.status, r.body)
	}
	// Nothing the refused requests named was changed.
	if r := s.do(t, "GET", "/v1/items/a", ""); r.status != 200 || !strings.Contains(string(r.body), "Oslo") {
		t.Fatalf("after the refused requests: %d %s", r.status, r.body)
	}
}

// TestFindAnswerNamesMissing: a partial find's answer is valid JSON with
// partial true and the missing parts named.
func TestFindAnswerNamesMissing(t *testing.T) {
	res := &query.Result{Hits: []query.Hit{{Item: &item.Item{ID: "a"}, Score: 0.5}}, Missing: []string{"p3", "eu-\"west"}}
	var a struct {
		Items   []map[string]any `json:"items"`
		Partial bool             `json:"partial"`
		Missing []string         `json:"missing"`
	}
	out := appendFindResult(nil, res, true)
	if err := json.Unmarshal(out, &a); err != nil || !a.Partial || !slices.Equal(a.Missing, res.Missing) || len(a.Items) != 1 || a.Items[0]["score"] != 0.5 {
		t.Fatalf("%s: %+v %v", out, a, err)
	}
}

// TestFind: POST /v1/find filters by metadata, ranks by vector with a
// score, pages with a cursor, and answers a malformed query 400 naming
// its path.
func TestFind(t *testing.T) {
	s := newTestServer(t, Config{})
	for i, body := range []string{
		`{"type":"city","metadata":{"country":"no","pop":700000},"vector":[1,0]}`,
		`{"type":"city","metadata":{"country":"no","pop":290000},"vector":[0.9,0.1]}`,
		`{"type":"city","metadata":{"country":"de","pop":3600000},"vector":[0,1]}`,
	} {
		if r := s.do(t, "PUT", fmt.Sprintf("/v1/items/c%d", i), body); r.status != 201 {
			t.Fatalf("seed: %d %s", r.status, r.body)
		}
	}
	type answer struct {
		Items []struct {
			ID    string   `json:"id"`
			Score *float64 `json:"score"`
		} `json:"items"`
		Cursor  string   `json:"cursor"`
		Partial bool     `json:"partial"`
		Missing []string `json:"missing"`
	}
	find := func(body string) (answer, response) {
		r := s.do(t, "POST", "/v1/find", body)
		var a answer
		if r.status == 200 {
			if err := json.Unmarshal(r.body, &a); err != nil {
				t.Fatalf("%s: %v", r.body, err)
			}
		}
		return a, r
	}
	a, r := find(`{"type":"city","where":{"metadata.country":"no","metadata.pop":{"gte":500000}}}`)
	if r.status != 200 || len(a.Items) != 1 || a.Items[0].ID != "c0" || a.Items[0].Score != nil || a.Partial || a.Missing == nil {
		t.Fatalf("filtered find: %d %s", r.status, r.body)
	}
	a, r = find(`{"near":{"vector":[1,0],"k":2}}`)
	if r.status != 200 || len(a.Items) != 2 || a.Items[0].ID != "c0" || a.Items[1].ID != "c1" || a.Items[0].Score == nil || *a.Items[0].Score != 1 {
		t.Fatalf("nearest: %d %s", r.status, r.body)
	}
	a, r = find(`{"limit":2}`)
	if r.status != 200 || len(a.Items) != 2 || a.Cursor == "" {
		t.Fatalf("first page: %d %s", r.status, r.body)
	}
	a, r = find(`{"limit":2,"cursor":"` + a.Cursor + `"}`)
	if r.status != 200 || len(a.Items) != 1 || a.Items[0].ID != "c2" || a.Cursor != "" {
		t.Fatalf("second page: %d %s", r.status, r.body)
	}
	if _, r = find(`{"where":{"metadata.pop":{"gte":"x","around":1}}}`); r.status != 400 || r.errorCode() != "invalid_query" || !strings.Contains(string(r.body), "where.metadata.pop.around") {
		t.Fatalf("a bad operator: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/find", ""); r.status != 405 {
		t.Fatalf("GET /v1/find: %d", r.status)
	}
}

// TestConflictsRequests: GET /v1/conflicts answers a page (empty on a
// backend without a conflict log) and refuses a malformed since, cursor
// or limit, an unknown parameter and another method, naming what is wrong.
func TestConflictsRequests(t *testing.T) {
	s := newTestServer(t, Config{})
	r := s.do(t, "GET", "/v1/conflicts?since=2026-12-06T10:00:00Z&limit=5", "")
	var page item.ConflictPage
	if err := json.Unmarshal(r.body, &page); r.status != 200 || err != nil || len(page.Conflicts) != 0 || page.Cursor != "" || page.Resume == "" {
		t.Fatalf("an empty log: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/conflicts?cursor="+page.Resume, ""); r.status != 200 {
		t.Fatalf("resuming: %d %s", r.status, r.body)
	}
	edge := newTestServer(t, Config{Edge: true})
	for _, path := range []string{"/v1/conflicts", "/v1/items?scope=global", "/v1/items/a?consistency=global", "/v1/items/a?meta=versions"} {
		if r := edge.do(t, "GET", path, ""); r.status != 400 || r.errorCode() != "core_only" {
			t.Errorf("GET %s at an edge: %d %s, want 400 core_only", path, r.status, r.body)
		}
	}
	for _, c := range []struct{ path, code string }{
		{"/v1/conflicts?since=yesterday", "invalid_since"},
		{"/v1/conflicts?cursor=AAAA", "invalid_cursor"},
		{"/v1/conflicts?limit=0", "invalid_limit"},
		{"/v1/conflicts?limit=100000", "invalid_limit"},
		{"/v1/conflicts?tenant=other", "unknown_parameter"},
	} {
		if r := s.do(t, "GET", c.path, ""); r.status != 400 || r.errorCode() != c.code {
			t.Errorf("GET %s: %d %s, want 400 %s", c.path, r.status, r.body, c.code)
		}
	}
	if r := s.do(t, "DELETE", "/v1/conflicts", ""); r.status != 405 {
		t.Errorf("DELETE /v1/conflicts: %d %s", r.status, r.body)
	}
	// The cursor a page hands out reads back.
	cur := item.ConflictCursor{Since: 42, Seqs: map[int]uint64{3: 9}}.Encode()
	if r := s.do(t, "GET", "/v1/conflicts?cursor="+cur, ""); r.status != 200 {
		t.Errorf("a well-formed cursor: %d %s", r.status, r.body)
	}
}

// TestItemMeta: ?meta=versions adds the item's version vector and its
// conflict count (on a single region: its own version, no conflicts); a
// bad value is refused.
func TestItemMeta(t *testing.T) {
	s := newTestServer(t, Config{})
	if r := s.do(t, "PUT", "/v1/items/a", `{"data":1}`); r.status != 201 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	r := s.do(t, "GET", "/v1/items/a?meta=versions", "")
	var it struct {
		Version string
		Data    int
		Meta    struct {
			Versions  map[string]string
			Conflicts int
		}
	}
	if err := json.Unmarshal(r.body, &it); r.status != 200 || err != nil || it.Data != 1 || it.Meta.Versions[""] != it.Version || it.Meta.Conflicts != 0 {
		t.Fatalf("meta: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/a?meta=all", ""); r.status != 400 || r.errorCode() != "invalid_meta" {
		t.Fatalf("a bad meta: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/v1/items/nope?meta=versions", ""); r.status != 404 {
		t.Fatalf("meta of a missing item: %d %s", r.status, r.body)
	}
}
