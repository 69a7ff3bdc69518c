// Package nodestats is the typed snapshot behind GET /v1/metrics: the shape
// of the original getMetrics() (nodes, shards, replication, operations,
// storage, cache), filled with what is true for the node that answers.
// Core fills it; the HTTP layer serialises it and turns it into Prometheus
// metrics.
package nodestats

// Snapshot is one point-in-time reading of a node.
type Snapshot struct {
	Nodes       Nodes       `json:"nodes"`
	Shards      Shards      `json:"shards"`
	Replication Replication `json:"replication"`
	Operations  Operations  `json:"operations"`
	Storage     Storage     `json:"storage"`
	Cache       Cache       `json:"cache"`
	// Partitions lists, in a cluster, every partition this node holds a
	// replica of, as its replica sees the group.
	Partitions []Partition `json:"partitions,omitempty"`
	// Federation is there when the node's cluster belongs to a federation.
	Federation *Federation `json:"federation,omitempty"`
	// Routing is an edge's choice of region, when the cores it reaches are
	// of a federation.
	Routing *Routing `json:"routing,omitempty"`
	// Sync is there when the node's cluster follows another (--sync-from).
	Sync *Sync `json:"sync,omitempty"`
	// Tuning is the node's profile and what self-tuning decided (a core in
	// a cluster).
	Tuning *Tuning `json:"tuning,omitempty"`
	// Vectors is a core's nearest-neighbour index, once a find by vector
	// asked for it.
	Vectors *Vectors `json:"vectors,omitempty"`
}

// Vectors describes a core's vector index (finds by near).
type Vectors struct {
	// State is building, ready, or over_budget (it outgrew Budget and was
	// dropped: finds scan until the node restarts with a larger budget).
	State string `json:"state"`
	// Vectors and Graphs count what it holds: a graph per tenant, type
	// and dimension.
	Vectors int `json:"vectors"`
	Graphs  int `json:"graphs"`
	// Bytes is its estimated memory, Budget its bound
	// (--vector-index-bytes).
	Bytes  int64 `json:"bytes"`
	Budget int64 `json:"budget"`
	// Builds counts builds from the store: the first, and one after each
	// time it fell too far behind the writes.
	Builds uint64 `json:"builds"`
	// Lagged counts finds that scanned because the index had not taken in
	// the writes before them in time (core.vectorCatchUp).
	Lagged uint64 `json:"lagged"`
}

// Tuning describes a core's profile (--profile) and, under auto, the
// settings it moved to and why.
type Tuning struct {
	// Profile is the configured profile: auto, balanced, read-heavy or
	// write-heavy. Active is the profile whose settings are in force (under
	// auto, the one the observed mix chose).
	Profile string `json:"profile"`
	Active  string `json:"active"`
	// Decisions counts the switches between profiles, each with Reason the
	// last one's (what was measured).
	Decisions uint64 `json:"decisions"`
	Reason    string `json:"reason,omitempty"`
	// ReadShare is the share of reads among the item operations of the
	// last window, HitRatio the record cache's hit ratio in it.
	ReadShare float64 `json:"readShare"`
	HitRatio  float64 `json:"hitRatio"`
	// CacheBytes is the record cache's bound the active profile sets.
	CacheBytes int64 `json:"cacheBytes"`
	// HotReads says whether hot items are cached on every node (leases);
	// FollowerReads whether linearizable reads use a local replica that
	// does not lead (a read-index round), FollowerReadsServed how many did.
	HotReads            bool   `json:"hotReads"`
	FollowerReads       bool   `json:"followerReads"`
	FollowerReadsServed uint64 `json:"followerReadsServed"`
	// HotKeys is how many items this node, as their leader, holds
	// leases on now; LeasesGranted, Invalidations and HotHits count the
	// leases it granted, the invalidations it sent before writes, and the
	// reads it answered from leases granted to it.
	HotKeys       int    `json:"hotKeys"`
	LeasesGranted uint64 `json:"leasesGranted"`
	Invalidations uint64 `json:"invalidations"`
	HotHits       uint64 `json:"hotHits"`
}

// Sync describes a blue/green sync as this node of the following (green)
// cluster sees it: for the blue partitions it pulls, those whose green
// owner partition it leads (every node of green reports its own).
type Sync struct {
	// From is the blue core this cluster follows (--sync-from).
	From string `json:"from"`
	// State is "copying" while one of this node's blue partitions is being
	// copied (or blue has not answered yet), "following" once every one
	// streams its changes.
	State string `json:"state"`
	// LagMs is how long green has lacked a change blue has, for the most
	// behind of this node's partitions; 0 when every one has applied all
	// that blue had at its last answer. While copying, the time since the
	// copy (re)started.
	LagMs float64 `json:"lag_ms"`
	// ItemsCopied counts the values the initial copies applied (kept
	// across restarts: the copy resumes); Partitions the blue partitions
	// this node pulls.
	ItemsCopied uint64 `json:"items_copied"`
	Partitions  int    `json:"partitions"`
}

