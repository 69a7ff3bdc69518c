// Package tuning holds brainy-core's profiles — complete sets of the
// settings that trade reads against writes, in one place, as memberlist
// has DefaultLANConfig and DefaultWANConfig — and the Tuner that, under
// the auto profile, moves a node between them as its traffic changes.
//
// The Tuner is a pure state machine: the node feeds it one Sample per
// window (Observe) and applies the profile it returns. It switches only
// after the mix has stayed past a threshold for Confirm windows in a row,
// and the thresholds to enter and to leave a profile are apart
// (hysteresis), so a steady mix near a threshold never flaps.
package tuning

import (
	"fmt"
	"time"
)

// Names of the profiles (--profile).
const (
	Auto       = "auto"
	Balanced   = "balanced"
	ReadHeavy  = "read-heavy"
	WriteHeavy = "write-heavy"
)

// Profile is one complete set of tunable settings.
type Profile struct {
	// Name is Balanced, ReadHeavy or WriteHeavy.
	Name string
	// CacheBytes bounds the record cache each node keeps of the items it
	// reads and writes.
	CacheBytes int64
	// HotReads caches the hottest items on every node: a node that does
	// not lead an item's partition asks its leader for a lease with the
	// item and answers reads from it until the lease ends; the leader
	// invalidates every lease on an item before it writes the item, so
	// reads stay linearizable (see package cluster, leases.go).
	HotReads bool
	// FollowerReads answers a linearizable read of an item whose
	// partition has a replica here, but not its leader, from that replica
	// after a read-index round through the leader (raft's follower read:
	// a few bytes per driver cycle for every read of the cycle, instead of
	// forwarding each read with its answer).
	FollowerReads bool
	// LeaseDuration is how long such a lease lasts. A new leader of a
	// partition, which cannot know the leases its predecessor granted,
	// holds the partition's writes this long after taking over (only while
	// HotReads is on).
	LeaseDuration time.Duration
	// HotShare is the share of a leader's reads one item must take, over
	// the last two windows, to be hot (leased): 1/HotShare items at most.
	HotShare float64
}

// Profiles. Balanced is what brainy-core always did: the default cache,
// every read that is not local forwarded to the partition's leader.
// ReadHeavy quadruples the cache, caches hot items on every node and reads
// from local replicas;
// WriteHeavy keeps the default cache and no leases, so no write ever waits
// for an invalidation.
func Profiles() map[string]Profile {
	return map[string]Profile{
		Balanced:   {Name: Balanced, CacheBytes: 64 << 20, LeaseDuration: 500 * time.Millisecond, HotShare: 1.0 / 1024},
		ReadHeavy:  {Name: ReadHeavy, CacheBytes: 256 << 20, HotReads: true, FollowerReads: true, LeaseDuration: 500 * time.Millisecond, HotShare: 1.0 / 1024},
		WriteHeavy: {Name: WriteHeavy, CacheBytes: 64 << 20, LeaseDuration: 500 * time.Millisecond, HotShare: 1.0 / 1024},
	}
}

// Lookup returns the profile called name; auto starts as Balanced.
func Lookup(name string) (Profile, error) {
	if name == Auto {
		name = Balanced
	}
	p, ok := Profiles()[name]
	if !ok {
		return Profile{}, fmt.Errorf("profile %q: want auto, balanced, read-heavy or write-heavy", name)
	}
	return p, nil
}

// String prints every setting, for the start-up log.
func (p Profile) String() string {
	return fmt.Sprintf("%s: cache %d MiB, hot reads %v (leases %v, an item hot at %.3f%% of reads), follower reads %v",
		p.Name, p.CacheBytes>>20, p.HotReads, p.LeaseDuration, 100*p.HotShare, p.FollowerReads)
}

// Sample is one window of a node's traffic.
type Sample struct {
	Reads, Writes uint64 // item reads and writes the node answered
	// CacheHits and CacheMisses are the record cache's in the window.
	CacheHits, CacheMisses uint64
}

// ReadShare is the share of reads among the window's operations (0 when
// there were none).
func (s Sample) ReadShare() float64 {
	if s.Reads+s.Writes == 0 {
		return 0
	}
	return float64(s.Reads) / float64(s.Reads+s.Writes)
}

// HitRatio is the record cache's hit ratio in the window (1 when unused).
func (s Sample) HitRatio() float64 {
	if s.CacheHits+s.CacheMisses == 0 {
		return 1
	}
	return float64(s.CacheHits) / float64(s.CacheHits+s.CacheMisses)
}

// Thresholds of the Tuner, as shares of reads among operations.
// Entering a profile takes a mix past its Enter threshold; leaving it, one
// back past its Leave threshold, further toward balanced.
const (
	ReadHeavyEnter  = 0.90
	ReadHeavyLeave  = 0.80
	WriteHeavyEnter = 0.50
	WriteHeavyLeave = 0.60
	// MinOps is the fewest operations in a window that count: an idle
	// node keeps its profile.
	MinOps = 100
	// Confirm is how many windows in a row must agree before a switch.
	Confirm = 2
)

// Tuner chooses the profile of a node running auto.
type Tuner struct {
	active    string
	candidate string // the profile the last windows point to
	streak    int    // windows in a row pointing to candidate
	decisions uint64
	reason    string
	last      Sample
}

// NewTuner returns a Tuner starting at Balanced.
func NewTuner() *Tuner { return &Tuner{active: Balanced} }

// Observe takes one window and returns the profile to be in, and whether
// that is a change (then Reason says why).
func (t *Tuner) Observe(s Sample) (string, bool) {
	t.last = s
	if s.Reads+s.Writes < MinOps {
		t.candidate, t.streak = "", 0
		return t.active, false
	}
	want := t.want(s.ReadShare())
	if want == t.active {
		t.candidate, t.streak = "", 0
		return t.active, false
	}
	if want != t.candidate {
		t.candidate, t.streak = want, 0
	}
	t.streak++
	if t.streak < Confirm {
		return t.active, false
	}
	t.reason = fmt.Sprintf("%s → %s: reads %.1f%% of %d operations for %d windows, cache hit ratio %.1f%%",
		t.active, want, 100*s.ReadShare(), s.Reads+s.Writes, t.streak, 100*s.HitRatio())
	t.active, t.candidate, t.streak = want, "", 0
	t.decisions++
	return t.active, true
}

// want is the profile a window's read share points to from the active
// one: past an Enter threshold into a profile, or back past its Leave
// threshold out of it.
func (t *Tuner) want(share float64) string {
	switch t.active {
	case ReadHeavy:
		if share < ReadHeavyLeave {
			return t.fromBalanced(share)
		}
		return ReadHeavy
	case WriteHeavy:
		if share >= WriteHeavyLeave {
			return t.fromBalanced(share)
		}
		return WriteHeavy
	}
	return t.fromBalanced(share)
}

func (t *Tuner) fromBalanced(share float64) string {
	switch {
	case share >= ReadHeavyEnter:
		return ReadHeavy
	case share < WriteHeavyEnter:
		return WriteHeavy
	}
	return Balanced
}

// Active returns the profile in force.
func (t *Tuner) Active() string { return t.active }

// Decisions returns the switches made, and the reason of the last.
func (t *Tuner) Decisions() (uint64, string) { return t.decisions, t.reason }

// Last returns the last window observed.
func (t *Tuner) Last() Sample { return t.last }
