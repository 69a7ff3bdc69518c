package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// httpMetrics are the request metrics. Children are resolved per request
// by label lookup, which does not allocate.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// backendGet times the backend reads behind cache misses: on an edge,
	// the round trip to a core.
	backendGet prometheus.Histogram
}

func newHTTPMetrics(reg *prometheus.Registry, be Backend) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brainy_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "brainy_http_request_duration_seconds",
			Help:    "Time from request parsed to response ready, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
	}
	m.backendGet = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "brainy_edge_miss_backend_seconds",
		Help:    "Time a cache miss waited for the backend (on an edge: the call to a core).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.backendGet, &nodeCollector{be: be},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: registering metrics: %w", err)
		}
	}
	return m, nil
}

// statusText caches the code label values, so a request formats none.
var statusText = func() map[int]string {
	m := map[int]string{}
	for c := 100; c < 600; c++ {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

func (m *httpMetrics) observe(route string, status int, start time.Time) {
	code, ok := statusText[status]
	if !ok {
		code = "other"
	}
	m.requests.WithLabelValues(route, code).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// nodeCollector turns the backend's typed snapshot into Prometheus
// metrics at scrape time.
type nodeCollector struct{ be Backend }

var (
	descOps     = prometheus.NewDesc("brainy_core_operations_total", "Item operations served, by kind.", []string{"op"}, nil)
	descErrors  = prometheus.NewDesc("brainy_core_errors_total", "Operations that failed for a server-side reason.", nil, nil)
	descCommits = prometheus.NewDesc("brainy_core_commits_total", "Durable storage commits (group commits).", nil, nil)
	descWrites  = prometheus.NewDesc("brainy_core_committed_writes_total", "Writes made durable; divided by commits, the mean batch size.", nil, nil)
	descForward = prometheus.NewDesc("brainy_core_forwarded_total", "Requests sent on to the partition's leader on another node (an extra hop).", nil, nil)
	descLapses  = prometheus.NewDesc("brainy_edge_feed_lapses_total", "Cores' change feeds that went silent past their lease (each reset the cache).", nil, nil)
	descRTT     = prometheus.NewDesc("brainy_edge_core_rtt_milliseconds", "An edge's smoothed round trip to each core, from probes every second.", []string{"core"}, nil)
	descItems   = prometheus.NewDesc("brainy_storage_items", "Items stored on this node.", nil, nil)
	descBytes   = prometheus.NewDesc("brainy_storage_bytes", "Bytes the store occupies.", []string{"backend"}, nil)
	descHealthy = prometheus.NewDesc("brainy_node_healthy", "1 when this node is healthy (a core: it can take writes; an edge: a core answers it).", nil, nil)
	descAvail   = prometheus.NewDesc("brainy_storage_available_bytes", "Bytes free on the volume holding the node's local data.", nil, nil)
	descShards  = prometheus.NewDesc("brainy_core_partitions", "Partitions held by this node.", nil, nil)

	descRouteRTT    = prometheus.NewDesc("brainy_edge_region_rtt_milliseconds", "An edge's recent round trip (median of its last three probes) to the nearest answering core of each region.", []string{"region"}, nil)
	descRescued     = prometheus.NewDesc("brainy_edge_reads_rescued_total", "Reads an edge also sent to another region because the core they waited on stopped heartbeating.", nil, nil)
	descRouteChosen = prometheus.NewDesc("brainy_edge_region_chosen", "1 for the region an edge sends its requests to.", []string{"region"}, nil)
	descRegionUp    = prometheus.NewDesc("brainy_federation_region_healthy", "1 when the last call to the region succeeded.", []string{"region"}, nil)
	descRegionRTT   = prometheus.NewDesc("brainy_federation_region_rtt_milliseconds", "The last round trip to a region.", []string{"region"}, nil)
	descRegionLag   = prometheus.NewDesc("brainy_federation_region_lag_milliseconds", "Age of the oldest change of this node's partitions the region has not applied.", []string{"region"}, nil)
	descRegionSent  = prometheus.NewDesc("brainy_federation_values_sent_total", "Item values this node sent that the region applied.", []string{"region"}, nil)
	descFedEvents   = prometheus.NewDesc("brainy_federation_values_total", "Other regions' values applied here, by outcome: replaced (newer), conflict (concurrent); batches refused for clock skew; tombstones collected.", []string{"outcome"}, nil)

	descNodes         = prometheus.NewDesc("brainy_cluster_nodes", "Members of the node's cluster, by state: total (known) and healthy.", []string{"state"}, nil)
	descLeaders       = prometheus.NewDesc("brainy_core_partition_leaders", "Partitions this node leads.", nil, nil)
	descLagEntries    = prometheus.NewDesc("brainy_replication_lag_entries", "The most raft log entries any follower of this node's partitions is behind.", nil, nil)
	descElections     = prometheus.NewDesc("brainy_replication_elections_total", "Leader elections of the partitions this node holds.", nil, nil)
	descSnapshots     = prometheus.NewDesc("brainy_replication_snapshots_total", "Partition snapshots, by direction: sent and installed.", []string{"direction"}, nil)
	descSnapBytes     = prometheus.NewDesc("brainy_replication_snapshot_bytes_total", "Bytes received while installing snapshots.", nil, nil)
	descQuiesced      = prometheus.NewDesc("brainy_replication_quiesced_partitions", "Partition replicas quiesced here: idle, sending no heartbeats.", nil, nil)
	descRejected      = prometheus.NewDesc("brainy_replication_rejected_messages_total", "Raft messages refused: a sender not who it claims, or not a member.", nil, nil)
	descCacheOps      = prometheus.NewDesc("brainy_cache_lookups_total", "Record cache lookups, by result: hit and miss.", []string{"result"}, nil)
	descCacheBytes    = prometheus.NewDesc("brainy_cache_bytes", "Bytes the record cache holds.", nil, nil)
	descTierBytes     = prometheus.NewDesc("brainy_tier_bytes", "Bytes in each tier of a tiered store.", []string{"tier"}, nil)
	descTierMoves     = prometheus.NewDesc("brainy_tier_moves_total", "Items moved out of (demoted) or back into (promoted) each tier.", []string{"tier", "direction"}, nil)
	descSyncFollowing = prometheus.NewDesc("brainy_sync_following", "1 once every blue partition this node pulls streams its changes, 0 while one is being copied (--sync-from).", []string{"from"}, nil)
	descSyncLag       = prometheus.NewDesc("brainy_sync_lag_milliseconds", "How long this green node has lacked a change blue has (0: caught up).", []string{"from"}, nil)
	descSyncCopied    = prometheus.NewDesc("brainy_sync_items_copied_total", "Values the initial copy of blue's partitions applied here.", []string{"from"}, nil)
	descVectors       = prometheus.NewDesc("brainy_vector_index_vectors", "Vectors in the node's nearest-neighbour index.", nil, nil)
	descVectorBytes   = prometheus.NewDesc("brainy_vector_index_bytes", "Estimated memory of the node's nearest-neighbour index.", nil, nil)
	descVectorReady   = prometheus.NewDesc("brainy_vector_index_ready", "1 when finds by vector use the index (0: it is being built, or outgrew --vector-index-bytes, and they scan).", nil, nil)
	descVectorBuilds  = prometheus.NewDesc("brainy_vector_index_builds_total", "Builds of the index from the store: the first, then one each time it fell too far behind the writes.", nil, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOps, descErrors, descCommits, descWrites, descForward, descLapses, descRTT, descItems, descBytes, descHealthy, descAvail, descShards,
		descRegionUp, descRegionRTT, descRegionLag, descRegionSent, descFedEvents, descSyncFollowing, descSyncLag, descSyncCopied, descRouteRTT, descRouteChosen, descRescued,
		descNodes, descLeaders, descLagEntries, descElections, descSnapshots, descSnapBytes, descRejected, descQuiesced, descCacheOps, descCacheBytes, descTierBytes, descTierMoves,
		descVectors, descVectorBytes, descVectorReady, descVectorBuilds} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.be.Metrics()
	o := s.Operations
	for op, v := range map[string]uint64{"add": o.Adds, "get": o.Gets, "update": o.Updates, "delete": o.Deletes, "list": o.Lists} {
		ch <- prometheus.MustNewConstMetric(descOps, prometheus.CounterValue, float64(v), op)
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(o.Errors))
	ch <- prometheus.MustNewConstMetric(descCommits, prometheus.CounterValue, float64(o.Commits))
	ch <- prometheus.MustNewConstMetric(descWrites, prometheus.CounterValue, float64(o.StoredWrites))
	ch <- prometheus.MustNewConstMetric(descForward, prometheus.CounterValue, float64(o.Forwarded))
	ch <- prometheus.MustNewConstMetric(descLapses, prometheus.CounterValue, float64(s.Replication.FeedLapses))
	for _, n := range s.Nodes.List {
		if n.RTTMs > 0 {
			ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, n.RTTMs, n.Address)
		}
	}
	ch <- prometheus.MustNewConstMetric(descItems, prometheus.GaugeValue, float64(s.Storage.Items))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(s.Storage.Bytes), s.Storage.Backend)
	ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, float64(btoi(c.be.Healthy())))
	if a := s.Storage.Available; a != nil {
		ch <- prometheus.MustNewConstMetric(descAvail, prometheus.GaugeValue, float64(*a))
	}
	ch <- prometheus.MustNewConstMetric(descShards, prometheus.GaugeValue, float64(s.Shards.Replicas))
	ch <- prometheus.MustNewConstMetric(descLeaders, prometheus.GaugeValue, float64(s.Shards.Leaders))
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(s.Nodes.Total), "total")
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(s.Nodes.Healthy), "healthy")
	r := s.Replication
	ch <- prometheus.MustNewConstMetric(descLagEntries, prometheus.GaugeValue, float64(r.LagEntries))
	ch <- prometheus.MustNewConstMetric(descElections, prometheus.CounterValue, float64(r.Elections))
	ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(r.SnapshotsSent), "sent")
	ch <- prometheus.MustNewConstMetric(descSnapshots, prometheus.CounterValue, float64(r.SnapshotsInstalled), "installed")
	ch <- prometheus.MustNewConstMetric(descSnapBytes, prometheus.CounterValue, float64(r.SnapshotBytes))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(r.RejectedMessages))
	ch <- prometheus.MustNewConstMetric(descQuiesced, prometheus.GaugeValue, float64(r.Quiesced))
	if s.Cache.Enabled {
		ch <- prometheus.MustNewConstMetric(descCacheOps, prometheus.CounterValue, float64(s.Cache.Hits), "hit")
		ch <- prometheus.MustNewConstMetric(descCacheOps, prometheus.CounterValue, float64(s.Cache.Misses), "miss")
		ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(s.Cache.Bytes))
	}
	if v := s.Vectors; v != nil {
		ready := 0.0
		if v.State == "ready" {
			ready = 1
		}
		ch <- prometheus.MustNewConstMetric(descVectors, prometheus.GaugeValue, float64(v.Vectors))
		ch <- prometheus.MustNewConstMetric(descVectorBytes, prometheus.GaugeValue, float64(v.Bytes))
		ch <- prometheus.MustNewConstMetric(descVectorReady, prometheus.GaugeValue, ready)
		ch <- prometheus.MustNewConstMetric(descVectorBuilds, prometheus.CounterValue, float64(v.Builds))
	}
	for _, t := range s.Storage.Tiers {
		ch <- prometheus.MustNewConstMetric(descTierBytes, prometheus.GaugeValue, float64(t.Bytes), t.Name)
		ch <- prometheus.MustNewConstMetric(descTierMoves, prometheus.CounterValue, float64(t.Demoted), t.Name, "demoted")
		ch <- prometheus.MustNewConstMetric(descTierMoves, prometheus.CounterValue, float64(t.Promoted), t.Name, "promoted")
	}
	if r := s.Routing; r != nil {
		ch <- prometheus.MustNewConstMetric(descRescued, prometheus.CounterValue, float64(r.Rescued))
		for _, rr := range r.Regions {
			chosen := 0.0
			if rr.Name == r.Region {
				chosen = 1
			}
			ch <- prometheus.MustNewConstMetric(descRouteRTT, prometheus.GaugeValue, rr.RTTMs, rr.Name)
			ch <- prometheus.MustNewConstMetric(descRouteChosen, prometheus.GaugeValue, chosen, rr.Name)
		}
	}
	if f := s.Federation; f != nil {
		for _, r := range f.Regions {
			up := 0.0
			if r.Healthy {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descRegionUp, prometheus.GaugeValue, up, r.Name)
			ch <- prometheus.MustNewConstMetric(descRegionRTT, prometheus.GaugeValue, r.RTTMs, r.Name)
			ch <- prometheus.MustNewConstMetric(descRegionLag, prometheus.GaugeValue, r.LagMs, r.Name)
			ch <- prometheus.MustNewConstMetric(descRegionSent, prometheus.CounterValue, float64(r.Sent), r.Name)
		}
		ch <- prometheus.MustNewConstMetric(descFedEvents, prometheus.CounterValue, float64(f.Replaced), "replaced")
		ch <- prometheus.MustNewConstMetric(descFedEvents, prometheus.CounterValue, float64(f.Conflicts), "conflict")
		ch <- prometheus.MustNewConstMetric(descFedEvents, prometheus.CounterValue, float64(f.SkewRefused), "skew_refused")
		ch <- prometheus.MustNewConstMetric(descFedEvents, prometheus.CounterValue, float64(f.TombstonesCollected), "tombstone_collected")
	}
	if y := s.Sync; y != nil {
		following := 0.0
		if y.State == "following" {
			following = 1
		}
		ch <- prometheus.MustNewConstMetric(descSyncFollowing, prometheus.GaugeValue, following, y.From)
		ch <- prometheus.MustNewConstMetric(descSyncLag, prometheus.GaugeValue, y.LagMs, y.From)
		ch <- prometheus.MustNewConstMetric(descSyncCopied, prometheus.CounterValue, float64(y.ItemsCopied), y.From)
	}
}

func marshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
