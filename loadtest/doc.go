// Package loadtest is Brainy's HTTP load generator: it drives a target with a
// closed-loop or an open (constant-rate) workload and records every latency in
// HDR histograms, so a stalled server cannot hide its stalls.
//
// # Models
//
// Closed loop (Config.Rate == 0): Config.Connections workers each send a
// request, wait for the answer and send the next one. Latency is measured from
// the moment each request was actually sent, as wrk and hey do. This finds the
// maximum throughput but under-reports latency when the server stalls, because
// a stalled worker stops sending (coordinated omission).
//
// Open model (Config.Rate > 0): request i is due at start + i/Rate whatever
// happened before. Any free connection takes the next due request; latency is
// measured from that intended send time, so time spent queued behind a stall
// is part of the latency. A request sent more than Config.LateAfter after its
// intended time is counted as late; a request that was due before the run
// stopped but never sent is counted as dropped. Result.Service holds the
// latency measured from the actual send, for comparison.
//
// # Usage contract
//
// Build a Config (DefaultConfig or LocalConfig, then override fields), call
// EnsureDefaults and Validate, then Run. Run blocks until the duration or
// request limit is reached or its context is cancelled (Ctrl-C), and returns a
// Result describing what actually ran, also when interrupted. Run is safe to
// call from any goroutine; it starts Config.Connections worker goroutines and
// one collector goroutine, and all of them have exited when it returns.
// Config.Progress, when set, is called from the collector goroutine once per
// second.
//
// Results are plain data: WriteText, WriteJSON and WriteHTML render them;
// DecodeResult reads JSON back; Merge combines results from several generator
// machines by merging their histograms (never their percentiles); Compare runs
// two targets alternately and Comparison.WriteText prints each figure with the
// ratio.
//
// # Safety
//
// Validate refuses targets that are not loopback (127.0.0.0/8, ::1,
// localhost) unless Config.AllowRemote is set, and every run is bounded by a
// duration and/or a request count.
package loadtest
