// Package httpapi is Brainy's HTTP API v1 on fasthttp, the same on
// brainy-core and brainy-edge: routing, tenants and API keys, per-tenant
// rate limits, bounded JSON decoding, ETag and If-Match handling, the id
// of every POST (from its Idempotency-Key, so a retry stores nothing new:
// idempotency.go), the one
// mapping from item errors to statuses, /v1/metrics, Prometheus /metrics,
// /healthz and /readyz, and the HTTP server around it.
//
// It serves any Backend (item.API plus metrics and health): a core's
// cluster member, or an edge's upstream. It is not the edge cache: a
// Handler given a Cache (package edge's) asks it first for GETs and tells
// it about its writes, but freshness — pushed invalidations, versions
// that never go back — is the cache's business. It imports neither the
// transport nor core.
package httpapi
