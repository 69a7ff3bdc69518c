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
