// Package edge is brainy-edge: the HTTP API (package httpapi) served from
// a RAM cache in front of the regional cores, which it reaches over QUIC
// (package upstream). It holds the cache and its freshness rules (see
// docs/design/20261127_edge_cache_freshness.md: pushed invalidations,
// versions that never go back, stale answers while no core answers) and
// the assembly of an edge process (Config, New, Run).
//
// It is not the HTTP API itself — routing, tenants, limits and JSON are
// package httpapi's, which brainy-core serves without a cache — nor the
// choice of core, which is package upstream's.
package edge
