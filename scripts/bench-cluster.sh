#!/usr/bin/env bash
# Cluster benchmark: brainy-core as a 3-node raft cluster, side by side with
# a 3-member etcd 3.4 cluster, all processes on 127.0.0.x of this machine.
#
# Builds brainy-core and the driver (bench/cluster), then runs the driver,
# which starts and stops every server itself and measures:
#   1. failover: SIGKILL of a partition's leader while PUTs aimed at that
#      partition go through another node; time from the kill to the first
#      PUT sent after it that succeeds (p50/p99/max over BENCH_FAILOVERS
#      kills, each followed by a restart of the killed node and a wait for
#      a healthy cluster);
#   2. replicated durable PUT throughput and latency, brainy (3 nodes,
#      through node 1) against etcd (3 members, default fsync, through its
#      leader's HTTP/JSON gateway), the same wrk load for both
#      (scripts/bench/kv.lua, modes brainy-put and etcd-put);
#   3. rebalance: a fourth node joins 3 nodes holding BENCH_ITEMS items;
#      time until every partition has the voters placement gives it among
#      4 nodes and no learners, with the latency of a light paced
#      foreground load (reads and writes) during the move.
# The markdown report goes to stdout (and results.md); progress to stderr.
#
# Usage: scripts/bench-cluster.sh     (or: make bench-cluster)
#
# Settings (environment):
#   BENCH_PARTS            parts to run: failover,throughput,rebalance (all)
#   BENCH_FAILOVERS        leaders killed                        (default 20)
#   BENCH_DURATION         seconds per measured wrk run          (default 20)
#   BENCH_CONNECTIONS      wrk connections                       (default 64)
#   BENCH_THREADS          wrk threads                           (default 2)
#   BENCH_VALUE_SIZE       value size in bytes                   (default 100)
#   BENCH_ITEMS            items held when the fourth node joins (default 100000)
#   BENCH_FOREGROUND_RATE  foreground req/s during the rebalance (default 200)
#   BENCH_FIRST_IP         last octet of the first 127.0.0.x used: brainy
#                          nodes take it to +3, etcd members +10 to +12
#                          (default 41)
#   BENCH_MAX_RUN          bound on the driver's run             (default 25m)
#   BENCH_BRAINY_REF       build brainy-core from this commit instead of
#                          the work tree (e.g. HEAD)
#   BENCH_RESULTS_DIR      where the report, wrk outputs and server logs go
#                          (default: a new temporary directory)
#   BENCH_TMPDIR           where data directories go; must be a real disk
#                          for durable numbers to mean anything
#                          (default $TMPDIR or /tmp)
#
# Missing tools (wrk, etcd-server) are installed with apt-get. Only
# processes this script started are stopped.

set -euo pipefail

PARTS="${BENCH_PARTS:-failover,throughput,rebalance}"
FAILOVERS="${BENCH_FAILOVERS:-20}"
DURATION="${BENCH_DURATION:-20}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-100}"
ITEMS="${BENCH_ITEMS:-100000}"
FOREGROUND_RATE="${BENCH_FOREGROUND_RATE:-200}"
FIRST_IP="${BENCH_FIRST_IP:-41}"
MAX_RUN="${BENCH_MAX_RUN:-25m}"
BRAINY_REF="${BENCH_BRAINY_REF:-}"
TMP_BASE="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LUA_SCRIPT="$REPO_ROOT/scripts/bench/kv.lua"

export LC_ALL=C

BENCH_NAME=bench-cluster
# shellcheck source=scripts/bench/lib.sh disable=SC2034
source "$REPO_ROOT/scripts/bench/lib.sh"

# ensure_tools installs the Debian packages of any missing command.
ensure_tools() {
	local -A pkg_of=([wrk]=wrk [etcd]=etcd-server)
	local cmd missing=()
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
	done
	command -v go >/dev/null || die "go is not on PATH (needed to build brainy-core)"
	((${#missing[@]} == 0)) && return
	log "installing with apt-get: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" >&2
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || die "$cmd still missing after installing ${pkg_of[$cmd]}"
	done
}

main() {
	[[ -f "$LUA_SCRIPT" ]] || die "missing $LUA_SCRIPT"
	ensure_tools
	driver_prepare
	build_driver cluster

	local data="$WORK_DIR/data"
	{
		echo "Command: \`scripts/bench-cluster.sh\` (\`make bench-cluster\`), brainy-core $BRAINY_VERSION ($(go version | awk '{ print $3 }')), etcd $(etcd --version | awk '/etcd Version/ { print $3 }'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
		echo "Machine: $(nproc) vCPU, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; data on $(stat -f -c %T "$WORK_DIR") ($(df -P "$WORK_DIR" | awk 'NR == 2 { print $1 }'))"
		echo
	} >"$RESULTS_DIR/results.md"
	run_driver "$WORK_DIR/bin/bench-cluster" -brainy-core "$WORK_DIR/bin/brainy-core" -wrk-script "$LUA_SCRIPT" \
		-work-dir "$data" -keep -parts "$PARTS" -first-ip "$FIRST_IP" -failovers "$FAILOVERS" \
		-duration "${DURATION}s" -connections "$CONNECTIONS" -threads "$THREADS" -value-size "$VALUE_SIZE" \
		-items "$ITEMS" -foreground-rate "$FOREGROUND_RATE" -max-run "$MAX_RUN"
	# Keep the servers' logs and wrk outputs with the report.
	finish_driver "$data" "report, wrk outputs and server logs" '*.log' 'wrk-*.txt'
}

main "$@"
