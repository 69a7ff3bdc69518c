package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/soullabs/brainy/internal/coretest"
)

// TestWritesNeverDuplicated: an edge whose upstream list names the same
// core twice, with a call timeout shorter than some writes take, would
// once re-send a timed-out POST to the "next" core — the same one — and
// store its payload twice. Now a write that may have been delivered is
// never re-sent: the client gets 503 outcome_unknown, and the core holds
// exactly the items answered 2xx plus at most those answered
// outcome_unknown, never a payload twice.
func TestWritesNeverDuplicated(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "core-data")
	secret := newSecret(t)
	core := coretest.StartCore(t, coreBin, nil, "--storage", data, "--cluster-secret", secret)
	edge := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, filepath.Join(dir, "edge-tls"), "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr+","+core.QUICAddr, "--cache-size", "0", "--call-timeout", "1ms")...)
	// Small payloads leave at once, but a durable write (raft log synced)
	// often takes longer than 1 ms: many time out after they were
	// delivered. A core that did not answer is skipped for a second, so the
	// POSTs go in rounds, each once the edge reaches the core again (the
	// first call's dial outlives its 1 ms; a read then answers within it).
	pad := strings.Repeat("x", 1<<10)
	const rounds, perRound = 8, 25
	const posts = rounds * perRound
	var mu sync.Mutex
	ok, unknown, other := 0, 0, map[string]int{}
	for round := range rounds {
		waitFor(t, "the edge reaching the core", func() bool {
			status, _ := do(t, "GET", edge.URL("/v1/items/warm-up"), "")
			return status == 404
		})
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for j := range perRound {
			i := round*perRound + j
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				req, _ := http.NewRequest("POST", edge.URL("/v1/items"), strings.NewReader(fmt.Sprintf(`{"type":"dup","data":{"n":%d,"pad":%q}}`, i, pad)))
				req.Header.Set("X-Brainy-Tenant", "acme")
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("POST %d: %v", i, err)
					return
				}
				var body struct{ Error struct{ Code string } }
				json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.StatusCode == 201:
					ok++
				case resp.StatusCode == 503 && body.Error.Code == "outcome_unknown":
					unknown++
				default:
					other[fmt.Sprintf("%d %s", resp.StatusCode, body.Error.Code)]++
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("%d POSTs: %d created, %d outcome unknown, others %v", posts, ok, unknown, other)

	// Count what the core stored, per payload, reading the core directly.
	seen := map[int]int{}
	cursor := ""
	for {
		status, body := do(t, "GET", core.URL("/v1/items?type=dup&limit=1000&cursor="+cursor), "")
		if status != 200 {
			t.Fatalf("list at the core: %d %s", status, body)
		}
		var page struct {
			Items []struct {
				Data struct{ N int }
			}
			Cursor string
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			seen[it.Data.N]++
		}
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	if unknown == 0 {
		t.Errorf("no write timed out after it was sent, so nothing was tested: the core answered within 1 ms")
	}
	stored := 0
	for n, c := range seen {
		stored += c
		if c > 1 {
			t.Errorf("payload %d stored %d times", n, c)
		}
	}
	if stored < ok || stored > ok+unknown {
		t.Errorf("the core stored %d items; the edge answered 201 for %d and outcome_unknown for %d", stored, ok, unknown)
	}
}

// TestIdempotencyKeyRetries: POSTs that carry an Idempotency-Key are sent
// through an edge whose 1 ms call timeout loses many answers (503
// outcome_unknown), and each one that did not get a 201 is sent again, as
// is, through another edge until it does. Then every POST is sent once
// more. The core holds exactly one item per key, the one every answer for
// that key named: the id comes from the key, at whichever edge.
func TestIdempotencyKeyRetries(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "core-data")
	secret := newSecret(t)
	core := coretest.StartCore(t, coreBin, nil, "--storage", data, "--cluster-secret", secret)
	fast := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, filepath.Join(dir, "fast-tls"), "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr+","+core.QUICAddr, "--cache-size", "0", "--call-timeout", "1ms")...)
	steady := coretest.Start(t, edgeBin, nil, append(enrolment(t, core, filepath.Join(dir, "steady-tls"), "--storage", data, "--cluster-secret", secret),
		"--upstream", core.QUICAddr, "--cache-size", "0")...)

	pad := strings.Repeat("x", 1<<10)
	const rounds, perRound = 4, 25
	const posts = rounds * perRound
	body := func(i int) string { return fmt.Sprintf(`{"type":"keyed","data":{"n":%d,"pad":%q}}`, i, pad) }
	var mu sync.Mutex
	ids := map[int]string{}
	unknown := 0
	for round := range rounds {
		waitFor(t, "the fast edge reaching the core", func() bool {
			status, _ := do(t, "GET", fast.URL("/v1/items/warm-up"), "")
			return status == 404
		})
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for j := range perRound {
			i := round*perRound + j
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				key := fmt.Sprintf("post-%d", i)
				status, code, id, _ := postKeyed(t, fast.URL("/v1/items"), key, body(i))
				if code == "outcome_unknown" {
					mu.Lock()
					unknown++
					mu.Unlock()
				}
				for try := 0; status != 201 && try < 3; try++ {
					status, code, id, _ = postKeyed(t, steady.URL("/v1/items"), key, body(i))
				}
				if status != 201 {
					t.Errorf("POST %d: %d %s after retries", i, status, code)
				}
				mu.Lock()
				ids[i] = id
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if unknown == 0 {
		t.Errorf("no write timed out after it was sent, so nothing was retried: the core answered within 1 ms")
	}
	for i := range posts {
		status, code, id, replayed := postKeyed(t, steady.URL("/v1/items"), fmt.Sprintf("post-%d", i), body(i))
		if status != 201 || replayed != "true" || id != ids[i] {
			t.Errorf("POST %d once more: %d %s %s (replayed %q), want 201 %s, replayed", i, status, code, id, replayed, ids[i])
		}
	}

	stored := map[int][]string{}
	cursor := ""
	for {
		status, got := do(t, "GET", core.URL("/v1/items?type=keyed&limit=1000&cursor="+cursor), "")
		if status != 200 {
			t.Fatalf("list at the core: %d %s", status, got)
		}
		var page struct {
			Items []struct {
				ID   string
				Data struct{ N int }
			}
			Cursor string
		}
		if err := json.Unmarshal([]byte(got), &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			stored[it.Data.N] = append(stored[it.Data.N], it.ID)
		}
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	t.Logf("%d POSTs, %d answered outcome_unknown at first", posts, unknown)
	for i := range posts {
		if got := stored[i]; len(got) != 1 || got[0] != ids[i] {
			t.Errorf("POST %d: the core holds %q, want exactly the answered %s", i, got, ids[i])
		}
	}
	if len(stored) != posts {
		t.Errorf("the core holds items of %d payloads, want %d", len(stored), posts)
	}
}

// postKeyed POSTs body with an Idempotency-Key as tenant acme and returns
// the status, the error code, the id the answer names (Location) and its
// Idempotent-Replayed header.
func postKeyed(t *testing.T, url, key, body string) (status int, code, id, replayed string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("X-Brainy-Tenant", "acme")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", key, err)
		return 0, "", "", ""
	}
	defer resp.Body.Close()
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code, strings.TrimPrefix(resp.Header.Get("Location"), "/v1/items/"), resp.Header.Get("Idempotent-Replayed")
}
