package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
)

// Config configures a Log. Zero fields take the defaults given.
type Config struct {
	// Dir is the directory the log's segments live in, on a local disk;
	// created if missing. The log owns it (it holds a lock on Dir/LOCK).
	// Required.
	Dir string
	// SegmentBytes is the size at which the log moves on to a new segment
	// file. Default 64 MiB, at least 4 KiB, at most 1 GiB. A segment is
	// deleted whole, so smaller segments give disk space back sooner;
	// each move costs two fsyncs, one of the directory, and writing the
	// checkpoint (some 20 bytes per group) into the new segment. A
	// segment exceeds it by at most one batch.
	SegmentBytes int64
	// RewriteSegments is how many segments the log may hold before a move
	// to a new segment copies the live entries of the groups that keep
	// the oldest segments alive into the new one, so that a group which
	// went idle (or writes rarely) with a few uncompacted entries cannot
	// keep every later segment on disk. Default 8 (512 MiB of segments by
	// default). Lower keeps less on disk and copies more.
	RewriteSegments int
	// RewriteBytes bounds the entry bytes one move to a new segment
	// copies, and the bytes copied to free any one old segment: a segment
	// pinned by more live entries than that waits for its groups to
	// compact instead (as busy groups soon do). Default SegmentBytes/4, at
	// most SegmentBytes/2, so that copying adds at most a third (a whole)
	// to what the log writes and never fills a new segment by itself.
	RewriteBytes int64
	// Logger receives the log's events (a torn tail truncated at Open,
	// segments created and deleted). Nil discards them.
	Logger *slog.Logger

	// fs replaces the local disk in tests.
	fs fileSystem
}

// DefaultConfig is the configuration of a log in dir with every default
// filled in.
func DefaultConfig(dir string) Config {
	c := Config{Dir: dir}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.RewriteSegments == 0 {
		c.RewriteSegments = 8
	}
	if c.RewriteBytes == 0 {
		c.RewriteBytes = c.SegmentBytes / 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.fs == nil {
		c.fs = osFS{}
	}
}

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if c.SegmentBytes < 4<<10 || c.SegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("SegmentBytes (%d) must be within [4 KiB, 1 GiB]", c.SegmentBytes))
	}
	if c.RewriteSegments < 2 {
		errs = append(errs, fmt.Errorf("RewriteSegments (%d) must be >= 2", c.RewriteSegments))
	}
	if c.RewriteBytes < 0 || c.RewriteBytes > c.SegmentBytes/2 {
		errs = append(errs, fmt.Errorf("RewriteBytes (%d) must be within [0, SegmentBytes/2]", c.RewriteBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("raftlog: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
