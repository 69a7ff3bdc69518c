#!/usr/bin/env bash
# Edge benchmark: brainy-edge vs nginx proxy_cache vs Varnish, all in front
# of one brainy-core.
#
# Builds brainy-core, brainy-edge and brainy-loadtest, starts ONE
# brainy-core on free loopback ports (temporary data directory), pre-loads
# $BENCH_KEYS items into it with brainy-loadtest, and then starts in front
# of it, one at a time:
#   brainy-edge  --cache-size 256 MiB, over QUIC to the core (cluster CA
#                copied from the core's data directory)
#   nginx        proxy_cache (256 MiB zone), proxy_cache_valid 200 60s,
#                worker_processes auto (one per core), keep-alive upstream,
#                proxy_ignore_headers Cache-Control (scripts/bench/edge-nginx.conf.in)
#   Varnish      -s malloc,256m, VCL caching every 200 for 60 s
#                (scripts/bench/edge-varnish.vcl.in)
# Each is loaded by the same wrk (scripts/bench/edge-get.lua, -t$THREADS
# -c$CONNECTIONS, $DURATION s):
#   hot      every request reads one item (after a 1 s warm-up)
#   uniform  $BENCH_KEYS items uniformly at random, after a warm-up pass
#            that reads every item once through the cache
# Then the miss path, caches off: brainy-edge --cache-size 0 (edge -> QUIC
# -> core) vs nginx without proxy_cache (nginx -> HTTP -> core), uniform.
# Then freshness (brainy-loadtest freshness): write at the core, poll the
# cache until it serves the new value; $FRESH_WRITES writes through
# brainy-edge, $FRESH_TTL_WRITES through nginx and Varnish (TTL caches stay
# stale until the TTL; each such write waits the whole timeout).
# The markdown report goes to stdout, progress to stderr. Any non-2xx
# answer or socket error fails the run (exit 1), after the remaining
# measurements.
#
# Usage: scripts/bench-edge.sh     (or: make bench-edge)
#
# Settings (environment):
#   BENCH_DURATION          seconds per measured wrk run      (default 10)
#   BENCH_CONNECTIONS       wrk connections                  (default 64)
#   BENCH_THREADS           wrk threads                      (default 2)
#   BENCH_KEYS              pre-loaded items                 (default 100000)
#   BENCH_FRESH_WRITES      freshness writes via brainy-edge (default 1000)
#   BENCH_FRESH_TTL_WRITES  freshness writes via nginx and Varnish (default 10)
#   BENCH_FRESH_TIMEOUT     freshness wait per write         (default 2s)
#   BENCH_QUIET_WAIT        seconds to wait, before each measured run, for
#                           other processes to leave the CPUs idle (default 5)
#   BENCH_RESULTS_DIR       where the report and raw outputs go (default: a
#                           new temporary directory, printed at the end)
#   BENCH_BRAINY_REF        build brainy-core and brainy-edge from this
#                           commit instead of the work tree (e.g. HEAD~3)
#   BENCH_ONLY              "miss" runs only the miss path (both proxies)
#   BENCH_PIN               1: wrk on the last CPU (taskset), everything
#                           measured on the others, so the load generator
#                           does not take the servers' CPU
#   BENCH_EDGE_DEBUG_ADDR   host:port for brainy-edge --debug-addr (pprof)
#
# Missing tools (wrk, nginx, varnish, curl) are installed with apt-get.
# Only processes this script started are stopped. The whole run takes
# about 3 minutes with the defaults.

set -euo pipefail

# ---------------------------------------------------------------- settings

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
KEYS="${BENCH_KEYS:-100000}"
FRESH_WRITES="${BENCH_FRESH_WRITES:-1000}"
ONLY="${BENCH_ONLY:-}"
EDGE_DEBUG_ADDR="${BENCH_EDGE_DEBUG_ADDR:-}"
WRK_PIN=()
SRV_PIN=()
if [[ "${BENCH_PIN:-}" == 1 ]] && (($(nproc) > 1)); then
	WRK_PIN=(taskset -c "$(($(nproc) - 1))")
	SRV_PIN=(taskset -c "0-$(($(nproc) - 2))")
fi
FRESH_TTL_WRITES="${BENCH_FRESH_TTL_WRITES:-10}"
FRESH_TIMEOUT="${BENCH_FRESH_TIMEOUT:-2s}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-5}"
BRAINY_REF="${BENCH_BRAINY_REF:-}"
CACHE_BYTES=$((256 << 20))

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$REPO_ROOT/scripts/bench"
LUA_SCRIPT="$BENCH_DIR/edge-get.lua"

