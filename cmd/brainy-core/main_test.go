package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "brainy-core-test")
	if err != nil {
		panic(err)
	}
	bin, err = coretest.Build("../..", dir, "brainy-core")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := objstoretest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t testing.TB, method, url, contentType, body string) (int, []byte) {
	t.Helper()
	code, b, err := tryDo(method, url, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return code, b
}

// TestQuickStart is the README's first minute: add an item the way curl -d
// does, read it back, restart, and find it still there.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	p := coretest.StartCore(t, bin, nil, "--storage", filepath.Join(dir, "data"))
	status, body := do(t, "POST", p.URL("/v1/items"), "application/x-www-form-urlencoded", `{"type":"person","data":{"name":"John"}}`)
	if status != 201 {
		t.Fatalf("POST: %d %s", status, body)
	}
	var it struct{ ID, Type string }
	if err := json.Unmarshal(body, &it); err != nil || it.ID == "" || it.Type != "person" {
		t.Fatalf("POST answer %s: %v", body, err)
	}
	if status, got := do(t, "GET", p.URL("/v1/items/"+it.ID), "", ""); status != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET: %d %s, want %s", status, got, body)
	}
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
	}
	p = coretest.StartCore(t, bin, nil, "--storage", filepath.Join(dir, "data"))
	if status, got := do(t, "GET", p.URL("/v1/items/"+it.ID), "", ""); status != 200 || !bytes.Equal(got, body) {
		t.Fatalf("GET after restart: %d %s, want %s", status, got, body)
	}
}

// crashRounds is how many times the crash tests kill the server: a few
// in the suite; `make stress-crash` sets BRAINY_CRASH_ROUNDS=100.
func crashRounds(t *testing.T, suite int) int {
	v := os.Getenv("BRAINY_CRASH_ROUNDS")
	if v == "" {
		return suite
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("BRAINY_CRASH_ROUNDS=%q: want a positive number", v)
	}
	return n
}

// TestCrashLosesNoAcknowledgedWrite SIGKILLs the server in the middle of a
// stream of concurrent writes, again and again, and checks after each
// restart that every write answered with 2xx reads back intact.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	crashTest(t, crashRounds(t, 5), nil, "--storage", filepath.Join(t.TempDir(), "data"))
}

// TestS3CrashLosesNoAcknowledgedWrite is the same on an object store.
func TestS3CrashLosesNoAcknowledgedWrite(t *testing.T) {
	url, env := s3Env(t)
	crashTest(t, crashRounds(t, 2), env, "--storage", url, "--node-id", "n1")
}

// crashTest runs rounds of writes, each ended by SIGKILL after a random
// number (1–400) of acknowledged writes, so the kill falls anywhere in the
// driver's cycle: persisting, applying or answering.
//
// Half the writers create new items; half overwrite four hot items, one
// request at a time per key. For a hot item, a write that was in flight at
// the kill may or may not have landed, so the stored value must be the
// last acknowledged one or one of the unacknowledged writes after it.
func crashTest(t *testing.T, rounds int, env []string, args ...string) {
	type history struct {
		acked   string   // data of the last acknowledged write
		pending []string // writes sent after it without an answer
	}
	var mu sync.Mutex
	items := map[string]*history{}
	var hotMu [4]sync.Mutex

	// An item not written since it was last checked cannot have changed:
	// each restart checks the items written since the last one, the end
	// checks them all.
	dirty := map[string]bool{}
	killed := "" // the log of the server killed last
	check := func(p *coretest.Process, when string, all bool) {
		for id, h := range items {
			if !all && !dirty[id] {
				continue
			}
			status, got := do(t, "GET", p.URL("/v1/items/"+id), "", "")
			if status != 200 {
				if h.acked == "" {
					continue // never acknowledged, and did not land
				}
				t.Fatalf("%s: acknowledged %s lost: %d %s\nthe killed server's log ends:\n%s\nthe restarted server's:\n%s",
					when, id, status, got, tail(killed, 40), tail(p.Log(), 40))
			}
			var it struct{ Data json.RawMessage }
			json.Unmarshal(got, &it)
			ok := string(it.Data) == h.acked
			for _, p := range h.pending {
				ok = ok || string(it.Data) == p
			}
			if !ok {
				t.Fatalf("%s: %s holds %s; acknowledged %s, unacknowledged after it %v", when, id, it.Data, h.acked, h.pending)
			}
			// What is stored now is the truth the next round builds on.
			h.acked, h.pending = string(it.Data), nil
		}
		clear(dirty)
	}

	acked := 0
	for round := range rounds {
		p := coretest.StartCore(t, bin, env, args...)
		check(p, fmt.Sprintf("round %d", round), false)
		var wg sync.WaitGroup
		var n atomic.Int64
		stop := make(chan struct{})
		for w := range 16 {
			wg.Go(func() {
				c := &http.Client{Timeout: 5 * time.Second}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					hot := w%2 == 1
					if hot {
						id = fmt.Sprintf("hot-%d", i%4)
						hotMu[i%4].Lock()
					}
					data := fmt.Sprintf(`{"round":%d,"writer":%d,"seq":%d}`, round, w, i)
					mu.Lock()
					h := items[id]
					if h == nil {
						h = &history{}
						items[id] = h
					}
					dirty[id] = true
					h.pending = append(h.pending, data)
					mu.Unlock()
					req, _ := http.NewRequest("PUT", p.URL("/v1/items/"+id), strings.NewReader(`{"type":"crash","data":`+data+`}`))
					req.Header.Set("Content-Type", "application/json")
					resp, err := c.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode/100 == 2 {
							mu.Lock()
							h.acked, h.pending = data, nil
							mu.Unlock()
							n.Add(1)
						}
					}
					if hot {
						hotMu[i%4].Unlock()
					}
					if err != nil {
						return // the server is gone
					}
				}
			})
		}
		// Let writes flow, then kill mid-stream.
		want := 1 + mrand.Int64N(400)
		deadline := time.Now().Add(10 * time.Second)
		for n.Load() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		p.Kill()
		killed = p.Log()
		close(stop)
		wg.Wait()
		if n.Load() == 0 {
			t.Fatalf("round %d: no write was acknowledged\n%s", round, p.Log())
		}
		acked += int(n.Load())
		if rounds <= 10 || round%10 == 9 {
			t.Logf("round %d: %d writes acknowledged before SIGKILL (%d in all)", round, n.Load(), acked)
		}
	}
	check(coretest.StartCore(t, bin, env, args...), "after the last crash", true)
}

