package tiered_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/tiered"
	"github.com/soullabs/brainy/tiers/tierstest"
)

// clock is a settable clock for access times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// hookStore passes through to a store, calling its hooks (if set): onApply
// and onIter before the call (an error from onApply fails the Apply),
// onGet after the read and before it returns.
type hookStore struct {
	tiers.Store
	mu      sync.Mutex
	onApply func(b *tiers.Batch) error
	onGet   func(key []byte)
	onIter  func()
}

func (h *hookStore) setHook(fn func(b *tiers.Batch) error) {
	h.mu.Lock()
	h.onApply = fn
	h.mu.Unlock()
}

// setGetHook sets a function called after each Get, before it returns.
func (h *hookStore) setGetHook(fn func(key []byte)) {
	h.mu.Lock()
	h.onGet = fn
	h.mu.Unlock()
}

// setIterHook sets a function called before each NewIter.
func (h *hookStore) setIterHook(fn func()) {
	h.mu.Lock()
	h.onIter = fn
	h.mu.Unlock()
}

func (h *hookStore) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, err := h.Store.Get(ctx, key)
	h.mu.Lock()
	fn := h.onGet
	h.mu.Unlock()
	if fn != nil {
		fn(key)
	}
	return v, err
}

func (h *hookStore) NewIter(ctx context.Context, lower, upper []byte) (tiers.Iterator, error) {
	h.mu.Lock()
	fn := h.onIter
	h.mu.Unlock()
	if fn != nil {
		fn()
	}
	return h.Store.NewIter(ctx, lower, upper)
}

func (h *hookStore) Apply(ctx context.Context, b *tiers.Batch, sync bool) error {
	h.mu.Lock()
	fn := h.onApply
	h.mu.Unlock()
	if fn != nil {
		if err := fn(b); err != nil {
			return err
		}
	}
	return h.Store.Apply(ctx, b, sync)
}

// onlySets reports whether b holds no delete.
func onlySets(b *tiers.Batch) bool {
	ok := true
	_ = b.Each(func(del bool, _, _ []byte) error {
		ok = ok && !del
		return nil
	})
	return ok
}

type env struct {
	s               *tiered.Store
	hot, warm, cold tiers.Store
	clock           *clock
}

// openEnv opens a tiered store over memory tiers with a fake clock and no
// background mover. modify may change the config before Open.
func openEnv(t *testing.T, cold bool, modify func(*tiered.Config)) *env {
	t.Helper()
	e := &env{hot: memory.New(), warm: memory.New(), clock: newClock()}
	cfg := tiered.Config{Hot: e.hot, Warm: e.warm, Interval: -1, MaxMoveRate: -1, Now: e.clock.Now}
	if cold {
		e.cold = memory.New()
		cfg.Cold = e.cold
	}
	if modify != nil {
		modify(&cfg)
	}
	e.hot, e.warm, e.cold = cfg.Hot, cfg.Warm, cfg.Cold
	s, err := tiered.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.s = s
	return e
}

