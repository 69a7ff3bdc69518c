package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// A TTL of one hour makes any success that would need to wait it out impossible
// within a test: a test using it proves the record was taken without waiting.
const hour = time.Hour

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func cfg(id string, ttl time.Duration) Config {
	return Config{NodeID: id, LeaseConfig: LeaseConfig{TTL: ttl}}
}

func mustAcquire(t *testing.T, objs objstore.Store, c Config) *Claim {
	t.Helper()
	cl, err := Acquire(testCtx(t), objs, c)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", c.NodeID, err)
	}
	t.Cleanup(func() { cl.halt() })
	return cl
}

// waitLost fails the test if l is not lost within a generous bound (a hang guard,
// not a timing assertion).
func waitLost(t *testing.T, l *Lease) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("Lost did not fire")
	}
	if !errors.Is(l.Err(), ErrLost) || l.Held() {
		t.Fatalf("after Lost: Err = %v, Held = %v; want ErrLost, false", l.Err(), l.Held())
	}
}

// deadPID returns the pid of a process of ours that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func readRecord(t *testing.T, objs objstore.Store, key string) (record, string) {
	t.Helper()
	body, etag, err := objs.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	r, ok := decode(body)
	if !ok {
		t.Fatalf("record %s does not decode: %s", key, body)
	}
	return r, etag
}

func TestAcquireAnyDistinct(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		var (
			wg     sync.WaitGroup
			claims [2]*Claim
			errs   [2]error
		)
		for i := range claims {
			wg.Go(func() { claims[i], errs[i] = Acquire(testCtx(t), objs, cfg("", time.Second)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Acquire %d: %v", i, err)
			}
			defer claims[i].halt()
		}
		got := []string{claims[0].Prefix(), claims[1].Prefix()}
		if got[0] == got[1] || !strings.HasPrefix(got[0], "node-") || !strings.HasPrefix(got[1], "node-") {
			t.Fatalf("prefixes %q, want two distinct node-<id>/", got)
		}
		for _, c := range claims {
			if r, _ := readRecord(t, objs, ClaimsPrefix+"node-"+c.NodeID()); r.Instance != c.inst {
				t.Errorf("record of node-%s belongs to instance %s, not its claim's %s", c.NodeID(), r.Instance, c.inst)
			}
		}
	})
}

func TestAcquireSameIDRace(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		const n = 8
		var (
			wg     sync.WaitGroup
			claims [n]*Claim
			errs   [n]error
		)
		for i := range n {
			wg.Go(func() { claims[i], errs[i] = Acquire(testCtx(t), objs, cfg("7", time.Second)) })
		}
		wg.Wait()
		host, _ := os.Hostname()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
				defer claims[i].halt()
				if claims[i].Prefix() != "node-7/" || !claims[i].Held() {
					t.Errorf("winner: Prefix %q Held %v", claims[i].Prefix(), claims[i].Held())
				}
				continue
			}
			var he *HeldError
			if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
				t.Errorf("loser %d: %v, want a HeldError", i, err)
				continue
			}
			if he.Host != host || he.PID != os.Getpid() || he.What != "node-7/" {
				t.Errorf("loser %d names %s pid %d for %s, want %s pid %d for node-7/", i, he.Host, he.PID, he.What, host, os.Getpid())
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d Acquire calls won node-7, want exactly 1", won, n)
		}
	})
}

func TestAcquireLiveOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		owner := mustAcquire(t, objs, cfg("1", 600*time.Millisecond))
		_, err := Acquire(testCtx(t), objs, cfg("1", 600*time.Millisecond))
		want := fmt.Sprintf("claim: node-1/ is held by host %s pid %d (renewed within the last ", owner.cfg.Host, os.Getpid())
		if !errors.Is(err, ErrHeld) || !strings.HasPrefix(err.Error(), want) ||
			!strings.HasSuffix(err.Error(), "; is another brainy-core running with this storage?") {
			t.Fatalf("second Acquire: %v\nwant %q...", err, want)
		}
		select {
		case <-owner.Lost():
			t.Fatalf("owner lost its claim to a failed Acquire: %v", owner.Err())
		default:
		}
		if r, _ := readRecord(t, objs, ClaimsPrefix+"node-1"); r.Instance != owner.inst {
			t.Fatal("the record no longer belongs to the owner")
		}
	})
}

