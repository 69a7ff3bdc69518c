package upstream_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/httpapi"
	"github.com/soullabs/brainy/internal/item"
)

// slowAdds is a core that records the id of every Add it is sent and, for
// the first Add whose data holds "slow", stores the item and then holds
// the answer until release is closed: the edge's call times out after
// the write was applied, as when a core is slow or its answer is lost.
type slowAdds struct {
	*core.Node
	release chan struct{}
	mu      sync.Mutex
	ids     []string
	held    bool
}

func (s *slowAdds) Add(ctx context.Context, tenant string, it *item.Item) (*item.Item, error) {
	s.mu.Lock()
	s.ids = append(s.ids, it.ID)
	hold := !s.held && strings.Contains(string(it.Data), "slow")
	s.held = s.held || hold
	s.mu.Unlock()
	out, err := s.Node.Add(ctx, tenant, it)
	if hold {
		<-s.release
	}
	return out, err
}

func (s *slowAdds) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// post sends a POST through the rig's edge handler and returns the status,
// the error code and the headers that matter here.
func (r *rig) post(t *testing.T, body string, headers ...string) (status int, code, location, replayed string) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/v1/items")
	ctx.Request.SetBodyString(body)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	r.h.Serve(&ctx)
	return ctx.Response.StatusCode(), codeOf(ctx.Response.Body()), string(ctx.Response.Header.Peek("Location")),
		string(ctx.Response.Header.Peek("Idempotent-Replayed"))
}

func codeOf(b []byte) string { return code(string(b)) }

// TestIdempotencyKeyAfterOutcomeUnknown: an edge names a POST's item
// before it calls a core, and a client that got 503 outcome_unknown
// (delivered, answer lost) and sends the POST again with its
// Idempotency-Key gets the item the first attempt stored: one item.
func TestIdempotencyKeyAfterOutcomeUnknown(t *testing.T) {
	slow := &slowAdds{release: make(chan struct{})}
	rigFront = func(n *core.Node) item.API { slow.Node = n; return slow }
	defer func() { rigFront = nil }()
	r := newRig(t, item.Limits{})

	// Without a key, the edge sends the core an id and answers with it.
	status, _, location, _ := r.post(t, `{"type":"plain"}`, acme...)
	if ids := slow.sent(); status != 201 || len(ids) != 1 || ids[0] == "" || location != "/v1/items/"+ids[0] {
		t.Fatalf("POST without key: %d at %q; the core was sent ids %q", status, location, ids)
	}

	key := append([]string{"Idempotency-Key", "pay-7"}, acme...)
	body := `{"type":"payment","data":{"amount":7,"note":"slow"}}`
	status, code, location, _ := r.post(t, body, key...)
	want := "/v1/items/" + httpapi.KeyedID("pay-7")
	if status != 503 || code != "outcome_unknown" || location != want {
		t.Fatalf("first attempt: %d %s at %q, want 503 outcome_unknown at %q", status, code, location, want)
	}
	close(slow.release)
	// The edge skips a core that did not answer for a while: the client
	// retries until it gets an answer that is not "unavailable".
	var replayed string
	eventually(t, "an answer to the retry", func() bool {
		status, code, location, replayed = r.post(t, body, key...)
		return code != "unavailable"
	})
	if status != 201 || location != want || replayed != "true" {
		t.Fatalf("retry: %d %s at %q (replayed %q), want 201 at %q, replayed", status, code, location, replayed, want)
	}
	page, err := r.core.List(context.Background(), "acme", item.ListOptions{Type: "payment"})
	if err != nil || len(page.Items) != 1 || "/v1/items/"+page.Items[0].ID != want {
		t.Fatalf("the core holds %d payments (%v), want exactly the one at %s", len(page.Items), err, want)
	}
	for _, id := range slow.sent()[1:] {
		if "/v1/items/"+id != want {
			t.Fatalf("an attempt was sent with id %q, want every one at %q", id, want)
		}
	}
}
