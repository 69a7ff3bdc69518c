package tiered

import (
	"errors"
	"fmt"
	"github.com/soullabs/brainy/internal/diskfree"
	"log/slog"
	"time"

	"github.com/soullabs/brainy/tiers"
)

// Config configures a tiered Store. Hot and Warm are required; every other
// zero field is a working default.
type Config struct {
	// Hot is the tier every write goes to and every read tries first:
	// normally a local disk store. Required. The Store closes it.
	Hot tiers.Store
	// Warm holds keys demoted from hot: normally an object store. Required.
	// The Store closes it.
	Warm tiers.Store
	// Cold, if set, holds keys demoted from warm after ColdAfter. The Store
	// closes it.
	Cold tiers.Store

	// Demotable reports whether key may leave hot. Default: every key.
	// Keys the caller reads on every start or on every write (core's
	// metadata, partition state and type index) should stay hot. Apply
	// deletes a key Demotable refuses from hot only, since it cannot be
	// below: so Demotable may accept more keys over the life of the tiers,
	// never fewer. It is called from Apply and the mover, concurrently, and
	// must be fast and not block.
	Demotable func(key []byte) bool
	// DemoteAfter is how long a key must go unread and unwritten before it
	// moves from hot to warm. Default 24h. Shorter frees local disk sooner
	// at the cost of more reads going to warm.
	DemoteAfter time.Duration
	// ColdAfter is how long a key must go unread and unwritten before it
	// moves from warm to cold. Default 30 days. Used only with Cold.
	ColdAfter time.Duration
	// HotMaxBytes bounds hot's LiveBytes: above it, a pass demotes the least
	// recently used keys, regardless of DemoteAfter, until the excess has
	// moved. Default 0: no bound.
	HotMaxBytes int64
	// HotMinFreeBytes is the free space to keep on hot's disk: below it, a
	// pass demotes the least recently used keys until that much would be
	// free. Default 0: not checked. Needs FreeBytes or HotDir.
	HotMinFreeBytes int64
	// FreeBytes reports the free space of hot's disk. Default: statfs of
	// HotDir, when HotDir is set.
	FreeBytes func() (int64, error)
	// HotDir is hot's data directory, for the default FreeBytes. Optional.
	HotDir string

	// Interval is how often the mover runs a pass. Default 1m. Negative
	// disables the mover goroutine; passes then run only through MoveNow.
	Interval time.Duration
	// MaxMoveRate bounds the keys moved per second (demotions by the mover;
	// promotions by readers are not paced). Default 5000. Negative means no
	// bound. Lower keeps more disk and network for foreground requests;
	// higher drains a full hot disk sooner.
	MaxMoveRate int

	// Logger receives the mover's events. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for access times and idle ages. Default time.Now.
	Now func() time.Time
}

// Defaults of the Config fields.
const (
	DefaultDemoteAfter = 24 * time.Hour
	DefaultColdAfter   = 30 * 24 * time.Hour
	DefaultInterval    = time.Minute
	DefaultMaxMoveRate = 5000
)

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Demotable == nil {
		c.Demotable = func([]byte) bool { return true }
	}
	if c.DemoteAfter == 0 {
		c.DemoteAfter = DefaultDemoteAfter
	}
	if c.ColdAfter == 0 {
		c.ColdAfter = DefaultColdAfter
	}
	if c.FreeBytes == nil && c.HotDir != "" {
		dir := c.HotDir
		c.FreeBytes = func() (int64, error) { return diskfree.Bytes(dir) }
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxMoveRate == 0 {
		c.MaxMoveRate = DefaultMaxMoveRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.Hot == nil {
		errs = append(errs, errors.New("Hot is required"))
	}
	if c.Warm == nil {
		errs = append(errs, errors.New("Warm is required"))
	}
	if c.Hot != nil && (c.Hot == c.Warm || c.Hot == c.Cold) || c.Warm != nil && c.Warm == c.Cold {
		errs = append(errs, errors.New("Hot, Warm and Cold must be distinct stores"))
	}
	if c.DemoteAfter < 0 {
		errs = append(errs, fmt.Errorf("DemoteAfter (%s) must be >= 0", c.DemoteAfter))
	}
	if c.ColdAfter < 0 {
		errs = append(errs, fmt.Errorf("ColdAfter (%s) must be >= 0", c.ColdAfter))
	}
	if c.HotMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("HotMaxBytes (%d) must be >= 0", c.HotMaxBytes))
	}
	if c.HotMinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("HotMinFreeBytes (%d) must be >= 0", c.HotMinFreeBytes))
	}
	if c.HotMinFreeBytes > 0 && c.FreeBytes == nil && c.HotDir == "" {
		errs = append(errs, errors.New("HotMinFreeBytes needs FreeBytes or HotDir"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("tiered: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