// Federation describes the node's federation: its region and, as this
// node sees them, the others.
type Federation struct {
	Name    string   `json:"name"`
	Region  string   `json:"region"`
	Regions []Region `json:"regions"`
	// Replaced counts other regions' values that replaced this region's
	// here; Conflicts those concurrent with it (resolved by the later
	// clock); SkewRefused the batches refused because their clock was
	// ahead of this node's by more than --max-clock-skew; Received the
	// batches applied through this node; TombstonesCollected the
	// tombstones removed, RegionDeadAfter after their deletes, by the
	// partitions this node led.
	Replaced            uint64 `json:"replaced"`
	Conflicts           uint64 `json:"conflicts"`
	SkewRefused         uint64 `json:"skewRefused"`
	Received            uint64 `json:"received"`
	TombstonesCollected uint64 `json:"tombstonesCollected"`
}

// Region is another region of the federation.
type Region struct {
	Name    string `json:"name"`
	Nodes   int    `json:"nodes"`
	Healthy bool   `json:"healthy"`
	// RTTMs is the last round trip to it; LagMs how old the oldest change
	// of this node's partitions not yet applied there is (0: none).
	RTTMs float64 `json:"rtt_ms"`
	LagMs float64 `json:"lag_ms"`
	// InLagP50Ms and InLagP99Ms: how long after their writes that region's
	// values were applied here (the last 16384 applied through this node).
	InLagP50Ms float64 `json:"in_lag_p50_ms"`
	InLagP99Ms float64 `json:"in_lag_p99_ms"`
	// Sent counts the values this node sent that it applied; Resyncs the
	// partitions resynced to it by digest, because this node's raft log no
	// longer held the region's position (its logs keep --log-keep entries).
	Sent    uint64 `json:"sent"`
	Resyncs uint64 `json:"resyncs"`
	// ResyncSent counts the values of Sent that resyncs sent: the items of
	// the ranges whose digests differed.
	ResyncSent uint64 `json:"resyncSent"`
	// BytesRaw and BytesSent count the batches' bytes before and after
	// compression (S2).
	BytesRaw  uint64 `json:"bytesRaw"`
	BytesSent uint64 `json:"bytesSent"`
}

// Partition is one partition's raft group as a replica sees it.
type Partition struct {
	ID       int      `json:"id"`
	Leader   string   `json:"leader"`
	Voters   []string `json:"voters"`
	Learners []string `json:"learners,omitempty"`
	Applied  uint64   `json:"applied"`
}

// Nodes describes cluster membership as this node sees it.
type Nodes struct {
	Total   int    `json:"total"`
	Healthy int    `json:"healthy"`
	Self    string `json:"self"`
	Leader  string `json:"leader"`
	List    []Node `json:"list"`
}

// Node is one member.
type Node struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Address string `json:"address,omitempty"`
	Healthy bool   `json:"healthy"`
	Shards  int    `json:"shards"`
	// RTTMs (an edge's view of a core) is the smoothed round trip to it,
	// in milliseconds, from probes every second; 0 before the first.
	RTTMs float64 `json:"rttMs,omitempty"`
}

// Shards describes partitions.
type Shards struct {
	Total int `json:"total"`
	// Leaders counts partitions this node leads.
	Leaders int `json:"leaders"`
	// Replicas counts partitions this node holds a replica of.
	Replicas int `json:"replicas"`
	// Local is Replicas, under the scaling guide's name.
	Local int `json:"local"`
}

// Replication describes how writes are copied.
type Replication struct {
	Factor int `json:"factor"`
	// Mode is "none" for a single node, "raft" once replicated.
	Mode string `json:"mode"`
	// LagEntries is the largest number of log entries any follower is behind.
	LagEntries uint64 `json:"lagEntries"`
	// Lag is LagEntries, under the scaling guide's name.
	Lag uint64 `json:"lag"`
	// Elections counts the leaderships this node won since it started.
	Elections uint64 `json:"elections"`
	// SnapshotsSent and SnapshotsInstalled count raft snapshots: a replica
	// too far behind (or new) copies its partition from the leader.
	SnapshotsSent      uint64 `json:"snapshotsSent"`
	SnapshotsInstalled uint64 `json:"snapshotsInstalled"`
	// SnapshotBytes counts the bytes received installing snapshots.
	SnapshotBytes uint64 `json:"snapshotBytes"`
	// Quiesced is how many of this node's partition replicas are quiesced
	// now: idle, sending no heartbeats until something happens to them.
	Quiesced int `json:"quiesced"`
	// RejectedMessages counts raft messages refused: batches whose sender
	// was not the member it named, messages no correct peer sends (raft
	// would panic on them, or take a term or a leader from them it must
	// not), and committed conf changes raft could not apply. Non-zero means
	// a broken or hostile peer.
	RejectedMessages uint64 `json:"rejectedMessages"`
	// FeedLapses (an edge) counts cores' change feeds that went silent past
	// their lease: each made the edge's cache distrust all it held.
	FeedLapses uint64 `json:"feedLapses"`
}

