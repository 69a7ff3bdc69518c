package edge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// cacheCollector exports the edge cache's counters at scrape time.
type cacheCollector struct{ c *Cache }

// RegisterMetrics exports the cache's counters on reg (the registry the
// HTTP API serves at /metrics).
func (c *Cache) RegisterMetrics(reg prometheus.Registerer) error {
	if err := reg.Register(&cacheCollector{c: c}); err != nil {
		return fmt.Errorf("edge: registering cache metrics: %w", err)
	}
	return nil
}

var (
	descCacheReqs  = prometheus.NewDesc("brainy_edge_cache_requests_total", "GETs answered, by cache outcome.", []string{"result"}, nil)
	descCacheInval = prometheus.NewDesc("brainy_edge_cache_invalidations_total", "Pushed or local changes that dropped a cached answer.", nil, nil)
	descCacheReset = prometheus.NewDesc("brainy_edge_cache_resets_total", "Times every cached answer became stale (changes may have been missed).", nil, nil)
	descCacheEvict = prometheus.NewDesc("brainy_edge_cache_evictions_total", "Answers evicted for space.", nil, nil)
	descCacheBytes = prometheus.NewDesc("brainy_edge_cache_bytes", "Bytes of cached answers.", nil, nil)
)

func (cc *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheReqs, descCacheInval, descCacheReset, descCacheEvict, descCacheBytes} {
		ch <- d
	}
}

func (cc *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := cc.c.Counters()
	ch <- prometheus.MustNewConstMetric(descCacheReqs, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(descCacheReqs, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(descCacheReqs, prometheus.CounterValue, float64(s.Stale), "stale")
	ch <- prometheus.MustNewConstMetric(descCacheInval, prometheus.CounterValue, float64(s.Invalidations))
	ch <- prometheus.MustNewConstMetric(descCacheReset, prometheus.CounterValue, float64(s.Resets))
	ch <- prometheus.MustNewConstMetric(descCacheEvict, prometheus.CounterValue, float64(s.Evictions))
	ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(s.Bytes))
}