func TestTakeoverAfterCrash(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		old := mustAcquire(t, objs, cfg("1", 500*time.Millisecond))
		old.halt() // the process freezes: no renewals, no Release
		succ := mustAcquire(t, objs, cfg("1", 500*time.Millisecond))
		if succ.Prefix() != "node-1/" {
			t.Fatalf("successor got %s", succ.Prefix())
		}
		old.resume() // the frozen process wakes up and tries to renew
		waitLost(t, old.Lease)
		if r, _ := readRecord(t, objs, ClaimsPrefix+"node-1"); r.Instance != succ.inst || !succ.Held() {
			t.Fatal("the old owner's renewal overwrote the successor's record")
		}
		if err := old.Release(testCtx(t)); !errors.Is(err, ErrLost) {
			t.Fatalf("Release after loss: %v, want ErrLost", err)
		}
	})
}

func TestLostWhenChanged(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		owner := mustAcquire(t, objs, cfg("1", time.Second))
		_, etag := readRecord(t, objs, ClaimsPrefix+"node-1")
		other, _ := json.Marshal(record{Host: "elsewhere", PID: 42, Instance: "other", TTLMillis: 1000})
		if _, err := objs.Put(testCtx(t), ClaimsPrefix+"node-1", other, objstore.Cond{IfMatch: etag}); err != nil {
			// The owner renewed in between; its next renewal is what the test needs
			// to see fail, so try once more on the fresh ETag.
			_, etag = readRecord(t, objs, ClaimsPrefix+"node-1")
			if _, err := objs.Put(testCtx(t), ClaimsPrefix+"node-1", other, objstore.Cond{IfMatch: etag}); err != nil {
				t.Fatal(err)
			}
		}
		waitLost(t, owner.Lease)
		if !strings.Contains(owner.Err().Error(), "taken over by host elsewhere pid 42") {
			t.Errorf("Err = %v, want it to name the new holder", owner.Err())
		}
		if err := owner.Release(testCtx(t)); !errors.Is(err, ErrLost) {
			t.Fatalf("Release after loss: %v, want ErrLost", err)
		}
		if r, _ := readRecord(t, objs, ClaimsPrefix+"node-1"); r.Instance != "other" || r.Released {
			t.Fatal("Release after loss touched the new holder's record")
		}
	})
}

func TestDeadPIDSameHost(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		pid := deadPID(t)
		crashed := cfg("1", hour)
		crashed.PID = pid
		mustAcquire(t, objs, crashed).halt()

		// Same host, same pid namespace, pid gone: taken at once despite the TTL.
		c := mustAcquire(t, objs, cfg("1", hour))
		if r, _ := readRecord(t, objs, ClaimsPrefix+"node-1"); r.Instance != c.inst || r.PID != os.Getpid() {
			t.Fatalf("record after takeover: %+v", r)
		}
	})
}

func TestDeadPIDOtherHostWaits(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		crashed := cfg("1", hour)
		crashed.PID, crashed.Host = deadPID(t), "elsewhere"
		mustAcquire(t, objs, crashed).halt()

		// The pid means nothing for another host: Acquire must wait out the TTL.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if c, err := Acquire(ctx, objs, cfg("1", hour)); !errors.Is(err, context.DeadlineExceeded) {
			if c != nil {
				c.halt()
			}
			t.Fatalf("Acquire of another host's record: %v, want it to wait until the context ends", err)
		}
	})
}

