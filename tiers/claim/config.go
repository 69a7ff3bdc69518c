package claim

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// LeaseConfig configures a Lease. The zero value of every field means its default;
// EnsureDefaults fills them in and Validate checks the result.
type LeaseConfig struct {
	// TTL is how long a record stays owned without a renewal. Default 15s. A
	// shorter TTL frees a crashed owner's record sooner but makes a stalled owner
	// (GC pause, slow store) lose it more easily; taking over a live-looking record
	// waits one TTL.
	TTL time.Duration

	// RenewEvery is the interval between renewals. Default TTL/3, so that two
	// renewals can fail before the record is lost. Must be less than TTL.
	RenewEvery time.Duration

	// Host is the name of this machine written into records. Default os.Hostname().
	// Records of the same Host (and proc identity) whose process is gone are taken
	// over at once.
	Host string

	// PID is the process id written into records. Default os.Getpid().
	PID int

	// Logger receives acquisitions, losses and releases. Nil discards them.
	Logger *slog.Logger

	// Now is the clock for renewal deadlines, observation windows and the
	// renewed_at stamp. Default time.Now. It must advance with real time (timers
	// are real); its monotonic reading is what makes the windows skew-proof.
	Now func() time.Time
}

// EnsureDefaults fills zero fields with their defaults.
func (c *LeaseConfig) EnsureDefaults() {
	if c.TTL == 0 {
		c.TTL = 15 * time.Second
	}
	if c.RenewEvery == 0 {
		c.RenewEvery = c.TTL / 3
	}
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.PID == 0 {
		c.PID = os.Getpid()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *LeaseConfig) problems() []error {
	var errs []error
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("TTL (%s) must be > 0", c.TTL))
	}
	if c.RenewEvery <= 0 || c.RenewEvery >= c.TTL {
		errs = append(errs, fmt.Errorf("RenewEvery (%s) must be > 0 and < TTL (%s)", c.RenewEvery, c.TTL))
	}
	if c.Host == "" {
		errs = append(errs, errors.New("Host is required (os.Hostname failed)"))
	}
	if c.PID <= 0 {
		errs = append(errs, fmt.Errorf("PID (%d) must be > 0", c.PID))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("Logger is nil (call EnsureDefaults)"))
	}
	if c.Now == nil {
		errs = append(errs, errors.New("Now is nil (call EnsureDefaults)"))
	}
	return errs
}

// Validate reports every problem with c at once. It does not change c.
func (c *LeaseConfig) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return fmt.Errorf("claim: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Config configures Acquire: the node id to claim and the lease settings of its
// claim record.
type Config struct {
	// NodeID is the id to claim, so the node owns "node-<NodeID>/". Default "": take
	// a numbered slot ("1", "2", ...) as the package doc describes. An explicit id
	// is 1-64 characters of [A-Za-z0-9._-], not "." or "..".
	NodeID string

	LeaseConfig
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() { c.LeaseConfig.EnsureDefaults() }

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	errs := c.problems()
	if c.NodeID != "" && !validID(c.NodeID) {
		errs = append(errs, fmt.Errorf("NodeID (%q) must be 1-64 characters of [A-Za-z0-9._-], not \".\" or \"..\"", c.NodeID))
	}
	if len(errs) > 0 {
		return fmt.Errorf("claim: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
