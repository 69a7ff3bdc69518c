#!/usr/bin/env bash
# Profiles brainy-core under the durable PUT load of bench-e2e: builds it,
# starts it alone on a fresh data directory with --debug-addr, pre-loads
# nothing (a PUT of a missing id creates it), runs wrk PUT for
# PROFILE_DURATION seconds and, during the load, takes a CPU profile, an
# allocation profile and a runtime trace. Prints wrk's summary and the
# CPU profile's top functions; the raw files stay in the results
# directory for `go tool pprof` / `go tool trace`.
#
# Usage: scripts/profile-put.sh     (or: make profile-put)
#
# Settings (environment):
#   PROFILE_DURATION     seconds of load and of CPU profile   (default 10)
#   PROFILE_CONNECTIONS  wrk connections                      (default 64)
#   PROFILE_KEYS         key space                            (default 10000)
#   PROFILE_ARGS         extra brainy-core flags              (default none)
#   PROFILE_RESULTS_DIR  where the files go (default: a new temporary dir)
#   BENCH_TMPDIR         where the data directory goes; must be a real disk
#                        (default $TMPDIR or /tmp)
set -euo pipefail

DURATION="${PROFILE_DURATION:-10}"
CONNECTIONS="${PROFILE_CONNECTIONS:-64}"
KEYS="${PROFILE_KEYS:-10000}"
EXTRA_ARGS="${PROFILE_ARGS:-}"
TMP_BASE="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PIDS=()
USED_PORTS=" "
FAILURES=()
WORK_DIR=""
BENCH_NAME=profile-put
# shellcheck source=scripts/bench/lib.sh
source "$REPO_ROOT/scripts/bench/lib.sh"
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || {
	log "installing wrk with apt-get"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >&2
}
WORK_DIR=$(mktemp -d "$TMP_BASE/brainy-profile.XXXXXX")
RESULTS_DIR="${PROFILE_RESULTS_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/brainy-profile-results.XXXXXX")}"
mkdir -p "$RESULTS_DIR"

log "building brainy-core"
(cd "$REPO_ROOT" && go build -o "$WORK_DIR/brainy-core" ./cmd/brainy-core)
free_port
HTTP_PORT=$FREE_PORT
free_port
DEBUG_PORT=$FREE_PORT
# shellcheck disable=SC2086 # PROFILE_ARGS is a list of flags
"$WORK_DIR/brainy-core" --http-addr "127.0.0.1:$HTTP_PORT" --debug-addr "127.0.0.1:$DEBUG_PORT" \
	--storage "$WORK_DIR/data" --log-format json $EXTRA_ARGS >"$RESULTS_DIR/brainy-core.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 300; i++)); do
	curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz" && break
	kill -0 "${PIDS[0]}" 2>/dev/null || die "brainy-core exited; see $RESULTS_DIR/brainy-core.log"
	sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz" || die "brainy-core not ready after 30 s"

URL="http://127.0.0.1:$HTTP_PORT"
log "warming up: 3 s of PUTs"
wrk -t2 -c"$CONNECTIONS" -d3s -s "$REPO_ROOT/scripts/bench/kv.lua" "$URL" -- brainy-put "$KEYS" 100 >/dev/null
log "measuring: $DURATION s of PUTs with a CPU profile, then an allocation profile and a 2 s trace"
wrk -t2 -c"$CONNECTIONS" -d"$((DURATION + 5))s" --latency -s "$REPO_ROOT/scripts/bench/kv.lua" "$URL" -- brainy-put "$KEYS" 100 \
	>"$RESULTS_DIR/wrk.txt" &
WRK=$!
sleep 1
curl -sf -o "$RESULTS_DIR/cpu.pb.gz" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/profile?seconds=$DURATION"
curl -sf -o "$RESULTS_DIR/allocs.pb.gz" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/allocs"
curl -sf -o "$RESULTS_DIR/trace.out" "http://127.0.0.1:$DEBUG_PORT/debug/pprof/trace?seconds=2" || true
wait "$WRK"
curl -sf "$URL/metrics" >"$RESULTS_DIR/metrics.txt" || true
cat "$RESULTS_DIR/wrk.txt"
go tool pprof -top -nodecount=40 "$RESULTS_DIR/cpu.pb.gz" 2>/dev/null | head -50
log "files in $RESULTS_DIR (cpu.pb.gz, allocs.pb.gz, trace.out, wrk.txt, metrics.txt)"