// TestGracefulShutdown: SIGTERM during writes finishes what is in flight,
// exits 0, and every acknowledged write is there after a restart.
func TestGracefulShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p := coretest.StartCore(t, bin, nil, "--storage", dir)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", w, i)
				req, _ := http.NewRequest("PUT", p.URL("/v1/items/"+id), strings.NewReader(`{"data":1}`))
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
				n.Add(1)
			}
		})
	}
	for n.Load() < 100 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log())
	}
	wg.Wait()
	if !strings.Contains(p.Log(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", p.Log())
	}
	p = coretest.StartCore(t, bin, nil, "--storage", dir)
	for _, id := range acked {
		if status, body := do(t, "GET", p.URL("/v1/items/"+id), "", ""); status != 200 {
			t.Fatalf("acknowledged %s missing after graceful restart: %d %s", id, status, body)
		}
	}
}

func TestRefusesOpenAddressWithoutKeys(t *testing.T) {
	code, stderr := coretest.Run(bin, nil, "--bind", "0.0.0.0", "--storage", "memory")
	if code == 0 || !strings.Contains(stderr, "without API keys") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	code, stderr = coretest.Run(bin, nil, "--debug-addr", "0.0.0.0:0", "--storage", "memory")
	if code == 0 || !strings.Contains(stderr, "--debug-addr must be a loopback address") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestDebugProfiles(t *testing.T) {
	p := coretest.StartCore(t, bin, nil, "--storage", "memory", "--debug-addr", "127.0.0.1:0")
	// The profile listener is logged just after the API's: wait for it.
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(p.Log(), "\n") {
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"debug_addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving profiles" {
				addr = rec.Addr
			}
		}
	}
	if addr == "" {
		t.Fatalf("no debug address logged:\n%s", p.Log())
	}
	if status, body := do(t, "GET", "http://"+addr+"/debug/pprof/goroutine?debug=1", "", ""); status != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", status, body)
	}
	if status, _ := do(t, "GET", p.URL("/debug/pprof/"), "", ""); status != 404 {
		t.Fatalf("profiles must not be on the API address: %d", status)
	}
}

func TestSettingsFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "brainy.yaml")
	keys := filepath.Join(dir, "keys")
	os.WriteFile(keys, []byte("k-0123456789abcdef acme\n"), 0o600)
	os.WriteFile(cfg, []byte("storage: memory\napi-keys: "+keys+"\nmax-body-bytes: 100\n"), 0o600)
	// The file sets a 100-byte body limit; the environment raises it to 200.
	p := coretest.StartCore(t, bin, []string{"BRAINY_MAX_BODY_BYTES=200"}, "--config", cfg)
	body := `{"data":"` + strings.Repeat("x", 150) + `"}`
	req, _ := http.NewRequest("PUT", p.URL("/v1/items/a"), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k-0123456789abcdef")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"tenant":"acme"`) {
		t.Fatalf("PUT of 150 bytes with env limit 200: %d %s", resp.StatusCode, b)
	}
	req, _ = http.NewRequest("PUT", p.URL("/v1/items/b"), strings.NewReader(`{"data":"`+strings.Repeat("x", 250)+`"}`))
	req.Header.Set("Authorization", "Bearer k-0123456789abcdef")
	if resp, err = client.Do(req); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"code":"body_too_large"`) {
		t.Fatalf("PUT of 260 bytes with limit 200: %d %s", resp.StatusCode, b)
	}
	if status, _ := do(t, "GET", p.URL("/v1/items/a"), "", ""); status != 401 {
		t.Fatalf("the file's api-keys were not applied: GET without a key got %d", status)
	}
	if code, out := coretest.Run(bin, nil, "--help"); code != 0 || !strings.Contains(out, "env: BRAINY_STORAGE") || !strings.Contains(out, "default: ./brainy-data") {
		t.Fatalf("--help: exit %d\n%s", code, out)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
