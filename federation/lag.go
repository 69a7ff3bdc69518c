package federation

import (
	"slices"
	"sync"
	"time"

	"github.com/soullabs/brainy/core"
)

// lagSamples keeps the replication lag of the last values applied here
// from one region: how long after its write (its clock time, set where it
// was made) each value was applied in this region — DynamoDB's
// ReplicationLatency, measured where it ends. Clock offsets between the
// regions' hosts add to it (bounded by --max-clock-skew).
type lagSamples struct {
	mu   sync.Mutex
	ring [16384]time.Duration // guarded by mu
	n    int                  // samples written; guarded by mu
}

// add records the lag of each value, as of now.
func (s *lagSamples) add(values []core.RemoteValue, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range values {
		t := values[i].Time()
		if t == 0 || t > now.UnixNano() {
			continue
		}
		s.ring[s.n%len(s.ring)] = now.Sub(time.Unix(0, t))
		s.n++
	}
}

// quantiles returns the p50 and p99 of the samples kept (0 without any).
func (s *lagSamples) quantiles() (p50, p99 time.Duration) {
	s.mu.Lock()
	d := slices.Clone(s.ring[:min(s.n, len(s.ring))])
	s.mu.Unlock()
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// lagOf returns region's samples, creating them for a region seen first.
// The caller has checked that region is a member's.
func (f *Federation) lagOf(region string) *lagSamples {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.inLag[region]
	if s == nil && len(f.inLag) < core.MaxRegions {
		s = &lagSamples{}
		f.inLag[region] = s
	}
	return s
}
