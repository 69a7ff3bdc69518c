package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/soullabs/brainy/internal/item"
)

// TestIdempotencyKey: a POST sent again with the same Idempotency-Key
// stores nothing new and is answered with the item the first one stored;
// the same key with another body is refused; tenants' keys are apart.
func TestIdempotencyKey(t *testing.T) {
	s := newTestServer(t, Config{})
	key := []string{"Idempotency-Key", "order-42", "X-Brainy-Tenant", "acme"}
	body := `{"type":"order","data":{"total":42,"items":["a","b"]},"metadata":{"src":"web"},"vector":[0.5,1]}`
	first := s.do(t, "POST", "/v1/items", body, key...)
	var it item.Item
	if err := json.Unmarshal(first.body, &it); err != nil || first.status != 201 {
		t.Fatalf("first POST: %d %s", first.status, first.body)
	}
	if it.ID != KeyedID("order-42") || first.header["location"] != "/v1/items/"+it.ID || first.header["idempotent-replayed"] != "" {
		t.Fatalf("first POST: id %q, headers %v", it.ID, first.header)
	}
	// The same request again, and once more spaced differently: the same
	// JSON, so the same request.
	spaced := strings.ReplaceAll(strings.ReplaceAll(body, ",", ", "), ":", ": ")
	for _, b := range []string{body, spaced} {
		r := s.do(t, "POST", "/v1/items", b, key...)
		if r.status != 201 || string(r.body) != string(first.body) || r.header["idempotent-replayed"] != "true" ||
			r.header["location"] != first.header["location"] || r.header["etag"] != first.header["etag"] {
			t.Fatalf("retry: %d %s %v, want the first answer %s", r.status, r.body, r.header, first.body)
		}
	}
	for _, b := range []string{
		`{"type":"order","data":{"total":43,"items":["a","b"]},"metadata":{"src":"web"},"vector":[0.5,1]}`,
		`{"type":"order","data":{"total":42,"items":["a","b"]},"vector":[0.5,1]}`,
		`{"type":"order","data":{"total":42,"items":["a","b"]},"metadata":{"src":"web"}}`,
		`{"type":"invoice","data":{"total":42,"items":["a","b"]},"metadata":{"src":"web"},"vector":[0.5,1]}`,
	} {
		if r := s.do(t, "POST", "/v1/items", b, key...); r.status != 422 || r.errorCode() != "idempotency_key_reused" {
			t.Fatalf("same key, other body %s: %d %s", b, r.status, r.body)
		}
	}
	if got, err := s.node.Get(context.Background(), "acme", it.ID); err != nil || got.Version != it.Version {
		t.Fatalf("the item after the retries: %+v %v, want version %s", got, err, it.Version)
	}
	// Another tenant's equal key names that tenant's own item.
	other := s.do(t, "POST", "/v1/items", `{"data":"bob's"}`, "Idempotency-Key", "order-42", "X-Brainy-Tenant", "bob")
	if other.status != 201 || other.header["idempotent-replayed"] != "" || !strings.Contains(string(other.body), `"data":"bob's"`) {
		t.Fatalf("bob's POST with alice's key: %d %s %v", other.status, other.body, other.header)
	}
	if m := s.node.Metrics(); m.Storage.Items != 2 {
		t.Fatalf("%d items stored, want 2 (one per tenant)", m.Storage.Items)
	}
	// The key is remembered as long as its item exists.
	if r := s.do(t, "DELETE", "/v1/items/"+it.ID, "", key...); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/v1/items", body, key...); r.status != 201 || r.header["idempotent-replayed"] != "" {
		t.Fatalf("POST after the item was deleted: %d %s %v", r.status, r.body, r.header)
	}
}

// TestIdempotencyKeyConcurrent: requests with one key racing each other
// store one item, and every one of them is answered with it.
func TestIdempotencyKeyConcurrent(t *testing.T) {
	s := newTestServer(t, Config{})
	var wg sync.WaitGroup
	answers := make([]response, 8)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = s.do(t, "POST", "/v1/items", `{"data":1}`, "Idempotency-Key", "k")
		}()
	}
	wg.Wait()
	created := 0
	for _, r := range answers {
		if r.status != 201 || string(r.body) != string(answers[0].body) {
			t.Fatalf("answers differ: %d %s and %d %s", r.status, r.body, answers[0].status, answers[0].body)
		}
		if r.header["idempotent-replayed"] == "" {
			created++
		}
	}
	if m := s.node.Metrics(); m.Storage.Items != 1 || created != 1 {
		t.Fatalf("%d items stored, %d answers not marked replayed; want 1 and 1", m.Storage.Items, created)
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, tc := range []struct {
		name, key, body, code string
	}{
		{"too long", strings.Repeat("k", 256), `{}`, "invalid_idempotency_key"},
		{"not ASCII", "clé", `{}`, "invalid_idempotency_key"},
		{"control character", "a\tb", `{}`, "invalid_idempotency_key"},
		{"with an id in the body", "k", `{"id":"x"}`, "id_with_idempotency_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "POST", "/v1/items", tc.body, "Idempotency-Key", tc.key)
			if r.status != 400 || r.errorCode() != tc.code || !strings.Contains(string(r.body), "Idempotency-Key") {
				t.Fatalf("got %d %s, want 400 %s naming the header", r.status, r.body, tc.code)
			}
		})
	}
	r := s.raw(t, "POST /v1/items HTTP/1.1\r\nHost: x\r\nIdempotency-Key:\r\nContent-Length: 2\r\n\r\n{}")
	if r.status != 400 || r.errorCode() != "invalid_idempotency_key" {
		t.Fatalf("empty key: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/v1/items", `{}`, "Idempotency-Key", strings.Repeat("k", 255)); r.status != 201 {
		t.Fatalf("a 255-character key: %d %s", r.status, r.body)
	}
	if m := s.node.Metrics(); m.Storage.Items != 1 {
		t.Fatalf("%d items stored, want 1", m.Storage.Items)
	}
}
