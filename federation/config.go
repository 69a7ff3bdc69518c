package federation

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/soullabs/brainy/cluster"
	"github.com/soullabs/brainy/cluster/membership"
	"github.com/soullabs/brainy/transport"
)

// DefaultPort is the federation gossip port (TCP and UDP) when
// Config.Gossip.BindPort is 0: next to the regional pool's 7946.
const DefaultPort = 7947

// Config configures a node's part in a federation. Name, Region, Cluster,
// Server, Client and Gossip.Meta are required; every other zero field
// takes the default in its comment.
type Config struct {
	// Name is the federation's: clusters join the same federation only
	// when they name the same one (it labels the federation's gossip).
	Name string
	// Region is this cluster's region, unique in the federation. It is
	// the origin of every write made here (core.Config.Region).
	Region string
	// Cluster is this node's regional cluster: the partitions it leads
	// stream their changes out, and batches from other regions go to the
	// leaders of their partitions through it.
	Cluster *cluster.Node
	// Server answers other regions' calls; Client makes calls to them.
	// Both carry the cluster's certificates: regions of a federation share
	// one CA (the same --cluster-secret), and only cores may call.
	Server *transport.Server
	Client *transport.Client
	// Gossip configures the federation's own memberlist pool, apart from
	// the regional one: one member per core of every region. Its Meta
	// (ID, QUICAddr, Region) is required; ClusterName is set from Name.
	// Zero timings take memberlist's WAN defaults (WANGossip), tuned for
	// round trips of tens to hundreds of milliseconds.
	Gossip membership.Config

	// BatchBytes bounds the item records of one batch sent to another
	// region. Default 256 KiB.
	BatchBytes int
	// MaxInFlight bounds the partitions sending to one region at once
	// (each with up to 8 batches in flight); a busy partition gives its
	// turn up every 200 ms. Default 16.
	MaxInFlight int
	// CallTimeout bounds one call to another region. Default 10 s.
	CallTimeout time.Duration
	// RetryInterval is the pause after a failed call before the partition
	// is tried again (the next region node, if several). Default 500 ms.
	RetryInterval time.Duration
	// RegionDeadAfter is how long a delete's tombstone is kept: every
	// region is taken to have received every delete older than it, so a
	// region away for longer must be resynced from empty storage when it
	// returns (its old values of items deleted meanwhile would otherwise
	// come back in it). Default 24 h.
	RegionDeadAfter time.Duration
	// CollectInterval is how often the partitions this node leads drop
	// their tombstones older than RegionDeadAfter. Default 1 min, or a
	// quarter of RegionDeadAfter if that is shorter (at least 100 ms).
	CollectInterval time.Duration
	// Logger receives the federation's events. Nil discards them.
	Logger *slog.Logger
}

// GossipClusterName is the gossip label of the federation name: pools of
// other federations (and regional pools) ignore its members.
func GossipClusterName(name string) string { return "brainy-federation/" + name }

// WANGossip fills the zero failure-detector timings of g with
// memberlist's DefaultWANConfig values: probes every 5 s with a 3 s
// timeout, suspicion ×6, gossip every 500 ms to 4 nodes, push/pull every
// 60 s, 30 s stream timeout.
func WANGossip(g *membership.Config) {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&g.ProbeInterval, 5*time.Second)
	set(&g.ProbeTimeout, min(3*time.Second, g.ProbeInterval*3/5))
	set(&g.GossipInterval, 500*time.Millisecond)
	set(&g.PushPullInterval, 60*time.Second)
	set(&g.TCPTimeout, 30*time.Second)
	if g.SuspicionMult == 0 {
		g.SuspicionMult = 6
	}
	if g.GossipNodes == 0 {
		g.GossipNodes = 4
	}
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.BatchBytes == 0 {
		c.BatchBytes = 256 << 10
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 16
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 500 * time.Millisecond
	}
	if c.RegionDeadAfter == 0 {
		c.RegionDeadAfter = 24 * time.Hour
	}
	if c.CollectInterval == 0 {
		c.CollectInterval = max(min(time.Minute, c.RegionDeadAfter/4), 100*time.Millisecond)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Gossip.BindPort == 0 {
		c.Gossip.BindPort = DefaultPort
	}
	c.Gossip.ClusterName = GossipClusterName(c.Name)
	off := false
	c.Gossip.Broadcast = &off // regions are far apart: no LAN beacons
	c.Gossip.Meta.Region = c.Region
	WANGossip(&c.Gossip)
}

// validName is what a federation or region name may be: it appears in
// item versions (core.FormatVersion), metric labels and log lines.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidName reports whether s may name a federation or a region: 1 to 32
// lowercase letters, digits and dashes, not starting with a dash.
func ValidName(s string) bool { return validName.MatchString(s) }

// Validate reports every problem with c at once. It does not change c.
func (c *Config) Validate() error {
	var errs []error
	if !ValidName(c.Name) {
		errs = append(errs, fmt.Errorf("federation name %q: want 1-32 of a-z, 0-9 and -", c.Name))
	}
	if !ValidName(c.Region) {
		errs = append(errs, fmt.Errorf("region %q: a federated cluster needs a region name of 1-32 of a-z, 0-9 and -", c.Region))
	}
	if c.Cluster == nil || c.Server == nil || c.Client == nil {
		errs = append(errs, errors.New("Cluster, Server and Client are required"))
	}
	if c.BatchBytes < 0 || c.MaxInFlight < 0 || c.CallTimeout < 0 || c.RetryInterval < 0 || c.RegionDeadAfter < 0 || c.CollectInterval < 0 {
		errs = append(errs, errors.New("BatchBytes, MaxInFlight, CallTimeout, RetryInterval, RegionDeadAfter and CollectInterval must not be negative"))
	}
	if err := c.Gossip.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("federation: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
