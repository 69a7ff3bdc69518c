//go:build race

package cluster

// raceEnabled: under the race detector QUIC's work per packet grows so
// much that a call carrying megabytes can miss raft's call deadline every
// time; tests that replicate items of the largest size skip.
const raceEnabled = true