export LC_ALL=C

PIDS=()
WORK_DIR=""
RESULTS_DIR=""
FAILURES=()

# ----------------------------------------------------------------- helpers

BENCH_NAME=bench-edge
# shellcheck source=scripts/bench/lib.sh
source "$REPO_ROOT/scripts/bench/lib.sh"







ensure_tools() {
	local -A pkg_of=([wrk]=wrk [nginx]=nginx [varnishd]=varnish [curl]=curl)
	local cmd missing=()
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
	done
	command -v go >/dev/null || die "go is not on PATH"
	if ((${#missing[@]} == 0)); then
		log "tools present: wrk, nginx, varnishd, curl"
		return
	fi
	log "installing with apt-get: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" >&2
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || die "$cmd still missing after installing ${pkg_of[$cmd]}"
	done
}


# free_port sets FREE_PORT to an unused loopback port below the ephemeral
# range, not handed out before (TCP checked; the QUIC port is UDP, and
# taken ports make start-up fail and retry).
USED_PORTS=" "




# wait_for_quiet waits (at most $QUIET_WAIT s) for a nearly idle machine.
wait_for_quiet() {
	local waited=0 m0 m1 busy
	RUN_BUSY=""
	while :; do
		m0=$(cpu_ticks_busy)
		sleep 1
		m1=$(cpu_ticks_busy)
		busy=$(awk -v a="$m0" -v b="$m1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
		awk -v b="$busy" 'BEGIN { exit !(b <= 0.25) }' && return 0
		if ((waited >= QUIET_WAIT)); then
			log "WARNING: machine still busy ($busy cores) after ${QUIET_WAIT}s; measuring anyway"
			BUSY_RUNS=$((BUSY_RUNS + 1))
			RUN_BUSY="started on a busy machine ($busy cores used by others)"
			return 0
		fi
		waited=$((waited + 1))
	done
}



# json_field FILE KEY INDENT: the number after "KEY": at that indentation.
json_field() {
	awk -v k="$(printf '%*s"%s":' "$3" '' "$2")" 'index($0, k) == 1 {
		v = substr($0, length(k) + 1); gsub(/[ ,]/, "", v); print v; exit }' "$1"
}

# ------------------------------------------------------------------- wrk

# Rows: "proxy|load|rps|p50|p99|note".
ROWS=()

# run_wrk PROXY LOAD URL ARGS...: one measured run; appends a row.
run_wrk() {
	local proxy=$1 load=$2 url=$3
	shift 3
	local out="$RESULTS_DIR/wrk-$proxy-$load.txt" rps p50 p99 non2xx sockerr note=""
	wait_for_quiet
	log "$proxy $load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s $url ($*)"
	timeout $((DURATION + 30)) "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
		--timeout 5s --latency -s "$LUA_SCRIPT" "$url" -- "$@" \
		>"$out" 2>&1 || fail "$proxy $load: wrk exited with status $? (see $out)"
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
	non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
	sockerr=$(grep -E '^ *Socket errors' "$out" || true)
	if [[ -n "$non2xx" && "$non2xx" != 0 ]]; then
		note="$non2xx non-2xx"
		fail "$proxy $load: $non2xx non-2xx/3xx responses"
		sed 's/^/    /' "$out" >&2
	fi
	if [[ -n "$sockerr" ]]; then
		note="${note:+$note; }${sockerr# *}"
		fail "$proxy $load: $sockerr"
	fi
	[[ -n "$rps" ]] || {
		fail "$proxy $load: no Requests/sec in wrk output"
		rps=0
	}
	log "$proxy $load: $rps req/s, p50 $p50 ms, p99 $p99 ms"
	[[ -z "$RUN_BUSY" ]] || note="${note:+$note; }$RUN_BUSY"
	ROWS+=("$proxy|$load|$rps|$p50|$p99|$note")
}

# warm_pass PROXY PORT: reads every pre-loaded item once through the proxy
# (brainy-loadtest, sequential keys), failing on any error.
warm_pass() {
	local proxy=$1 port=$2 out="$RESULTS_DIR/warm-$1.json" errs
	log "$proxy: warm-up pass, reading all $KEYS items once"
	timeout 120 "$BIN/brainy-loadtest" -quiet -json -c "$CONNECTIONS" -n "$KEYS" -keys "$KEYS" \
		-dist sequential -d 100s "http://127.0.0.1:$port/v1/items/lt-{key}" >"$out" 2>&1 ||
		fail "$proxy: warm-up pass exited with status $? (see $out)"
	errs=$(json_field "$out" errors 2)
	[[ "$errs" == 0 ]] || fail "$proxy: warm-up pass: ${errs:-?} errors (see $out)"
}

# hit_sample PROXY PORT: the share of 20 random pre-loaded items answered
# from the cache (X-Cache: HIT); sets HIT_SAMPLE.
hit_sample() {
	local port=$2 i hits=0
	for ((i = 0; i < 20; i++)); do
		if curl -s -o /dev/null -D - "http://127.0.0.1:$port/v1/items/lt-$(((RANDOM * 32768 + RANDOM) % KEYS))" 2>/dev/null |
			grep -qi '^x-cache: *hit'; then
			hits=$((hits + 1))
		fi
	done
	HIT_SAMPLE="$hits/20"
	log "$1: $HIT_SAMPLE sampled items were cache hits after the uniform run"
}

# bench_cache PROXY PORT: hot and uniform runs through a cache.
bench_cache() {
	local proxy=$1 port=$2
	curl -sf -o /dev/null "http://127.0.0.1:$port/v1/items/lt-0" || fail "$proxy: GET lt-0 failed"
	timeout 30 wrk -t"$THREADS" -c"$CONNECTIONS" -d1s -s "$LUA_SCRIPT" "http://127.0.0.1:$port" -- hot >/dev/null 2>&1 || true
	run_wrk "$proxy" hot "http://127.0.0.1:$port" hot
	warm_pass "$proxy" "$port"
	run_wrk "$proxy" uniform "http://127.0.0.1:$port" uniform "$KEYS"
	hit_sample "$proxy" "$port"
	HITS[$proxy]=$HIT_SAMPLE
}

# freshness PROXY PORT N: write at the core, read through the proxy.
FRESH=()
freshness() {
	local proxy=$1 port=$2 n=$3 out="$RESULTS_DIR/freshness-$1.txt" line
	wait_for_quiet
	log "$proxy: freshness, $n writes at the core, reads through $proxy (timeout $FRESH_TIMEOUT)"
	if ! timeout 600 "$BIN/brainy-loadtest" freshness -n "$n" -timeout "$FRESH_TIMEOUT" -id "fresh-$proxy" \
		"http://127.0.0.1:$CORE_HTTP" "http://127.0.0.1:$port" >"$out" 2>&1; then
		fail "$proxy: freshness exited non-zero (see $out)"
		sed 's/^/    /' "$out" >&2
	fi
	line=$(grep '^result ' "$out" || true)
	[[ -n "$line" ]] || line="result writes=0 fresh=0 timed_out=0 read_errors=? p50_ms=nan p99_ms=nan max_ms=nan"
	[[ "$line" == *" read_errors=0 "* ]] || fail "$proxy: freshness: read errors ($line)"
	log "$proxy: $line"
	FRESH+=("$proxy ${line#result }")
}

# ----------------------------------------------------------- the servers

start_core() {
	free_port
	CORE_HTTP=$FREE_PORT
	free_port
	CORE_QUIC=$FREE_PORT
	rm -rf "$WORK_DIR/core"
	log "starting brainy-core: HTTP 127.0.0.1:$CORE_HTTP, QUIC 127.0.0.1:$CORE_QUIC"
	# A secret of this run's: the edge trusts the core through it, with no
	# file to copy and nothing from the user's per-host secret.
	CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)
	"${SRV_PIN[@]}" "$BIN/brainy-core" --storage "$WORK_DIR/core" --http-addr "127.0.0.1:$CORE_HTTP" \
		--quic-addr "127.0.0.1:$CORE_QUIC" --cluster-secret "$CLUSTER_SECRET" --log-format json >"$RESULTS_DIR/brainy-core.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until brainy-core "$PID" curl -s -o /dev/null "http://127.0.0.1:$CORE_HTTP/v1/items/none"
}

# start_edge (EDGE_CACHE bytes): sets PORT and PID.
start_edge() {
	local tls="$WORK_DIR/edge-tls-$EDGE_CACHE"
	free_port
	PORT=$FREE_PORT
	rm -rf "$tls" && mkdir -p "$tls"
	log "starting brainy-edge on 127.0.0.1:$PORT (cache $EDGE_CACHE bytes)"
	local debug=()
	[[ -n "$EDGE_DEBUG_ADDR" ]] && debug=(--debug-addr "$EDGE_DEBUG_ADDR")
	"${SRV_PIN[@]}" "$BIN/brainy-edge" --http-addr "127.0.0.1:$PORT" --upstream "127.0.0.1:$CORE_QUIC" "${debug[@]}" \
		--cluster-secret "$CLUSTER_SECRET" --tls-dir "$tls" --cache-size "$EDGE_CACHE" --cache-ttl 60s --log-format json \
		>>"$RESULTS_DIR/brainy-edge-$EDGE_CACHE.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until brainy-edge "$PID" curl -sf -o /dev/null "http://127.0.0.1:$PORT/v1/items/lt-0"
}

# start_nginx (NGINX_CACHE brainy|off): sets PORT and PID.
start_nginx() {
	local prefix="$WORK_DIR/nginx-$NGINX_CACHE"
	free_port
	PORT=$FREE_PORT
	rm -rf "$prefix" && mkdir -p "$prefix"
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$PORT|g" -e "s|@CORE_PORT@|$CORE_HTTP|g" \
		-e "s|@CACHE_ZONE@|$NGINX_CACHE|g" "$BENCH_DIR/edge-nginx.conf.in" >"$prefix/nginx.conf"
	log "starting nginx on 127.0.0.1:$PORT (proxy_cache $NGINX_CACHE)"
	"${SRV_PIN[@]}" nginx -p "$prefix" -c "$prefix/nginx.conf" >"$RESULTS_DIR/nginx-$NGINX_CACHE.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until nginx "$PID" curl -sf -o /dev/null "http://127.0.0.1:$PORT/v1/items/lt-0"
}

# start_varnish: sets PORT and PID.
start_varnish() {
	local dir="$WORK_DIR/varnish"
	free_port
	PORT=$FREE_PORT
	rm -rf "$dir" && mkdir -p "$dir"
	sed -e "s|@CORE_PORT@|$CORE_HTTP|g" "$BENCH_DIR/edge-varnish.vcl.in" >"$dir/default.vcl"
	log "starting varnishd on 127.0.0.1:$PORT"
	"${SRV_PIN[@]}" varnishd -F -j none -a "127.0.0.1:$PORT" -f "$dir/default.vcl" -s malloc,256m -n "$dir/n" \
		>"$RESULTS_DIR/varnish.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until varnishd "$PID" curl -sf -o /dev/null "http://127.0.0.1:$PORT/v1/items/lt-0"
}

# preload: PUT items lt-0 .. lt-(KEYS-1) at the core.
preload() {
	local out="$RESULTS_DIR/preload.json" errs
	log "brainy-core: pre-loading $KEYS items"
	timeout 240 "$BIN/brainy-loadtest" -quiet -json -workload items -mix read=100 -keys "$KEYS" \
		-preload -n 64 -c 64 "http://127.0.0.1:$CORE_HTTP" >"$out" 2>&1 ||
		die "pre-load exited with status $? (see $out)"
	errs=$(awk '/^  "preload": \{/ { p = 1 } p && /"errors":/ { gsub(/[ ,]/, ""); split($0, a, ":"); print a[2]; exit }' "$out")
	[[ "$errs" == 0 ]] || die "pre-load: ${errs:-?} failed writes (see $out)"
	curl -sf -o /dev/null "http://127.0.0.1:$CORE_HTTP/v1/items/lt-$((KEYS - 1))" ||
		die "pre-loaded item lt-$((KEYS - 1)) not readable"
	log "brainy-core: pre-load took $(json_field "$out" elapsed_s 4) s"
}

# ----------------------------------------------------------------- report


fresh_field() {
	local r kv
	for r in "${FRESH[@]}"; do
		[[ "${r%% *}" == "$1" ]] || continue
		for kv in ${r#* }; do
			[[ "${kv%%=*}" == "$2" ]] && echo "${kv#*=}" && return
		done
	done
	echo "n/a"
}

verdict() { awk -v c="$1" 'BEGIN { print (c ? "met" : "NOT met") }'; }

report() {
	local r f load
	echo "Run: $(date -u +%Y-%m-%dT%H:%M:%SZ), \`scripts/bench-edge.sh\` (\`make bench-edge\`)"
	echo
	echo "- Machine: $(nproc) vCPU, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), kernel $(uname -r); load average before the run: $LOADAVG_START, after: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- brainy-core and brainy-edge: $BRAINY_VERSION ($(go version | awk '{ print $3 }')); $(nginx -v 2>&1 | sed 's/.*: //'); $(varnishd -V 2>&1 | awk 'NR == 1 { print $1, $2 }' | tr -d '()'); $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
	echo "- Load: wrk -t$THREADS -c$CONNECTIONS, ${DURATION} s per run, GET only; $KEYS items of ~256-byte bodies pre-loaded; $(if ((${#WRK_PIN[@]} > 0)); then echo "wrk pinned to CPU ${WRK_PIN[2]}, the servers to CPUs ${SRV_PIN[2]} (BENCH_PIN=1)"; else echo "everything (core, cache, wrk) on the same $(nproc) cores"; fi), over loopback"
	if ((BUSY_RUNS > 0)); then
		echo "- $BUSY_RUNS run(s) started while other processes kept the machine busy"
	fi
	echo
	echo "| cache | load | req/s | p50 ms | p99 ms | sampled hits | notes |"
	echo "|---|---|---:|---:|---:|---:|---|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r -a f <<<"$r"
		local hits="-"
		[[ "${f[1]}" == uniform ]] && hits=${HITS[${f[0]}]:-"-"}
		printf '| %s | %s | %.0f | %s | %s | %s | %s |\n' "${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "$hits" "${f[5]:--}"
	done
	echo
	echo "| load | edge/nginx req/s | edge/varnish req/s | edge/nginx p99 | edge/varnish p99 | target (>= 1.5x req/s, p99 ratio <= 1) |"
	echo "|---|---:|---:|---:|---:|---|"
	for load in hot uniform; do
		local rn rv pn pv
		rn=$(ratio "$(row_field brainy-edge "$load" 2)" "$(row_field nginx "$load" 2)")
		rv=$(ratio "$(row_field brainy-edge "$load" 2)" "$(row_field varnish "$load" 2)")
		pn=$(ratio "$(row_field brainy-edge "$load" 4)" "$(row_field nginx "$load" 4)")
		pv=$(ratio "$(row_field brainy-edge "$load" 4)" "$(row_field varnish "$load" 4)")
		printf '| %s | %s | %s | %s | %s | %s |\n' "$load" "$rn" "$rv" "$pn" "$pv" \
			"$(verdict "$(awk -v a="$rn" -v b="$rv" -v c="$pn" -v d="$pv" 'BEGIN { print (a >= 1.5 && b >= 1.5 && c <= 1 && d <= 1) }')")"
	done
	echo
	echo "Miss path (caches off, uniform keys): edge -> QUIC -> core vs nginx -> HTTP -> core:"
	echo
	echo "| edge/nginx req/s | edge/nginx p50 | edge/nginx p99 |"
	echo "|---:|---:|---:|"
	printf '| %s | %s | %s |\n' \
		"$(ratio "$(row_field brainy-edge-nocache miss 2)" "$(row_field nginx-nocache miss 2)")" \
		"$(ratio "$(row_field brainy-edge-nocache miss 3)" "$(row_field nginx-nocache miss 3)")" \
		"$(ratio "$(row_field brainy-edge-nocache miss 4)" "$(row_field nginx-nocache miss 4)")"
	echo
	echo "Freshness: one write at a time at the core, then the cache polled until it serves the new value (\`brainy-loadtest freshness\`, timeout $FRESH_TIMEOUT):"
	echo
	echo "| cache | writes | fresh | timed out | p50 ms | p99 ms | max ms |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for r in "${FRESH[@]}"; do
		local p=${r%% *}
		if [[ "$(fresh_field "$p" fresh)" == 0 ]]; then
			printf '| %s | %s | 0 | %s | - | - | - |\n' "$p" "$(fresh_field "$p" writes)" "$(fresh_field "$p" timed_out)"
			continue
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$(fresh_field "$p" writes)" "$(fresh_field "$p" fresh)" \
			"$(fresh_field "$p" timed_out)" "$(fresh_field "$p" p50_ms)" "$(fresh_field "$p" p99_ms)" "$(fresh_field "$p" max_ms)"
	done
	echo
	local fp99 ftimed
	fp99=$(fresh_field brainy-edge p99_ms)
	ftimed=$(fresh_field brainy-edge timed_out)
	echo "brainy-edge freshness p99 $fp99 ms, $ftimed timed out; target p99 <= 20 ms: $(verdict "$(awk -v p="$fp99" -v t="$ftimed" 'BEGIN { print (p != "nan" && p + 0 <= 20 && t == 0) }')")"
	if ((${#FAILURES[@]} > 0)); then
		echo
		echo "FAILED checks:"
		printf -- '- %s\n' "${FAILURES[@]}"
	fi
}

# ------------------------------------------------------------------- main

main() {
	[[ -f "$LUA_SCRIPT" ]] || die "missing $LUA_SCRIPT"
	ensure_tools
	CLK_TCK=$(getconf CLK_TCK)
	BUSY_RUNS=0
	LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
	declare -gA HITS=()

	trap cleanup EXIT
	trap 'log interrupted; exit 130' INT
	trap 'log terminated; exit 143' TERM
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-bench-edge.XXXXXX")
	chmod 755 "$WORK_DIR"
	if [[ -n "${BENCH_RESULTS_DIR:-}" ]]; then
		RESULTS_DIR=$BENCH_RESULTS_DIR
		mkdir -p "$RESULTS_DIR"
	else
		RESULTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-bench-edge-results.XXXXXX")
	fi

	BIN="$WORK_DIR/bin"
	build_brainy "$BIN" brainy-core brainy-edge
	# The load generator is the driver, not what is measured: always the work tree's.
	(cd "$REPO_ROOT" && go build -o "$BIN/brainy-loadtest" ./cmd/brainy-loadtest)

	start_with_retries brainy-core start_core "$RESULTS_DIR/brainy-core.log"
	local core_pid=$PID
	preload

	if [[ "$ONLY" != miss ]]; then
		EDGE_CACHE=$CACHE_BYTES
		start_with_retries brainy-edge start_edge "$RESULTS_DIR/brainy-edge-$EDGE_CACHE.log"
		bench_cache brainy-edge "$PORT"
		freshness brainy-edge "$PORT" "$FRESH_WRITES"
		stop_pid "$PID"
		((STOP_STATUS == 0 || STOP_STATUS == 143)) || fail "brainy-edge exited with status $STOP_STATUS"

		NGINX_CACHE=brainy
		start_with_retries nginx start_nginx "$RESULTS_DIR/nginx-brainy.log"
		bench_cache nginx "$PORT"
		freshness nginx "$PORT" "$FRESH_TTL_WRITES"
		stop_pid "$PID"

		start_with_retries varnishd start_varnish "$RESULTS_DIR/varnish.log"
		bench_cache varnish "$PORT"
		freshness varnish "$PORT" "$FRESH_TTL_WRITES"
		stop_pid "$PID"
	fi

	EDGE_CACHE=0
	start_with_retries brainy-edge start_edge "$RESULTS_DIR/brainy-edge-0.log"
	run_wrk brainy-edge-nocache miss "http://127.0.0.1:$PORT" uniform "$KEYS"
	stop_pid "$PID"
	((STOP_STATUS == 0 || STOP_STATUS == 143)) || fail "brainy-edge (no cache) exited with status $STOP_STATUS"

	NGINX_CACHE=off
	start_with_retries nginx start_nginx "$RESULTS_DIR/nginx-off.log"
	run_wrk nginx-nocache miss "http://127.0.0.1:$PORT" uniform "$KEYS"
	stop_pid "$PID"

	kill -0 "$core_pid" 2>/dev/null || fail "brainy-core died during the run"
	stop_pid "$core_pid"
	((STOP_STATUS == 0 || STOP_STATUS == 143)) || fail "brainy-core exited with status $STOP_STATUS"
	if grep -qE '"level":"(ERROR|WARN)"' "$RESULTS_DIR"/brainy-*.log; then
		log "brainy logs hold warnings or errors: $(grep -hcE '"level":"(ERROR|WARN)"' "$RESULTS_DIR"/brainy-*.log | paste -sd+ | bc 2>/dev/null || echo some)"
	fi

	report | tee "$RESULTS_DIR/results.md"
	log "report and raw outputs in $RESULTS_DIR"
	if ((${#FAILURES[@]} > 0)); then
		die "${#FAILURES[@]} check(s) failed: ${FAILURES[*]}"
	fi
}

main "$@"