// Operations counts requests served since start.
type Operations struct {
	// Reads and Writes are the totals: gets and lists, and adds, updates
	// and deletes (Totals fills them in).
	Reads   uint64 `json:"reads"`
	Writes  uint64 `json:"writes"`
	Adds    uint64 `json:"adds"`
	Gets    uint64 `json:"gets"`
	Updates uint64 `json:"updates"`
	Deletes uint64 `json:"deletes"`
	Lists   uint64 `json:"lists"`
	// IndexLookups counts partitions a find listed through the metadata
	// index (core/metaindex.go) instead of every item of the type.
	IndexLookups uint64 `json:"indexLookups"`
	// Errors counts operations that failed for a reason other than the
	// caller's (storage or internal failures), not 4xx answers.
	Errors uint64 `json:"errors"`
	// HandlerPanics counts requests and pushes from other nodes and edges
	// (QUIC) whose handler panicked: each was recovered, logged with its
	// stack and answered as an internal error. Non-zero is a bug, or a peer
	// sending what a bug does not survive.
	HandlerPanics uint64 `json:"handlerPanics"`
	// Forwarded counts requests this node sent on to the partition's
	// leader on another node (one extra hop). A router that knows the
	// leaders (an edge with the pushed topology) makes it stay at zero.
	Forwarded uint64 `json:"forwarded"`
	// Commits counts durable storage commits, and StoredWrites the item
	// records they wrote: StoredWrites / Commits is the mean group-commit
	// batch size.
	Commits      uint64 `json:"commits"`
	StoredWrites uint64 `json:"storedWrites"`
}

// Totals sets Reads and Writes from the per-operation counts.
func (o *Operations) Totals() {
	o.Reads = o.Gets + o.Lists
	o.Writes = o.Adds + o.Updates + o.Deletes
}

// Storage describes the local store.
type Storage struct {
	Backend  string `json:"backend"`
	Location string `json:"location,omitempty"`
	Items    uint64 `json:"items"`
	Bytes    int64  `json:"bytes"`
	// Used is the bytes the store occupies (Bytes), and Available the bytes
	// free on the volume holding the node's local data (the hot tier's,
	// when tiered); nil for a store with no local volume (an object store
	// or memory).
	Used      int64  `json:"used"`
	Available *int64 `json:"available,omitempty"`
	// Tiers describes a tiered store's tiers, topmost first.
	Tiers []Tier `json:"tiers,omitempty"`
	// Mover is a tiered store's background mover.
	Mover *Mover `json:"mover,omitempty"`
	// ObjectRequests counts the requests made to object stores, summed
	// over the node's segment logs (nil without one).
	ObjectRequests *ObjectRequests `json:"objectRequests,omitempty"`
}

// Tier is one tier of a tiered store, as tiers/tiered's Store.TierStats
// reports it.
type Tier struct {
	// Name is "hot", "warm" or "cold".
	Name string `json:"name"`
	// Backend and Location are the tier store's own.
	Backend  string `json:"backend"`
	Location string `json:"location,omitempty"`
	// Bytes is the tier store's LiveBytes.
	Bytes int64 `json:"bytes"`
	// Keys is the number of keys the tier held when the mover last listed
	// it, or -1 if it has not (cold is never listed).
	Keys int64 `json:"keys"`
	// Demoted counts keys moved from this tier to the one below since Open.
	Demoted uint64 `json:"demoted"`
	// Promoted counts keys moved from this tier to hot since Open.
	Promoted uint64 `json:"promoted"`
}

// Mover is the progress of a tiered store's mover.
type Mover struct {
	Running   bool   `json:"running"`
	Passes    uint64 `json:"passes"`
	LastMoved int64  `json:"lastMoved"`
	Moved     int64  `json:"moved"`
	LastError string `json:"lastError,omitempty"`
}

// ObjectRequests counts object-store requests.
type ObjectRequests struct {
	Puts      int64 `json:"puts"`
	Gets      int64 `json:"gets"`
	RangeGets int64 `json:"rangeGets"`
	Deletes   int64 `json:"deletes"`
	Lists     int64 `json:"lists"`
}

// Cache describes the node's read cache (zero when it has none).
type Cache struct {
	Enabled bool    `json:"enabled"`
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	Ratio   float64 `json:"hitRatio"`
	Bytes   int64   `json:"bytes"`
	// Capacity is the cache's bound in bytes, which self-tuning moves.
	Capacity int64 `json:"capacity"`
}

// Routing is the region an edge sends its requests to, and how it sees
// each region it knows.
type Routing struct {
	Region  string        `json:"region"`
	Regions []RouteRegion `json:"regions"`
	// Rescued counts reads also sent to another region (or core) because
	// the core they waited on stopped heartbeating its feed.
	Rescued uint64 `json:"rescued"`
}

// RouteRegion is one region as an edge sees it: its cores the topology
// names, how many of them answer, and the nearest one's smoothed round trip.
type RouteRegion struct {
	Name  string  `json:"name"`
	Nodes int     `json:"nodes"`
	Up    int     `json:"up"`
	RTTMs float64 `json:"rttMs"`
}
