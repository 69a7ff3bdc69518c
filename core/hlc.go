package core

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Clock is a hybrid logical clock (Kulkarni et al., "Logical Physical
// Clocks", 2014) in nanoseconds: each reading is the wall clock, unless
// that would not exceed the last reading or the latest timestamp observed
// from another region, in which case it is one more than those. Readings
// are therefore strictly increasing on a node, close to real time, and
// later than every timestamp the node has seen — so a write made after
// another region's write was applied here is ordered after it, whatever
// the two wall clocks say.
//
// One nanosecond is the logical step: a node would need a billion readings
// in one second for its clock to run ahead of real time by a second.
//
// Item versions are derived from it (see record.hlc): a version is the
// same in every region for the same write, and the conflict rule between
// regions compares them.
type Clock struct {
	wall    func() time.Time
	maxSkew time.Duration
	last    atomic.Int64
}

// ErrClockSkew: a timestamp from another node is further ahead of this
// node's wall clock than the allowed skew. It is refused, so that a node
// whose clock runs fast cannot make its writes win every conflict, or drag
// every other clock into its future.
var ErrClockSkew = errors.New("core: timestamp beyond the allowed clock skew")

// NewClock returns a clock reading wall (time.Now when nil) that refuses
// observed timestamps more than maxSkew ahead of it (0: 500 ms).
func NewClock(wall func() time.Time, maxSkew time.Duration) *Clock {
	if wall == nil {
		wall = time.Now
	}
	if maxSkew <= 0 {
		maxSkew = DefaultMaxClockSkew
	}
	return &Clock{wall: wall, maxSkew: maxSkew}
}

// DefaultMaxClockSkew is the largest lead over this node's wall clock that
// a timestamp from another node may have.
const DefaultMaxClockSkew = 500 * time.Millisecond

// Now returns a reading greater than every earlier one and every observed
// timestamp.
func (c *Clock) Now() int64 {
	wall := c.wall().UnixNano()
	for {
		last := c.last.Load()
		next := max(wall, last+1)
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// Observe takes in a timestamp made by another node: later readings
// exceed it. A timestamp more than the allowed skew ahead of the wall
// clock is refused with ErrClockSkew and leaves the clock unchanged.
func (c *Clock) Observe(ts int64) error {
	wall := c.wall().UnixNano()
	if ahead := time.Duration(ts - wall); ahead > c.maxSkew {
		return fmt.Errorf("%w: %v ahead of this node's clock, at most %v allowed", ErrClockSkew, ahead.Round(time.Millisecond), c.maxSkew)
	}
	for {
		last := c.last.Load()
		if ts <= last || c.last.CompareAndSwap(last, ts) {
			return nil
		}
	}
}

// MaxSkew is how far ahead of the wall clock an observed timestamp may be.
func (c *Clock) MaxSkew() time.Duration { return c.maxSkew }