func set(t *testing.T, s tiers.Store, kv ...string) {
	t.Helper()
	var b tiers.Batch
	for i := 0; i+1 < len(kv); i += 2 {
		b.Set([]byte(kv[i]), []byte(kv[i+1]))
	}
	if err := s.Apply(t.Context(), &b, true); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func del(t *testing.T, s tiers.Store, keys ...string) {
	t.Helper()
	var b tiers.Batch
	for _, k := range keys {
		b.Delete([]byte(k))
	}
	if err := s.Apply(t.Context(), &b, true); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// get returns key's value in s, or "<none>".
func get(t *testing.T, s tiers.Store, key string) string {
	t.Helper()
	v, err := s.Get(t.Context(), []byte(key))
	if errors.Is(err, tiers.ErrNotFound) {
		return "<none>"
	}
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v)
}

// delFromGoroutine deletes keys from a goroutine other than the test's,
// reporting a failure without stopping it.
func delFromGoroutine(t *testing.T, s tiers.Store, keys ...string) {
	var b tiers.Batch
	for _, k := range keys {
		b.Delete([]byte(k))
	}
	if err := s.Apply(context.Background(), &b, true); err != nil {
		t.Errorf("Apply: %v", err)
	}
}

func mustGet(t *testing.T, s tiers.Store, key, want string) {
	t.Helper()
	if got := get(t, s, key); got != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

// where reports which tiers hold key, e.g. "hot=1 warm=0".
func (e *env) where(t *testing.T, key string) string {
	t.Helper()
	out := "hot=" + get(t, e.hot, key) + " warm=" + get(t, e.warm, key)
	if e.cold != nil {
		out += " cold=" + get(t, e.cold, key)
	}
	return out
}

func (e *env) wantWhere(t *testing.T, key, want string) {
	t.Helper()
	if got := e.where(t, key); got != want {
		t.Fatalf("%q is at %s, want %s", key, got, want)
	}
}

func scan(t *testing.T, s tiers.Store, lower, upper []byte) string {
	t.Helper()
	it, err := s.NewIter(t.Context(), lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for it.Next() {
		fmt.Fprintf(&buf, "%s=%s ", it.Key(), it.Value())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func moveNow(t *testing.T, s *tiered.Store) {
	t.Helper()
	if err := s.MoveNow(t.Context()); err != nil {
		t.Fatalf("MoveNow: %v", err)
	}
}

func tierStat(t *testing.T, s *tiered.Store, name string) nodestats.Tier {
	t.Helper()
	for _, st := range s.TierStats() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no tier %q in TierStats", name)
	return nodestats.Tier{}
}

func TestConformance(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store {
		s, err := tiered.Open(tiered.Config{Hot: memory.New(), Warm: memory.New(), Cold: memory.New(), Interval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConformanceWhileMoving runs the suite with a clock that ages every
// key by a second per reading and a mover that runs all the time, so keys
// keep sinking to warm and cold and rising back while the suite checks the
// contract.
func TestConformanceWhileMoving(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store {
		var ticks atomic.Int64
		now := func() time.Time { return time.Unix(ticks.Add(1), 0) }
		s, err := tiered.Open(tiered.Config{
			Hot: memory.New(), Warm: memory.New(), Cold: memory.New(),
			DemoteAfter: time.Second, ColdAfter: 2 * time.Second,
			Interval: time.Millisecond, MaxMoveRate: -1, Now: now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func openDiskStore(t *testing.T, dir string) *disk.Store {
	t.Helper()
	s, err := disk.Open(disk.Config{Dir: dir, CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformanceDisk(t *testing.T) {
	tierstest.Run(t, func(t *testing.T) tiers.Store {
		dir := t.TempDir()
		s, err := tiered.Open(tiered.Config{
			Hot:      openDiskStore(t, filepath.Join(dir, "hot")),
			Warm:     openDiskStore(t, filepath.Join(dir, "warm")),
			Interval: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, tierstest.Known{Case: "Stats", Why: "disk reports pebble's DiskSpaceUsage, which does not move until a flush"})
}

func TestReopenDisk(t *testing.T) {
	tierstest.Reopen(t, func(t *testing.T, dir string) tiers.Store {
		s, err := tiered.Open(tiered.Config{
			Hot:      openDiskStore(t, filepath.Join(dir, "hot")),
			Warm:     openDiskStore(t, filepath.Join(dir, "warm")),
			Interval: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDemoteByAge checks that keys idle for DemoteAfter move to warm, keys
// used since stay, keys Demotable refuses never move, and keys idle for
// ColdAfter move on to cold.
func TestDemoteByAge(t *testing.T) {
	e := openEnv(t, true, func(c *tiered.Config) {
		c.DemoteAfter = time.Hour
		c.ColdAfter = 10 * time.Hour
		c.Demotable = func(k []byte) bool { return k[0] != 'm' }
	})
	set(t, e.s, "a", "1", "b", "2", "meta", "m")
	e.clock.Advance(59 * time.Minute)
	moveNow(t, e.s)
	e.wantWhere(t, "a", "hot=1 warm=<none> cold=<none>") // not idle long enough

	mustGet(t, e.s, "a", "1") // a is used; b is not
	e.clock.Advance(time.Minute)
	moveNow(t, e.s)
	e.wantWhere(t, "a", "hot=1 warm=<none> cold=<none>")
	e.wantWhere(t, "b", "hot=<none> warm=2 cold=<none>")
	e.wantWhere(t, "meta", "hot=m warm=<none> cold=<none>")
	if st := tierStat(t, e.s, "hot"); st.Demoted != 1 {
		t.Fatalf("hot Demoted = %d, want 1", st.Demoted)
	}

	e.clock.Advance(59 * time.Minute)
	moveNow(t, e.s)
	e.wantWhere(t, "a", "hot=<none> warm=1 cold=<none>")

	e.clock.Advance(10 * time.Hour)
	moveNow(t, e.s)
	e.wantWhere(t, "a", "hot=<none> warm=<none> cold=1")
	e.wantWhere(t, "b", "hot=<none> warm=<none> cold=2")
	e.wantWhere(t, "meta", "hot=m warm=<none> cold=<none>")
	if st := tierStat(t, e.s, "warm"); st.Demoted != 2 {
		t.Fatalf("warm Demoted = %d, want 2", st.Demoted)
	}
	if got, want := scan(t, e.s, nil, nil), "a=1 b=2 meta=m "; got != want {
		t.Fatalf("scan = %q, want %q", got, want)
	}
	if ms := e.s.MoverStats(); ms.Passes != 4 || ms.Moved != 4 || ms.LastMoved != 2 || ms.Running || ms.LastError != "" {
		t.Fatalf("MoverStats = %+v, want 4 passes that moved 4 keys in all, 2 in the last", ms)
	}
}

// TestPinnedDeleteStaysHot checks that deleting a key Demotable refuses
// does not write to the lower tiers, while other deletes do.
func TestPinnedDeleteStaysHot(t *testing.T) {
	warm := &hookStore{Store: memory.New()}
	e := openEnv(t, false, func(c *tiered.Config) {
		c.Warm = warm
		c.Demotable = func(k []byte) bool { return k[0] != 'm' }
	})
	var writes atomic.Int64
	warm.setHook(func(*tiers.Batch) error { writes.Add(1); return nil })
	set(t, e.s, "meta", "1", "item", "2")
	del(t, e.s, "meta")
	if n := writes.Load(); n != 0 {
		t.Fatalf("deleting a pinned key wrote to warm %d times", n)
	}
	mustGet(t, e.s, "meta", "<none>")
	del(t, e.s, "item")
	if n := writes.Load(); n != 1 {
		t.Fatalf("deleting a demotable key wrote to warm %d times, want 1", n)
	}
}

// TestDemoteManyKeys moves more keys than one batch holds, down both
// steps, and checks counts and contents.
func TestDemoteManyKeys(t *testing.T) {
	e := openEnv(t, true, nil)
	const n = 1000
	var b tiers.Batch
	var want bytes.Buffer
	for i := range n {
		k, v := fmt.Sprintf("k%04d", i), fmt.Sprintf("v%d", i)
		b.Set([]byte(k), []byte(v))
		fmt.Fprintf(&want, "%s=%s ", k, v)
	}
	if err := e.s.Apply(t.Context(), &b, true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	if hot, warm := tierStat(t, e.s, "hot"), tierStat(t, e.s, "warm"); hot.Bytes != 0 || hot.Keys != 0 || hot.Demoted != n || warm.Keys != n {
		t.Fatalf("after demoting to warm: hot %+v, warm %+v", hot, warm)
	}
	if got := scan(t, e.warm, nil, nil); got != want.String() {
		t.Fatalf("warm holds %d bytes of listing, want %d", len(got), want.Len())
	}
	e.clock.Advance(tiered.DefaultColdAfter)
	moveNow(t, e.s)
	if warm := tierStat(t, e.s, "warm"); warm.Bytes != 0 || warm.Keys != 0 || warm.Demoted != n {
		t.Fatalf("after demoting to cold: warm %+v", warm)
	}
	if got := scan(t, e.s, nil, nil); got != want.String() {
		t.Fatalf("the store lists %d bytes, want %d", len(got), want.Len())
	}
	if got := scan(t, e.cold, nil, nil); got != want.String() {
		t.Fatalf("cold lists %d bytes, want %d", len(got), want.Len())
	}
}

// TestRestartCountsAsAccess checks that after reopening, keys count as
// accessed at open: nothing moves before DemoteAfter in the new process.
func TestRestartCountsAsAccess(t *testing.T) {
	hot, warm, clk := memory.New(), memory.New(), newClock()
	set(t, hot, "old", "1") // written long ago by an earlier process
	clk.Advance(100 * time.Hour)
	s, err := tiered.Open(tiered.Config{Hot: hot, Warm: warm, Interval: -1, MaxMoveRate: -1, Now: clk.Now, DemoteAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	moveNow(t, s)
	mustGet(t, hot, "old", "1")
	clk.Advance(time.Hour)
	moveNow(t, s)
	mustGet(t, warm, "old", "1")
}

// TestDemoteBySize checks that over HotMaxBytes the least recently used
// keys leave hot first, whatever their age, until hot fits.
func TestDemoteBySize(t *testing.T) {
	e := openEnv(t, false, func(c *tiered.Config) { c.HotMaxBytes = 1000 })
	val := string(make([]byte, 98)) // with a 2-byte key, 100 bytes per key
	for i := range 20 {
		set(t, e.s, fmt.Sprintf("k%d", i%10), val) // k0..k9, each written twice
		e.clock.Advance(time.Second)
	}
	for _, k := range []string{"k3", "k1"} { // now the newest
		mustGet(t, e.s, k, val)
		e.clock.Advance(time.Second)
	}
	moveNow(t, e.s)
	if b := e.hot.Stats().LiveBytes; b != 1000 {
		t.Fatalf("hot holds %d bytes, want 1000", b)
	}
	set(t, e.s, "kA", val, "kB", val, "kC", val)
	moveNow(t, e.s)
	if b := e.hot.Stats().LiveBytes; b != 1000 {
		t.Fatalf("hot holds %d bytes, want 1000", b)
	}
	// Oldest first: k0, k2, k4 went; k3 and k1 were read last and stay.
	for _, k := range []string{"k0", "k2", "k4"} {
		if got := get(t, e.hot, k); got != "<none>" {
			t.Fatalf("%s is still hot; the least recently used should have left first", k)
		}
		mustGet(t, e.warm, k, val)
	}
	for _, k := range []string{"k1", "k3", "k5", "k9", "kA", "kB", "kC"} {
		mustGet(t, e.hot, k, val)
	}
	if st := tierStat(t, e.s, "hot"); st.Demoted != 3 || st.Keys != 10 {
		t.Fatalf("hot TierStats = %+v, want Demoted 3, Keys 10", st)
	}
}

// TestDemoteByFreeSpace checks that with too little free space on hot's
// disk, the least recently used keys leave until enough would be free.
func TestDemoteByFreeSpace(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 20)
	e := openEnv(t, false, func(c *tiered.Config) {
		c.HotMinFreeBytes = 1 << 20
		c.FreeBytes = func() (int64, error) { return free.Load(), nil }
	})
	val := string(make([]byte, 98))
	for i := range 5 {
		set(t, e.s, fmt.Sprintf("k%d", i), val)
		e.clock.Advance(time.Second)
	}
	moveNow(t, e.s)
	if b := e.hot.Stats().LiveBytes; b != 500 {
		t.Fatalf("with enough free space hot holds %d bytes, want 500", b)
	}
	free.Store(1<<20 - 250)
	moveNow(t, e.s)
	for _, k := range []string{"k0", "k1", "k2"} { // 300 bytes >= 250
		mustGet(t, e.warm, k, val)
	}
	for _, k := range []string{"k3", "k4"} {
		mustGet(t, e.hot, k, val)
	}
}

// TestPromoteOnRead checks that a read from warm or cold moves the key to
// hot, and that the tiers' bytes and counters follow.
func TestPromoteOnRead(t *testing.T) {
	e := openEnv(t, true, func(c *tiered.Config) { c.DemoteAfter = time.Hour; c.ColdAfter = 2 * time.Hour })
	set(t, e.s, "w", "warm-value", "c", "cold-value")
	e.clock.Advance(30 * time.Minute)
	mustGet(t, e.s, "w", "warm-value") // from hot: w is 30 minutes younger than c
	for range 3 {
		e.clock.Advance(30 * time.Minute)
		moveNow(t, e.s)
	}
	e.wantWhere(t, "w", "hot=<none> warm=warm-value cold=<none>")
	e.wantWhere(t, "c", "hot=<none> warm=<none> cold=cold-value")
	hot0, warm0, cold0 := tierStat(t, e.s, "hot").Bytes, tierStat(t, e.s, "warm").Bytes, tierStat(t, e.s, "cold").Bytes
	if hot0 != 0 || warm0 == 0 || cold0 == 0 {
		t.Fatalf("before reads: hot %d, warm %d, cold %d bytes; want 0, >0, >0", hot0, warm0, cold0)
	}
	total := e.s.Stats().LiveBytes

	mustGet(t, e.s, "w", "warm-value")
	e.wantWhere(t, "w", "hot=warm-value warm=<none> cold=<none>")
	mustGet(t, e.s, "c", "cold-value")
	e.wantWhere(t, "c", "hot=cold-value warm=<none> cold=<none>")
	hot, warm, cold := tierStat(t, e.s, "hot"), tierStat(t, e.s, "warm"), tierStat(t, e.s, "cold")
	if hot.Bytes != warm0+cold0 || warm.Bytes != 0 || cold.Bytes != 0 {
		t.Fatalf("after reads: hot %d, warm %d, cold %d bytes; want %d, 0, 0", hot.Bytes, warm.Bytes, cold.Bytes, warm0+cold0)
	}
	if warm.Promoted != 1 || cold.Promoted != 1 {
		t.Fatalf("Promoted: warm %d, cold %d; want 1 and 1", warm.Promoted, cold.Promoted)
	}
	if got := e.s.Stats().LiveBytes; got != total {
		t.Fatalf("total LiveBytes %d after promotion, was %d", got, total)
	}
	// A promoted key is fresh: it stays hot for another DemoteAfter.
	e.clock.Advance(59 * time.Minute)
	moveNow(t, e.s)
	e.wantWhere(t, "c", "hot=cold-value warm=<none> cold=<none>")
}

// TestDeleteDoesNotResurrect deletes keys that have copies in several
// tiers, current and stale, and checks nothing comes back.
func TestDeleteDoesNotResurrect(t *testing.T) {
	e := openEnv(t, true, nil)
	// Stale copies below a current hot value, and keys only below.
	set(t, e.cold, "a", "a-cold", "b", "b-cold", "c", "c-cold")
	set(t, e.warm, "a", "a-warm", "b", "b-warm", "d", "d-warm")
	set(t, e.hot, "a", "a-hot")
	if got, want := scan(t, e.s, nil, nil), "a=a-hot b=b-warm c=c-cold d=d-warm "; got != want {
		t.Fatalf("scan = %q, want %q", got, want)
	}
	del(t, e.s, "a", "b", "c", "d")
	for _, k := range []string{"a", "b", "c", "d"} {
		mustGet(t, e.s, k, "<none>")
		e.wantWhere(t, k, "hot=<none> warm=<none> cold=<none>")
	}
	if got := scan(t, e.s, nil, nil); got != "" {
		t.Fatalf("scan after deleting everything = %q", got)
	}
	// A demoted, then deleted key stays deleted after more passes.
	set(t, e.s, "e", "1")
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	e.wantWhere(t, "e", "hot=<none> warm=1 cold=<none>")
	del(t, e.s, "e")
	e.clock.Advance(tiered.DefaultColdAfter)
	moveNow(t, e.s)
	mustGet(t, e.s, "e", "<none>")
	e.wantWhere(t, "e", "hot=<none> warm=<none> cold=<none>")
}

// TestMergedIteration checks that iteration sees each key once, with the
// value of the topmost tier holding it, within bounds.
func TestMergedIteration(t *testing.T) {
	e := openEnv(t, true, nil)
	set(t, e.hot, "a", "a-hot", "c", "c-hot", "f", "f-hot")
	set(t, e.warm, "a", "a-warm", "b", "b-warm", "d", "d-warm", "f", "f-warm")
	set(t, e.cold, "a", "a-cold", "b", "b-cold", "e", "e-cold", "f", "f-cold", "g", "g-cold")
	for _, tc := range []struct {
		lower, upper, want string
	}{
		{"", "", "a=a-hot b=b-warm c=c-hot d=d-warm e=e-cold f=f-hot g=g-cold "},
		{"b", "f", "b=b-warm c=c-hot d=d-warm e=e-cold "},
		{"f", "", "f=f-hot g=g-cold "},
		{"h", "", ""},
	} {
		var lower, upper []byte
		if tc.lower != "" {
			lower = []byte(tc.lower)
		}
		if tc.upper != "" {
			upper = []byte(tc.upper)
		}
		if got := scan(t, e.s, lower, upper); got != tc.want {
			t.Errorf("scan [%q, %q) = %q, want %q", tc.lower, tc.upper, got, tc.want)
		}
	}
}

// TestWriteDuringCopyWins writes a key while its demotion copies it to
// warm: the newer value must stay in hot and win.
func TestWriteDuringCopyWins(t *testing.T) {
	warm := &hookStore{Store: memory.New()}
	e := openEnv(t, false, func(c *tiered.Config) { c.Warm = warm })
	set(t, e.s, "k", "old")
	warm.setHook(func(b *tiers.Batch) error {
		if onlySets(b) {
			warm.setHook(nil)
			set(t, e.s, "k", "new")
		}
		return nil
	})
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	mustGet(t, e.s, "k", "new")
	mustGet(t, e.hot, "k", "new")
	if got, want := scan(t, e.s, nil, nil), "k=new "; got != want {
		t.Fatalf("scan = %q, want %q", got, want)
	}
	// The stale copy in warm is overwritten by the next demotion.
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	e.wantWhere(t, "k", "hot=<none> warm=new")
}

// TestDeleteDuringCopy deletes a key while its demotion copies it down:
// the copy must not bring it back.
func TestDeleteDuringCopy(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
	}{{"HotToWarm", "hot"}, {"WarmToCold", "warm"}} {
		t.Run(tc.name, func(t *testing.T) {
			warm, cold := &hookStore{Store: memory.New()}, &hookStore{Store: memory.New()}
			e := openEnv(t, true, func(c *tiered.Config) { c.Warm, c.Cold = warm, cold })
			set(t, e.s, "k", "v")
			e.clock.Advance(tiered.DefaultDemoteAfter)
			target := warm
			if tc.from == "warm" {
				moveNow(t, e.s)
				e.clock.Advance(tiered.DefaultColdAfter)
				target = cold
			}
			target.setHook(func(b *tiers.Batch) error {
				if onlySets(b) {
					target.setHook(nil)
					// Another goroutine, as Apply would be: a delete must
					// not wait for the copy to finish.
					done := make(chan struct{})
					go func() { defer close(done); delFromGoroutine(t, e.s, "k") }()
					<-done
				}
				return nil
			})
			moveNow(t, e.s)
			mustGet(t, e.s, "k", "<none>")
			e.wantWhere(t, "k", "hot=<none> warm=<none> cold=<none>")
			if got := scan(t, e.s, nil, nil); got != "" {
				t.Fatalf("scan = %q, want nothing", got)
			}
		})
	}
}

// TestDeleteDuringPromotion deletes a key right after a reader found it in
// warm, before the promotion writes it to hot: the promotion must not
// bring it back.
func TestDeleteDuringPromotion(t *testing.T) {
	warm := &hookStore{Store: memory.New()}
	e := openEnv(t, false, func(c *tiered.Config) { c.Warm = warm })
	set(t, e.s, "k", "v")
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	e.wantWhere(t, "k", "hot=<none> warm=v")
	warm.setGetHook(func([]byte) {
		warm.setGetHook(nil)
		// Another goroutine, as core's committer would be.
		done := make(chan struct{})
		go func() { defer close(done); delFromGoroutine(t, e.s, "k") }()
		<-done
	})
	if v, err := e.s.Get(t.Context(), []byte("k")); !errors.Is(err, tiers.ErrNotFound) {
		t.Fatalf("Get of a key deleted during its promotion = %q, %v; want tiers.ErrNotFound", v, err)
	}
	e.wantWhere(t, "k", "hot=<none> warm=<none>")
	if got := scan(t, e.s, nil, nil); got != "" {
		t.Fatalf("scan = %q, want nothing", got)
	}
}

// TestDeleteRacingPromotionRead has a reader find a key in warm while an
// Apply deleting it is under way but has not yet reached warm: the reader
// waits for Apply to finish before it may write to hot, and must then not
// promote the value it read.
func TestDeleteRacingPromotionRead(t *testing.T) {
	warm := &hookStore{Store: memory.New()}
	e := openEnv(t, false, func(c *tiered.Config) { c.Warm = warm })
	set(t, e.s, "k", "v")
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	e.wantWhere(t, "k", "hot=<none> warm=v")
	type result struct {
		v   []byte
		err error
	}
	got := make(chan result, 1)
	warm.setHook(func(b *tiers.Batch) error {
		if onlySets(b) {
			return nil
		}
		warm.setHook(nil)
		// Apply holds its lock and has not deleted "k" from warm yet. A
		// reader finds "k" there and then waits for that lock to promote.
		read := make(chan struct{})
		warm.setGetHook(func([]byte) {
			warm.setGetHook(nil)
			close(read)
		})
		go func() {
			v, err := e.s.Get(context.Background(), []byte("k"))
			got <- result{v, err}
		}()
		<-read
		return nil
	})
	del(t, e.s, "k")
	if r := <-got; !errors.Is(r.err, tiers.ErrNotFound) {
		t.Fatalf("Get racing a delete = %q, %v; want tiers.ErrNotFound", r.v, r.err)
	}
	mustGet(t, e.s, "k", "<none>")
	e.wantWhere(t, "k", "hot=<none> warm=<none>")
}

// TestIterDuringPromotion opens an iterator while a reader promotes a key
// from warm: the iterator must see the key once, in hot's snapshot or in
// warm's.
func TestIterDuringPromotion(t *testing.T) {
	warm := &hookStore{Store: memory.New()}
	e := openEnv(t, false, func(c *tiered.Config) { c.Warm = warm })
	set(t, e.s, "a", "1", "k", "v")
	e.clock.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, e.s)
	e.wantWhere(t, "k", "hot=<none> warm=v")
	promoted := make(chan struct{})
	warm.setIterHook(func() {
		// Hot's iterator is open; promote "k" before warm's opens. The
		// store holds the promotion back until the iterators are open,
		// so this waits only up to the timeout.
		warm.setIterHook(nil)
		go func() {
			defer close(promoted)
			if v, err := e.s.Get(context.Background(), []byte("k")); err != nil || string(v) != "v" {
				t.Errorf("Get(k) during iteration = %q, %v; want v", v, err)
			}
		}()
		select {
		case <-promoted:
		case <-time.After(50 * time.Millisecond):
		}
	})
	if got, want := scan(t, e.s, nil, nil), "a=1 k=v "; got != want {
		t.Fatalf("scan during a promotion = %q, want %q", got, want)
	}
	<-promoted
	e.wantWhere(t, "k", "hot=v warm=<none>")
}

// TestInterruptedDemotion fails a demotion between its copy to warm and
// its delete from hot, reopens the store, and checks the next pass
// finishes the move with nothing lost and nothing seen twice.
func TestInterruptedDemotion(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	open := func() (*tiered.Store, *hookStore, tiers.Store) {
		hot := &hookStore{Store: openDiskStore(t, filepath.Join(dir, "hot"))}
		warm := openDiskStore(t, filepath.Join(dir, "warm"))
		s, err := tiered.Open(tiered.Config{Hot: hot, Warm: warm, Interval: -1, MaxMoveRate: -1, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return s, hot, warm
	}
	s, hot, warm := open()
	set(t, s, "a", "1", "b", "2", "c", "3")
	crash := errors.New("crash before the delete from hot")
	hot.setHook(func(b *tiers.Batch) error {
		if !onlySets(b) {
			return crash
		}
		return nil
	})
	clk.Advance(tiered.DefaultDemoteAfter)
	if err := s.MoveNow(t.Context()); !errors.Is(err, crash) {
		t.Fatalf("MoveNow = %v, want %v", err, crash)
	}
	// "a" was copied to warm and is still in hot.
	mustGet(t, hot, "a", "1")
	mustGet(t, warm, "a", "1")
	mustGet(t, s, "a", "1")
	if got, want := scan(t, s, nil, nil), "a=1 b=2 c=3 "; got != want {
		t.Fatalf("scan after an interrupted demotion = %q, want %q", got, want)
	}
	hot.setHook(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, hot, warm = open()
	defer s.Close()
	if got, want := scan(t, s, nil, nil), "a=1 b=2 c=3 "; got != want {
		t.Fatalf("scan after reopening = %q, want %q", got, want)
	}
	clk.Advance(tiered.DefaultDemoteAfter)
	moveNow(t, s)
	for k, v := range map[string]string{"a": "1", "b": "2", "c": "3"} {
		mustGet(t, hot.Store, k, "<none>")
		mustGet(t, warm, k, v)
	}
	if got, want := scan(t, s, nil, nil), "a=1 b=2 c=3 "; got != want {
		t.Fatalf("scan after the move finished = %q, want %q", got, want)
	}
}

// TestConcurrentWritesDuringMoves writes, reads and lists while passes
// demote and reads promote, and checks that every key ends with the last
// value written and that no reader ever saw a value go back.
func TestConcurrentWritesDuringMoves(t *testing.T) {
	e := openEnv(t, true, func(c *tiered.Config) { c.DemoteAfter = time.Second; c.ColdAfter = 2 * time.Second })
	const keys, rounds = 40, 200
	key := func(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }
	write := func(r int) {
		var b tiers.Batch
		for i := range keys {
			switch {
			case (i+r)%7 == 0:
				b.Delete(key(i))
			case (i+r)%3 == 0:
				b.Set(key(i), fmt.Appendf(nil, "%04d", r))
			}
		}
		if err := e.s.Apply(context.Background(), &b, true); err != nil {
			t.Error(err)
		}
	}
	// want is the model: the last value written per key.
	want := map[string]string{}
	model := func(r int) {
		for i := range keys {
			switch {
			case (i+r)%7 == 0:
				delete(want, string(key(i)))
			case (i+r)%3 == 0:
				want[string(key(i))] = fmt.Sprintf("%04d", r)
			}
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { // mover, as fast as it goes, with time passing
		for ctx.Err() == nil {
			e.clock.Advance(time.Second)
			if err := e.s.MoveNow(ctx); err != nil && ctx.Err() == nil {
				t.Error(err)
			}
		}
	})
	for r := range 2 { // readers: a key's version never goes back
		wg.Go(func() {
			last := map[string]string{}
			for n := 0; ctx.Err() == nil; n++ {
				k := key((n*7 + r) % keys)
				v, err := e.s.Get(ctx, k)
				if errors.Is(err, tiers.ErrNotFound) {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				if string(v) < last[string(k)] {
					t.Errorf("Get(%s) = %s after %s", k, v, last[string(k)])
				}
				last[string(k)] = string(v)
			}
		})
	}
	wg.Go(func() { // lister: each key at most once, in order
		for ctx.Err() == nil {
			it, err := e.s.NewIter(ctx, nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			var prev []byte
			for it.Next() {
				if prev != nil && bytes.Compare(it.Key(), prev) <= 0 {
					t.Errorf("iteration saw %s after %s", it.Key(), prev)
				}
				prev = append(prev[:0], it.Key()...)
			}
			if err := it.Err(); err != nil {
				t.Error(err)
			}
			it.Close()
		}
	})
	for r := range rounds {
		write(r)
		model(r)
		// Let a pass run between rounds, so each round's keys age, move
		// down and are read back up while the next rounds write.
		for p := e.s.MoverStats().Passes; e.s.MoverStats().Passes < p+2 && !t.Failed(); {
			time.Sleep(50 * time.Microsecond)
		}
	}
	cancel()
	wg.Wait()

	moveNow(t, e.s)
	t.Logf("tiers: %+v, mover: %+v", e.s.TierStats(), e.s.MoverStats())
	var wantScan bytes.Buffer
	for i := range keys {
		k := string(key(i))
		v, ok := want[k]
		if !ok {
			v = "<none>"
		} else {
			fmt.Fprintf(&wantScan, "%s=%s ", k, v)
		}
		mustGet(t, e.s, k, v)
	}
	if got := scan(t, e.s, nil, nil); got != wantScan.String() {
		t.Fatalf("scan = %q\nwant %q", got, wantScan.String())
	}
}

func TestConfigValidate(t *testing.T) {
	a, b := memory.New(), memory.New()
	for _, tc := range []struct {
		name string
		cfg  tiered.Config
		want string // substring of the error, "" for valid
	}{
		{"Valid", tiered.Config{Hot: a, Warm: b}, ""},
		{"NoHot", tiered.Config{Warm: b}, "Hot is required"},
		{"NoWarm", tiered.Config{Hot: a}, "Warm is required"},
		{"SameStore", tiered.Config{Hot: a, Warm: a}, "must be distinct"},
		{"SameColdAsWarm", tiered.Config{Hot: a, Warm: b, Cold: b}, "must be distinct"},
		{"NegativeDemoteAfter", tiered.Config{Hot: a, Warm: b, DemoteAfter: -time.Second}, "DemoteAfter (-1s) must be >= 0"},
		{"NegativeHotMaxBytes", tiered.Config{Hot: a, Warm: b, HotMaxBytes: -1}, "HotMaxBytes (-1) must be >= 0"},
		{"FreeWithoutSource", tiered.Config{Hot: a, Warm: b, HotMinFreeBytes: 1}, "HotMinFreeBytes needs FreeBytes or HotDir"},
		{"FreeFromDir", tiered.Config{Hot: a, Warm: b, HotMinFreeBytes: 1, HotDir: t.TempDir()}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.EnsureDefaults()
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	c := tiered.Config{HotMaxBytes: -1}
	c.EnsureDefaults()
	err := c.Validate()
	for _, want := range []string{"Hot is required", "Warm is required", "HotMaxBytes"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("Validate = %v, want it to name %q", err, want)
		}
	}
}

// TestFreeBytesFromDir checks the default free space probe reads the
// file system of HotDir.
func TestFreeBytesFromDir(t *testing.T) {
	c := tiered.Config{HotDir: t.TempDir()}
	c.EnsureDefaults()
	free, err := c.FreeBytes()
	if err != nil || free <= 0 {
		t.Fatalf("FreeBytes = %d, %v; want a positive size", free, err)
	}
}