func TestAcquireAnyPreference(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		mustAcquire(t, objs, cfg("1", hour)) // live
		dead := cfg("2", hour)
		dead.PID = deadPID(t)
		mustAcquire(t, objs, dead).halt() // this host, process gone
		away := cfg("3", hour)
		away.PID, away.Host = deadPID(t), "elsewhere"
		mustAcquire(t, objs, away).halt() // another host: looks alive from here
		mustAcquire(t, objs, cfg("named", hour))

		if c := mustAcquire(t, objs, cfg("", hour)); c.NodeID() != "2" {
			t.Fatalf("first Acquire took node-%s, want this host's dead slot node-2", c.NodeID())
		}
		if c := mustAcquire(t, objs, cfg("", hour)); c.NodeID() != "4" {
			t.Fatalf("second Acquire took node-%s, want the lowest absent slot node-4", c.NodeID())
		}
	})
}

func TestReleaseFrees(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		a := mustAcquire(t, objs, cfg("1", hour))
		mustAcquire(t, objs, cfg("2", hour))
		if err := a.Release(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if a.Held() || a.Err() != nil {
			t.Fatalf("after Release: Held %v Err %v", a.Held(), a.Err())
		}
		select {
		case <-a.Lost():
			t.Fatal("Release closed Lost")
		default:
		}
		if err := a.Release(testCtx(t)); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		// Another host takes the released slot without waiting out the hour.
		other := cfg("1", hour)
		other.Host = "elsewhere"
		mustAcquire(t, objs, other).Release(testCtx(t))
		// And a numbered Acquire takes the lowest released slot.
		if c := mustAcquire(t, objs, cfg("", hour)); c.NodeID() != "1" {
			t.Fatalf("Acquire after Release took node-%s, want node-1", c.NodeID())
		}
	})
}

func TestLeaseRace(t *testing.T) {
	eachStore(t, func(t *testing.T, objs objstore.Store) {
		const n = 8
		var (
			wg     sync.WaitGroup
			leases [n]*Lease
			errs   [n]error
		)
		for i := range n {
			wg.Go(func() {
				leases[i], errs[i] = AcquireLease(testCtx(t), objs, LeaderKey, fmt.Sprintf("n%d", i), LeaseConfig{TTL: time.Second})
			})
		}
		wg.Wait()
		var winner *Lease
		for i, l := range leases {
			if l != nil {
				if winner != nil {
					t.Fatalf("two leaders: %s and %s", winner.holder, l.holder)
				}
				winner = l
				defer l.halt()
			} else if !errors.Is(errs[i], ErrHeld) {
				t.Fatalf("contender %d: %v, want ErrHeld", i, errs[i])
			}
		}
		if winner == nil || !winner.Held() {
			t.Fatal("no leader")
		}
		for i, err := range errs {
			var he *HeldError
			if errors.As(err, &he) && (he.Holder != winner.holder || he.What != LeaderKey) {
				t.Errorf("contender %d names %q holding %s, want %q holding %s", i, he.Holder, he.What, winner.holder, LeaderKey)
			}
		}
		if err := winner.Release(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		next, err := AcquireLease(testCtx(t), objs, LeaderKey, "next", LeaseConfig{TTL: hour})
		if err != nil {
			t.Fatalf("AcquireLease after Release: %v", err)
		}
		next.halt()
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"defaults", Config{}, ""},
		{"explicit", Config{NodeID: "eu-1.a_b"}, ""},
		{"slash", Config{NodeID: "a/b"}, "NodeID"},
		{"dotdot", Config{NodeID: ".."}, "NodeID"},
		{"short ttl", cfg("", time.Second), ""},
		{"renew >= ttl", Config{LeaseConfig: LeaseConfig{TTL: time.Second, RenewEvery: time.Second}}, "RenewEvery"},
		{"negative ttl", Config{LeaseConfig: LeaseConfig{TTL: -time.Second}}, "TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			c.EnsureDefaults()
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}
