package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Config configures a segment store. Zero fields take the defaults that
// EnsureDefaults documents.
type Config struct {
	// Objects holds the store's objects, already scoped to this node's
	// prefix: nothing else may write under it. Required. The store does not
	// close it.
	Objects objstore.Store

	// Location describes where the objects live (e.g. "s3://bucket/node1/");
	// it is only reported in Stats.
	Location string

	// CheckpointEvery is how many segments are written between index
	// checkpoints. Default 256. Recovery reads at most this many segments
	// after the checkpoint, and dead segments are deleted only after a
	// checkpoint, so fewer means faster opens and earlier space reclaim at
	// the cost of writing the whole index more often.
	CheckpointEvery int

	// CompactRatio is the fraction of live bytes below which a segment is
	// rewritten by compaction. Default 0.5. Higher reclaims space sooner at
	// the cost of rewriting more data.
	CompactRatio float64

	// CompactInterval is how often the background compactor looks for
	// segments to rewrite. Default 1 minute; negative disables background
	// compaction (Compact still works).
	CompactInterval time.Duration

	// CacheBytes bounds the value cache, which holds recently written and
	// read values so that repeated Gets skip the object store. Default
	// 64 MiB; negative disables it.
	CacheBytes int64

	// SegmentBytes is the size at which a segment stops taking more queued
	// batches; a single larger batch still makes one segment. Default
	// 16 MiB. Larger segments mean fewer objects per item under load.
	SegmentBytes int

	// Logger receives checkpoint, compaction and failure events. Nil
	// discards them.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = 256
	}
	if c.CompactRatio == 0 {
		c.CompactRatio = 0.5
	}
	if c.CompactInterval == 0 {
		c.CompactInterval = time.Minute
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 16 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.Objects == nil {
		errs = append(errs, errors.New("Objects is required"))
	}
	if c.CheckpointEvery < 1 {
		errs = append(errs, fmt.Errorf("CheckpointEvery (%d) must be >= 1", c.CheckpointEvery))
	}
	if c.CompactRatio <= 0 || c.CompactRatio >= 1 {
		errs = append(errs, fmt.Errorf("CompactRatio (%g) must be between 0 and 1, exclusive", c.CompactRatio))
	}
	if c.SegmentBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("SegmentBytes (%d) must be >= 1024", c.SegmentBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("segment: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
