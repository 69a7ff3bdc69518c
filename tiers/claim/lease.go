package claim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// ErrHeld classifies a *HeldError: the record is owned by a live holder.
var ErrHeld = errors.New("claim: held")

// ErrLost classifies the error of a Claim or Lease that is no longer owned: the
// record was changed by someone else, or could not be renewed within its TTL.
var ErrLost = errors.New("claim: lost")

// HeldError reports a record owned by a live holder. errors.Is(err, ErrHeld)
// matches it.
type HeldError struct {
	// What names what is held: "node-1/" or a lease's key.
	What string
	// Holder is the holder's name from a lease record; "" for claims.
	Holder string
	// Host and PID identify the holder's process (from its record).
	Host string
	PID  int
	// Within bounds how recently the holder was seen renewing, by our clock;
	// negative if no renewal was watched.
	Within time.Duration
	// Hint is appended to the message.
	Hint string
}

func (e *HeldError) Error() string {
	by := ""
	if e.Holder != "" {
		by = e.Holder + " on "
	}
	seen := "alive"
	if e.Within >= 0 {
		seen = "renewed within the last " + e.Within.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("claim: %s is held by %shost %s pid %d (%s)%s", e.What, by, e.Host, e.PID, seen, e.Hint)
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// record is the JSON body of a claim or lease object.
type record struct {
	Holder    string    `json:"holder"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Proc      string    `json:"proc,omitempty"` // boot id and pid namespace; see procIdentity
	Instance  string    `json:"instance"`       // random per Lease: tells our own writes from others'
	Seq       uint64    `json:"seq"`            // bumped by every write so that the ETag changes
	RenewedAt time.Time `json:"renewed_at"`     // informational only: never compared with our clock
	TTLMillis int64     `json:"ttl_ms"`
	Released  bool      `json:"released,omitempty"`
}

func decode(body []byte) (record, bool) {
	var r record
	if err := json.Unmarshal(body, &r); err != nil || r.Instance == "" {
		return record{}, false
	}
	return r, true
}

// Lease is an owned record, renewed in the background until Release or loss.
// All methods are safe for concurrent use.
type Lease struct {
	objs   objstore.Store
	key    string
	cfg    LeaseConfig
	log    *slog.Logger
	holder string
	inst   string
	proc   string
	lost   chan struct{} // closed when the lease is lost; never on Release

	mu    sync.Mutex
	last  written       // guarded by mu; written only by the one writer (see write)
	state state         // guarded by mu
	err   error         // guarded by mu; why the lease was lost, once lost
	stop  chan struct{} // guarded by mu; closing it ends the renewal loop; nil when none runs
	done  chan struct{} // guarded by mu; closed by the renewal loop on exit
}

type state int

const (
	held state = iota
	lost
	released
)

// AcquireLease takes the record at key for holder (a name written into the record
// and shown in errors, such as a node id). If a live holder owns it, AcquireLease
// watches it for up to one TTL and fails with a *HeldError as soon as it sees a
// renewal; a record left unchanged for the TTL is taken over. Contenders for
// leadership call it in a loop.
func AcquireLease(ctx context.Context, objs objstore.Store, key, holder string, cfg LeaseConfig) (*Lease, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := objstore.ValidKey(key); err != nil {
		return nil, fmt.Errorf("claim: lease key: %w", err)
	}
	l := newLease(objs, key, holder, cfg)
	if err := l.take(ctx, true); err != nil {
		var he *HeldError
		if errors.As(err, &he) {
			he.What = key
		}
		return nil, err
	}
	return l, nil
}

func newLease(objs objstore.Store, key, holder string, cfg LeaseConfig) *Lease {
	return &Lease{
		objs:   objs,
		key:    key,
		cfg:    cfg,
		log:    cfg.Logger.With("component", "tiers/claim", "key", key),
		holder: holder,
		inst:   rand.Text(),
		proc:   procIdentity(),
		lost:   make(chan struct{}),
	}
}

// Held reports whether the lease is still owned: not lost and not released.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == held
}

// Lost returns a channel that is closed when the lease is lost: the record was
// changed or removed by someone else, or no renewal succeeded within the TTL.
// The owner must then stop writing. Release does not close it.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns why the lease was lost (matching ErrLost), or nil.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release stops the renewals and marks the record released with a conditional
// write, so the next contender takes it at once. It returns an error matching
// ErrLost if the lease was lost before, and leaves the record alone then. If the
// write fails, the record is freed when its TTL runs out. Release is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.halt()
	l.mu.Lock()
	st, err, w := l.state, l.err, l.last
	if st == held {
		l.state = released
	}
	l.mu.Unlock()
	switch st {
	case lost:
		return err
	case released:
		return nil
	}
	if _, _, err := l.write(ctx, w, true); err != nil {
		return fmt.Errorf("claim: release %s: %w", l.key, err)
	}
	l.log.Info("released")
	return nil
}

// written describes our last successful write.
type written struct {
	etag string    // its ETag: the IfMatch of the next write
	seq  uint64    // its seq
	sent time.Time // when it was sent: the lease runs out TTL later
}

// write rewrites our record with IfMatch on w.etag and returns the new last
// write. A failed compare whose current record is our own (an earlier write
// landed after its answer was lost) is retried on that record's ETag. foreign
// reports that someone else changed or removed the record; err then matches
// ErrLost. Only one write runs at a time: the renewal loop's, or Release's after
// halt.
func (l *Lease) write(ctx context.Context, w written, release bool) (next written, foreign bool, err error) {
	for range 2 {
		sent := l.cfg.Now()
		etag, err := l.objs.Put(ctx, l.key, l.body(w.seq+1, sent, release), objstore.Cond{IfMatch: w.etag})
		if err == nil {
			return written{etag, w.seq + 1, sent}, false, nil
		}
		if !errors.Is(err, objstore.ErrPreconditionFailed) {
			return w, false, err
		}
		body, cur, gerr := l.objs.Get(ctx, l.key)
		switch {
		case errors.Is(gerr, objstore.ErrNotFound):
			return w, true, fmt.Errorf("claim: %s was deleted by someone else: %w", l.key, ErrLost)
		case gerr != nil:
			return w, false, gerr
		}
		r, ok := decode(body)
		if !ok || r.Instance != l.inst || r.Released {
			return w, true, fmt.Errorf("claim: %s was taken over by host %s pid %d: %w", l.key, r.Host, r.PID, ErrLost)
		}
		// Our own write landed unseen. Its send time is unknown, so w.sent stays.
		w.etag, w.seq = cur, r.Seq
	}
	return w, false, fmt.Errorf("claim: %s changed twice under its owner: %w", l.key, objstore.ErrPreconditionFailed)
}

func (l *Lease) body(seq uint64, now time.Time, release bool) []byte {
	b, err := json.Marshal(record{
		Holder: l.holder, Host: l.cfg.Host, PID: l.cfg.PID, Proc: l.proc, Instance: l.inst,
		Seq: seq, RenewedAt: now.UTC(), TTLMillis: l.cfg.TTL.Milliseconds(), Released: release,
	})
	if err != nil {
		panic(err) // a record of strings and numbers always encodes
	}
	return b
}

// take makes the record ours, as the package doc describes, and starts the
// renewals. With wait false it fails with a *HeldError at once on a record that
// looks alive instead of watching it.
func (l *Lease) take(ctx context.Context, wait bool) error {
	for {
		body, etag, err := l.objs.Get(ctx, l.key)
		if errors.Is(err, objstore.ErrNotFound) {
			if err := l.claim(ctx, objstore.Cond{IfNoneMatch: true}, "created"); !errors.Is(err, objstore.ErrPreconditionFailed) {
				return err
			}
			continue // someone created it first: look at theirs
		}
		if err != nil {
			return fmt.Errorf("claim: read %s: %w", l.key, err)
		}
		r, ok := decode(body)
		how := ""
		switch {
		case ok && r.Released:
			how = "took released"
		case ok && deadHere(r, l.cfg.Host, l.proc):
			how = "took over from dead process"
		case !wait:
			return l.held(r, -1)
		default:
			var within time.Duration
			etag, r, within, err = l.watch(ctx, etag, r)
			switch {
			case err != nil:
				return err
			case etag == "":
				continue // deleted or released while we watched: start over
			case within >= 0:
				return l.held(r, within)
			}
			how = "took over expired"
		}
		if err := l.claim(ctx, objstore.Cond{IfMatch: etag}, how); !errors.Is(err, objstore.ErrPreconditionFailed) {
			return err
		}
		// Lost the swap: the holder renewed or another contender won. Look again.
	}
}

// claim writes our first record under cond and starts the renewals.
func (l *Lease) claim(ctx context.Context, cond objstore.Cond, how string) error {
	sent := l.cfg.Now()
	etag, err := l.objs.Put(ctx, l.key, l.body(1, sent, false), cond)
	if err != nil {
		if errors.Is(err, objstore.ErrPreconditionFailed) {
			return err
		}
		return fmt.Errorf("claim: write %s: %w", l.key, err)
	}
	l.mu.Lock()
	l.last = written{etag, 1, sent}
	l.mu.Unlock()
	l.log.Info("acquired", "how", how, "ttl", l.cfg.TTL)
	l.resume()
	return nil
}

// deadHere reports whether r was written by a process that no longer runs on this
// machine, which is named host and has the proc identity proc.
func deadHere(r record, host, proc string) bool {
	return proc != "" && r.Host == host && r.Proc == proc && processGone(r.PID)
}

func (l *Lease) held(r record, within time.Duration) error {
	return &HeldError{What: l.key, Holder: r.Holder, Host: r.Host, PID: r.PID, Within: within}
}

// watch polls the record holding etag for the longer of its TTL and ours. It
// returns:
//   - the same etag and within < 0 if the record did not change (the holder is dead);
//   - a new etag, its record and within >= 0 if the holder renewed: within bounds
//     the time since the renewal, by our clock;
//   - an empty etag if the record was deleted or released meanwhile.
func (l *Lease) watch(ctx context.Context, etag string, r record) (string, record, time.Duration, error) {
	ttl := max(l.cfg.TTL, time.Duration(r.TTLMillis)*time.Millisecond)
	poll := min(max(l.cfg.TTL/10, 5*time.Millisecond), time.Second)
	start := l.cfg.Now()
	last := start
	t := time.NewTimer(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", record{}, 0, fmt.Errorf("claim: waiting for %s: %w", l.key, ctx.Err())
		case <-t.C:
		}
		asked := l.cfg.Now()
		body, cur, err := l.objs.Get(ctx, l.key)
		now := l.cfg.Now()
		if errors.Is(err, objstore.ErrNotFound) {
			return "", record{}, 0, nil
		}
		if err != nil {
			return "", record{}, 0, fmt.Errorf("claim: read %s: %w", l.key, err)
		}
		if cur != etag {
			nr, ok := decode(body)
			if ok && nr.Released {
				return "", record{}, 0, nil
			}
			return cur, nr, now.Sub(last), nil
		}
		if now.Sub(start) >= ttl {
			return etag, r, -1, nil
		}
		last = asked // a renewal seen by the next poll happened after this one was sent
		t.Reset(min(poll, ttl-now.Sub(start)))
	}
}

// resume starts the renewal loop.
func (l *Lease) resume() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stop != nil || l.state != held {
		return
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.renew(l.stop, l.done)
}

// halt stops the renewal loop and waits for it to exit.
func (l *Lease) halt() {
	l.mu.Lock()
	stop, done := l.stop, l.done
	l.stop = nil
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// renew rewrites the record every RenewEvery until stop is closed or the lease is
// lost. A renewal that fails for an unavailable store is retried at the next tick;
// the lease is lost when TTL has passed since the last successful write was sent.
func (l *Lease) renew(stop, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-done:
		}
	}()
	t := time.NewTimer(l.cfg.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		w := l.last
		l.mu.Unlock()
		left := l.cfg.TTL - l.cfg.Now().Sub(w.sent)
		if left <= 0 {
			l.lose(fmt.Errorf("claim: %s not renewed for %s: %w", l.key, l.cfg.TTL, ErrLost))
			return
		}
		// The write must not outlive the lease: an answer after the deadline would
		// extend a lease that observers may already have taken over.
		wctx, wcancel := context.WithTimeout(ctx, left)
		next, foreign, err := l.write(wctx, w, false)
		wcancel()
		if foreign {
			l.lose(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			l.log.Warn("renewal failed", "err", err)
		}
		l.mu.Lock()
		l.last = next
		l.mu.Unlock()
		t.Reset(max(min(l.cfg.RenewEvery, l.cfg.TTL-l.cfg.Now().Sub(next.sent)), 0))
	}
}

func (l *Lease) lose(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != held {
		return
	}
	l.state, l.err = lost, err
	close(l.lost)
	l.log.Warn("lost", "err", err)
}
