#!/usr/bin/env bash
# Profile benchmark: brainy-core clusters on 127.0.0.91-94 of this machine,
# under brainy-loadtest's engine (the loadtest package, run by the driver).
#
# Builds brainy-core and the driver (bench/profile), then runs the driver,
# which starts and stops every server itself and measures:
#   1. profile: a read-heavy zipfian load (theta 0.99, 95% GET / 5% PUT,
#      default consistency) through all 3 nodes of a fresh 3-node cluster,
#      configuration A (extra brainy-core flags BENCH_A_ARGS) against
#      configuration B (BENCH_B_ARGS), alternating A,B,A,B in one run, each
#      on fresh data preloaded with BENCH_ITEMS items; the same unreported
#      warm-up before each measured load (B may tune itself during it).
#      Per run: req/s, p50, p99; B/A ratios (goal: >= 1.3x req/s and a
#      lower p99); each node's "tuning" section of /v1/metrics after every
#      B run, if it has one;
#   2. reader: a read-only zipfian load of ?consistency=stale GETs through
#      3 voters, then a fourth node with --role reader joins and the same
#      load (same total connections) runs through all 4: read req/s and
#      p99 before and after.
# The markdown report goes to stdout (and results.md); progress to stderr.
#
# Usage: scripts/bench-profile.sh     (or: make bench-profile)
#   e.g. BENCH_A_ARGS="" BENCH_B_ARGS="" BENCH_ITEMS=20000 BENCH_DURATION=10 \
#        BENCH_WARMUP=5 BENCH_ROUNDS=1 scripts/bench-profile.sh
#
# Settings (environment):
#   BENCH_PARTS        parts to run: profile,reader               (both)
#   BENCH_A_ARGS       configuration A's extra brainy-core flags,
#                      split on spaces          (default "--profile balanced")
#   BENCH_B_ARGS       configuration B's        (default "--profile auto")
#                      (set either to "" for none)
#   BENCH_ROUNDS       A,B pairs                             (default 2)
#   BENCH_ITEMS        items preloaded, the loads' key space (default 100000)
#   BENCH_VALUE_SIZE   JSON body size of each item in bytes  (default 200)
#   BENCH_DURATION     seconds of each measured load         (default 30)
#   BENCH_WARMUP       seconds of warm-up before each load   (default 20)
#   BENCH_CONNECTIONS  load connections in all, split evenly over the
#                      nodes the load goes through           (default 48)
#   BENCH_ENTRY        nodes the profile load goes through: 3 spreads
#                      it, 1 sends it all to the first node  (default 3)
#   BENCH_MAX_RUN      bound on the driver's run             (default 20m)
#   BENCH_BRAINY_REF   build brainy-core from this commit instead of
#                      the work tree (e.g. HEAD)
#   BENCH_RESULTS_DIR  where the report and server logs go
#                      (default: a new temporary directory)
#   BENCH_TMPDIR       where data directories go; a real disk for
#                      durable numbers (default $TMPDIR or /tmp)
#
# Only 127.0.0.91 to 127.0.0.94 are used; a node whose ports are taken is
# not started. Only processes this script started are stopped.

set -euo pipefail

PARTS="${BENCH_PARTS:-profile,reader}"
A_ARGS="${BENCH_A_ARGS-"--profile balanced"}"
B_ARGS="${BENCH_B_ARGS-"--profile auto"}"
ROUNDS="${BENCH_ROUNDS:-2}"
ITEMS="${BENCH_ITEMS:-100000}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-200}"
DURATION="${BENCH_DURATION:-30}"
WARMUP="${BENCH_WARMUP:-20}"
CONNECTIONS="${BENCH_CONNECTIONS:-48}"
ENTRY="${BENCH_ENTRY:-3}"
MAX_RUN="${BENCH_MAX_RUN:-20m}"
BRAINY_REF="${BENCH_BRAINY_REF:-}"
TMP_BASE="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

export LC_ALL=C

BENCH_NAME=bench-profile
# shellcheck source=scripts/bench/lib.sh disable=SC2034
source "$REPO_ROOT/scripts/bench/lib.sh"

main() {
	driver_prepare
	command -v go >/dev/null || die "go is not on PATH (needed to build brainy-core)"
	build_driver profile

	local data="$WORK_DIR/data"
	{
		echo "Command: \`scripts/bench-profile.sh\` (\`make bench-profile\`), brainy-core $BRAINY_VERSION ($(go version | awk '{ print $3 }')); BENCH_A_ARGS=\"$A_ARGS\" BENCH_B_ARGS=\"$B_ARGS\" BENCH_ITEMS=$ITEMS BENCH_VALUE_SIZE=$VALUE_SIZE BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_ROUNDS=$ROUNDS BENCH_CONNECTIONS=$CONNECTIONS BENCH_ENTRY=$ENTRY"
		echo "Machine: $(nproc) vCPU (only $(nproc) cores: servers and load generator share them), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; data on $(stat -f -c %T "$WORK_DIR") ($(df -P "$WORK_DIR" | awk 'NR == 2 { print $1 }'))"
		echo
	} >"$RESULTS_DIR/results.md"
	run_driver "$WORK_DIR/bin/bench-profile" -brainy-core "$WORK_DIR/bin/brainy-core" -work-dir "$data" -keep \
		-parts "$PARTS" -a-args "$A_ARGS" -b-args "$B_ARGS" -rounds "$ROUNDS" -items "$ITEMS" \
		-value-size "$VALUE_SIZE" -duration "${DURATION}s" -warmup "${WARMUP}s" \
		-connections "$CONNECTIONS" -entry "$ENTRY" -max-run "$MAX_RUN"
	# Keep the servers' logs with the report.
	finish_driver "$data" "report and server logs" '*.log'
}

main "$@"
