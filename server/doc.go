// Package server assembles a brainy-core node from the packages that do
// the work, and runs it: storage (tiers/backend), cluster credentials
// (transport/pki), the QUIC server and client (transport), gossip
// membership (cluster/membership), the cluster member with its raft
// groups (cluster, core), and the HTTP API (httpapi).
//
// It holds the policy between them, which no single package owns: which
// TLS credentials a node uses and where they live, how long a new node
// looks for a cluster before founding one, how a lost QUIC connection
// feeds the failure detector, and the order of shutdown — HTTP requests
// finish, leaderships are handed over, the node leaves the gossip, peers'
// calls finish, the raft groups stop, the store closes.
//
// cmd/brainy-core only maps flags onto Config and calls New and Run;
// tests and benchmarks start nodes in-process the same way.
package server
