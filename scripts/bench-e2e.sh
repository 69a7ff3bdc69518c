#!/usr/bin/env bash
# End-to-end HTTP benchmark: brainy-core vs Redis vs etcd.
#
# Builds brainy-core and starts, one after the other, three single-node
# stores on free loopback ports, each with a fresh temporary data directory
# and durable writes:
#   brainy-core  --storage DIR (pebble WAL fsync'd per acknowledged write,
#                group commit)
#   Redis        --appendonly yes --appendfsync always --save ''
#   etcd         single member (raft WAL fsync'd per committed batch),
#                spoken to through its HTTP/JSON gateway (/v3/kv/*)
# Each store gets the same pre-loaded key space and then the same closed-
# loop load, at the same concurrency and value size, for a bounded time:
#   GET  random keys  (brainy: GET /v1/items/{id}; etcd: POST /v3/kv/range;
#                      Redis: GET)
#   PUT  random keys  (brainy: PUT /v1/items/{id}; etcd: POST /v3/kv/put;
#                      Redis: SET); every key exists, so a PUT replaces.
# HTTP stores are driven by wrk (scripts/bench/kv.lua), Redis by
# redis-benchmark. The result is a markdown report on stdout; progress goes
# to stderr. Any non-2xx answer or socket error fails the run (exit 1),
# after the remaining measurements.
#
# Usage: scripts/bench-e2e.sh     (or: make bench-e2e)
#
# Settings (environment):
#   BENCH_DURATION     seconds per measured run            (default 10)
#   BENCH_CONNECTIONS  concurrent connections, all stores  (default 64)
#   BENCH_THREADS      client threads (wrk -t, redis-benchmark --threads)
#                                                          (default 2)
#   BENCH_KEYS         size of the pre-loaded key space    (default 10000)
#   BENCH_VALUE_SIZE   value size in bytes                 (default 100)
#   BENCH_WARMUP       seconds of unreported GET load before measuring an
#                      HTTP store                          (default 2)
#   BENCH_QUIET_WAIT   seconds to wait, before each measured run, for other
#                      processes to leave the CPUs idle  (default 20)
#   BENCH_BRAINY_REF   build brainy-core from this commit instead of the
#                      work tree (e.g. HEAD)                (default: unset)
#   BENCH_RESULTS_DIR  where the report and raw outputs go (default: a new
#                      temporary directory, printed at the end)
#   BENCH_TMPDIR       where data directories go; must be a real disk for
#                      the durable numbers to mean anything (default $TMPDIR
#                      or /tmp)
#
# Missing tools (wrk, redis-server, redis-tools, etcd-server, curl) are
# installed with apt-get. Only processes this script started are stopped.

set -euo pipefail

# ---------------------------------------------------------------- settings

DURATION="${BENCH_DURATION:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
KEYS="${BENCH_KEYS:-10000}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-100}"
WARMUP="${BENCH_WARMUP:-2}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-20}"
BRAINY_REF="${BENCH_BRAINY_REF:-}"
TMP_BASE="${BENCH_TMPDIR:-${TMPDIR:-/tmp}}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LUA_SCRIPT="$REPO_ROOT/scripts/bench/kv.lua"

export LC_ALL=C

# Process ids this script started; only these are stopped on exit.
PIDS=()
WORK_DIR=""
RESULTS_DIR=""
FAILURES=()

# ----------------------------------------------------------------- helpers

BENCH_NAME=bench-e2e
# shellcheck source=scripts/bench/lib.sh
source "$REPO_ROOT/scripts/bench/lib.sh"







# ensure_tools installs the Debian packages of any missing command.
ensure_tools() {
	local -A pkg_of=(
		[wrk]=wrk
		[redis-server]=redis-server
		[redis-benchmark]=redis-tools
		[redis-cli]=redis-tools
		[etcd]=etcd-server
		[curl]=curl
	)
	local cmd missing=()
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || missing+=("${pkg_of[$cmd]}")
	done
	command -v go >/dev/null || die "go is not on PATH (needed to build brainy-core)"
	if ((${#missing[@]} == 0)); then
		log "tools present: wrk, redis-server, redis-benchmark, etcd, curl"
		return
	fi
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing with apt-get: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${missing[@]}" >&2
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null || die "$cmd still missing after installing ${pkg_of[$cmd]}"
	done
}


# free_port sets FREE_PORT to a loopback TCP port nobody listens on and
# that this script has not handed out yet (a variable, not output: the
# list of handed-out ports must survive the call). It draws below the kernel's ephemeral
# port range, where outgoing connections of other programs take ports.
USED_PORTS=" "



# cpu_ticks_pid prints the user+system clock ticks used by process $1.
cpu_ticks_pid() {
	local stat rest
	stat=$(<"/proc/$1/stat")
	rest=${stat##*) } # fields after "(comm)", starting at field 3
	awk '{ print $12 + $13 }' <<<"$rest"
}


# cpu_ticks_kernel prints the clock ticks spent since boot in interrupts
# and soft interrupts (loopback networking) plus those of kernel threads
# (journaling, block I/O, deferred network work): the kernel's share of a
# run, which belongs to no process.
cpu_ticks_kernel() {
	{
		awk '/^cpu / { print "irq", $7 + $8; exit }' /proc/stat
		# Processes may vanish while being read; cat goes on regardless.
		cat /proc/[0-9]*/stat 2>/dev/null || true
	} | awk '
		$1 == "irq" { t += $2; next }
		{
			pid = $1
			sub(/^.*\) /, "") # drop "pid (comm) ", comm may hold spaces
			if (pid == 2 || $2 == 2) t += $12 + $13 # kthreadd and its children
		}
		END { print t }'
}


# children_cpu_secs sets CHILD_CPU to the user+system CPU seconds used so
# far by the waited-for children of this shell (the load generators among
# them). The builtin "times" must run in this shell, not in a command
# substitution's subshell, hence the file and the variable.
children_cpu_secs() {
	times >"$WORK_DIR/times"
	CHILD_CPU=$(awk 'NR == 2 {
		split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2]
	}' "$WORK_DIR/times")
}

# Results, one row per (store, op):
# "store|op|rps|p50|p99|server|client|kernel|other|note".
ROWS=()

# wait_for_quiet waits (at most $QUIET_WAIT s) until the machine has been
# nearly idle for a second, so that a measured run does not share the CPUs
# or the disk with unrelated work; it goes on with a warning otherwise.
wait_for_quiet() {
	local waited=0 m0 m1 busy
	while :; do
		m0=$(cpu_ticks_busy)
		sleep 1
		m1=$(cpu_ticks_busy)
		busy=$(awk -v a="$m0" -v b="$m1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
		awk -v b="$busy" 'BEGIN { exit !(b <= 0.25) }' && return 0
		if ((waited >= QUIET_WAIT)); then
			log "WARNING: machine still busy ($busy cores) after ${QUIET_WAIT}s; measuring anyway"
			return 0
		fi
		((waited == 0)) && log "machine busy ($busy cores used by other processes); waiting up to ${QUIET_WAIT}s"
		waited=$((waited + 1))
	done
}

# measure_cpu_start PID / measure_cpu_end PID bracket a run and set
# SERVER_CORES (the store), CLIENT_CORES (the load generator, a child of
# this shell), KERNEL_CORES (interrupts and kernel threads) and
# OTHER_CORES (every other process on the machine), each the average
# number of cores busy during the run.
measure_cpu_start() {
	CPU_T0=$(date +%s.%N)
	CPU_S0=$(cpu_ticks_pid "$1")
	CPU_M0=$(cpu_ticks_busy)
	CPU_K0=$(cpu_ticks_kernel)
	children_cpu_secs
	CPU_C0=$CHILD_CPU
}
measure_cpu_end() {
	local t1 s1 m1 c1 k1
	children_cpu_secs
	c1=$CHILD_CPU
	t1=$(date +%s.%N)
	s1=$(cpu_ticks_pid "$1")
	m1=$(cpu_ticks_busy)
	k1=$(cpu_ticks_kernel)
	read -r SERVER_CORES CLIENT_CORES KERNEL_CORES OTHER_CORES < <(awk -v t0="$CPU_T0" -v t1="$t1" \
		-v s0="$CPU_S0" -v s1="$s1" -v m0="$CPU_M0" -v m1="$m1" -v c0="$CPU_C0" -v c1="$c1" \
		-v k0="$CPU_K0" -v k1="$k1" -v hz="$CLK_TCK" 'BEGIN {
			dt = t1 - t0
			server = (s1 - s0) / hz / dt
			client = (c1 - c0) / dt
			kernel = (k1 - k0) / hz / dt
			other = (m1 - m0) / hz / dt - server - client - kernel
			if (other < 0) other = 0
			printf "%.2f %.2f %.2f %.2f\n", server, client, kernel, other
		}')
	if awk -v o="$OTHER_CORES" 'BEGIN { exit !(o > 0.25) }'; then
		log "WARNING: other processes kept $OTHER_CORES cores busy during this run; numbers are disturbed"
	fi
}

# ------------------------------------------------------------------- wrk

# run_wrk STORE OP MODE URL SERVER_PID: one measured wrk run; appends a row.
run_wrk() {
	local store=$1 op=$2 mode=$3 url=$4 pid=$5
	local out="$RESULTS_DIR/wrk-$store-$op.txt" rps p50 p99 non2xx sockerr note=""
	wait_for_quiet
	log "$store $op: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s $url ($mode)"
	measure_cpu_start "$pid"
	timeout $((DURATION + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
		--timeout 10s --latency -s "$LUA_SCRIPT" "$url" -- "$mode" "$KEYS" "$VALUE_SIZE" \
		>"$out" 2>&1 || fail "$store $op: wrk exited with status $? (see $out)"
	measure_cpu_end "$pid"
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
	non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
	sockerr=$(grep -E '^ *Socket errors' "$out" || true)
	if [[ -n "$non2xx" && "$non2xx" != 0 ]]; then
		note="$non2xx non-2xx"
		fail "$store $op: $non2xx non-2xx/3xx responses"
		sed 's/^/    /' "$out" >&2
	fi
	if [[ -n "$sockerr" ]]; then
		note="${note:+$note; }${sockerr# *}"
		fail "$store $op: $sockerr"
		sed 's/^/    /' "$out" >&2
	fi
	[[ -n "$rps" ]] || {
		fail "$store $op: no Requests/sec in wrk output"
		sed 's/^/    /' "$out" >&2
		rps=0
	}
	log "$store $op: $rps req/s, p50 $p50 ms, p99 $p99 ms, CPU cores: server $SERVER_CORES, client $CLIENT_CORES, kernel $KERNEL_CORES, other $OTHER_CORES"
	ROWS+=("$store|$op|$rps|$p50|$p99|$SERVER_CORES|$CLIENT_CORES|$KERNEL_CORES|$OTHER_CORES|$note")
}

# warmup_wrk runs a short unreported GET load.
warmup_wrk() {
	local mode=$1 url=$2
	((WARMUP > 0)) || return 0
	log "warm-up: ${WARMUP}s of $mode"
	timeout $((WARMUP + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" \
		-s "$LUA_SCRIPT" "$url" -- "$mode" "$KEYS" "$VALUE_SIZE" >/dev/null 2>&1 ||
		log "warm-up wrk exited non-zero (ignored)"
}

# ------------------------------------------------------------- pre-loading

# curl_preload CONFIG NAME: runs a curl config of $KEYS transfers, 64 at a
# time, retrying failed ones once; fails the run if any key is not stored.
curl_preload() {
	local cfg=$1 name=$2 codes bad
	codes="$WORK_DIR/$name-preload.codes"
	curl --silent --parallel --parallel-max 64 --config "$cfg" >"$codes" 2>"$codes.err" || true
	bad=$(awk '$1 !~ /^2/' "$codes" | wc -l)
	if ((bad > 0)) || (($(wc -l <"$codes") != KEYS)); then
		log "$name pre-load: $bad of $(wc -l <"$codes") answers not 2xx; first ones:"
		awk '$1 !~ /^2/' "$codes" | sort | uniq -c | sort -rn | head -5 >&2
		log "$name pre-load: retrying the whole key space once"
		curl --silent --parallel --parallel-max 16 --config "$cfg" >"$codes" 2>"$codes.err" || true
		bad=$(awk '$1 !~ /^2/' "$codes" | wc -l)
		if ((bad > 0)); then
			awk '$1 !~ /^2/' "$codes" | sort | uniq -c | sort -rn | head -5 >&2
			die "$name pre-load: $bad writes failed twice"
		fi
	fi
}

# key_list prints the benchmark keys, "key-%011d" (15 bytes, as kv.lua).
key_list() {
	awk -v n="$KEYS" 'BEGIN { for (i = 0; i < n; i++) printf "key-%011d\n", i }'
}

# preload_brainy PORT: PUT every key once.
preload_brainy() {
	local port=$1 cfg="$WORK_DIR/brainy-preload.curl"
	log "brainy-core: pre-loading $KEYS keys"
	key_list | awk -v port="$port" -v v="$VALUE" -v last="$KEYS" '{
		printf "url = \"http://127.0.0.1:%s/v1/items/%s\"\n", port, $1
		print "request = \"PUT\""
		print "header = \"Content-Type: application/json\""
		printf "data = \"{\\\"type\\\":\\\"bench\\\",\\\"data\\\":{\\\"v\\\":\\\"%s\\\"}}\"\n", v
		print "output = \"/dev/null\""
		print "write-out = \"%{http_code} %{errormsg}\\n\""
		if (NR < last) print "next"
	}' >"$cfg"
	curl_preload "$cfg" brainy
	local k
	for k in "key-$(printf '%011d' 0)" "key-$(printf '%011d' $((KEYS - 1)))"; do
		curl -sf -o /dev/null "http://127.0.0.1:$port/v1/items/$k" ||
			die "brainy-core: pre-loaded key $k not readable"
	done
}

# preload_etcd PORT: put every key once through the JSON gateway.
preload_etcd() {
	local port=$1 cfg="$WORK_DIR/etcd-preload.curl" v64 count
	log "etcd: pre-loading $KEYS keys"
	v64=$(printf '%s' "$VALUE" | base64 -w0)
	# Keys are 15 bytes, a multiple of 3, so the base64 of all keys
	# concatenated splits into 20-character base64 keys.
	key_list | tr -d '\n' | base64 -w0 | fold -w 20 |
		awk -v port="$port" -v v64="$v64" -v last="$KEYS" '{
			printf "url = \"http://127.0.0.1:%s/v3/kv/put\"\n", port
			print "header = \"Content-Type: application/json\""
			printf "data = \"{\\\"key\\\":\\\"%s\\\",\\\"value\\\":\\\"%s\\\"}\"\n", $1, v64
			print "output = \"/dev/null\""
			print "write-out = \"%{http_code} %{errormsg}\\n\""
			if (NR < last) print "next"
		}' >"$cfg"
	curl_preload "$cfg" etcd
	# Count keys in ["key-", "key.") to check the pre-load.
	count=$(curl -sf -X POST "http://127.0.0.1:$port/v3/kv/range" \
		-d "{\"key\":\"$(printf 'key-' | base64)\",\"range_end\":\"$(printf 'key.' | base64)\",\"count_only\":true}" |
		sed -n 's/.*"count":"\([0-9]*\)".*/\1/p')
	[[ "$count" == "$KEYS" ]] || die "etcd: pre-load left ${count:-?} keys, want $KEYS"
}

# preload_redis PORT: SET every key redis-benchmark -r uses
# ("key:%012d") through redis-cli --pipe.
preload_redis() {
	local port=$1 size
	log "redis: pre-loading $KEYS keys"
	awk -v n="$KEYS" -v v="$VALUE" 'BEGIN {
		for (i = 0; i < n; i++) {
			k = sprintf("key:%012d", i)
			printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
		}
	}' | redis-cli -h 127.0.0.1 -p "$port" --pipe >"$WORK_DIR/redis-preload.out" 2>&1 ||
		die "redis: pre-load failed: $(cat "$WORK_DIR/redis-preload.out")"
	size=$(redis-cli -h 127.0.0.1 -p "$port" dbsize)
	[[ "$size" == "$KEYS" ]] || die "redis: pre-load left $size keys, want $KEYS"
}

# ----------------------------------------------------------------- stores

# brainy_commit_counters PORT sets COMMITS and COMMITTED_WRITES from the
# node's Prometheus counters (0 if absent): group commits and the writes
# they carried.
brainy_commit_counters() {
	local metrics
	metrics=$(curl -sf "http://127.0.0.1:$1/metrics" || true)
	COMMITS=$(awk '$1 == "brainy_core_commits_total" { print $2 }' <<<"$metrics")
	COMMITTED_WRITES=$(awk '$1 == "brainy_core_committed_writes_total" { print $2 }' <<<"$metrics")
	COMMITS=${COMMITS:-0} COMMITTED_WRITES=${COMMITTED_WRITES:-0}
}

# start_brainy starts brainy-core on a free port; sets PORT and PID.
start_brainy() {
	free_port
	PORT=$FREE_PORT
	rm -rf "$WORK_DIR/brainy-data"
	log "starting brainy-core on 127.0.0.1:$PORT, data in $WORK_DIR/brainy-data"
	"$WORK_DIR/brainy-core" --http-addr "127.0.0.1:$PORT" --storage "$WORK_DIR/brainy-data" \
		--log-format json >"$RESULTS_DIR/brainy-core.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until brainy-core "$PID" curl -sf "http://127.0.0.1:$PORT/readyz"
}

bench_brainy() {
	local port pid
	build_brainy "$WORK_DIR"
	start_with_retries brainy-core start_brainy "$RESULTS_DIR/brainy-core.log"
	port=$PORT pid=$PID
	preload_brainy "$port"
	warmup_wrk brainy-get "http://127.0.0.1:$port"
	run_wrk brainy-core GET brainy-get "http://127.0.0.1:$port" "$pid"
	brainy_commit_counters "$port"
	local c0=$COMMITS w0=$COMMITTED_WRITES
	run_wrk brainy-core PUT brainy-put "http://127.0.0.1:$port" "$pid"
	brainy_commit_counters "$port"
	BRAINY_COMMITS=$(awk -v c0="$c0" -v c1="$COMMITS" -v w0="$w0" -v w1="$COMMITTED_WRITES" -v d="$DURATION" \
		'BEGIN { c = c1 - c0; if (c > 0) printf "%.0f commits/s, %.1f writes per commit", c / d, (w1 - w0) / c }')
	[[ -z "$BRAINY_COMMITS" ]] || log "brainy-core PUT: $BRAINY_COMMITS"
	stop_pid "$pid"
	BRAINY_STOP_STATUS=$STOP_STATUS
	((STOP_STATUS == 0)) || log "brainy-core exited with status $STOP_STATUS on SIGTERM"
	# Anything above INFO in the server's log is worth a look.
	BRAINY_LOG_PROBLEMS=$(grep -cvE '"level":"(INFO|DEBUG)"' "$RESULTS_DIR/brainy-core.log" || true)
	if ((BRAINY_LOG_PROBLEMS > 0)); then
		log "brainy-core logged $BRAINY_LOG_PROBLEMS lines above INFO; first ones:"
		grep -vE '"level":"(INFO|DEBUG)"' "$RESULTS_DIR/brainy-core.log" | head -5 >&2
	fi
}

# run_redis_benchmark OP TEST PORT PID: one measured redis-benchmark run.
# redis-benchmark runs a request count, not a time, so a short pilot run
# sizes -n to about $DURATION seconds.
run_redis_benchmark() {
	local op=$1 test=$2 port=$3 pid=$4 pilot n line rps p50 p99
	local out="$RESULTS_DIR/redis-$op.csv"
	local common=(-h 127.0.0.1 -p "$port" -c "$CONNECTIONS" --threads "$THREADS"
		-d "$VALUE_SIZE" -r "$KEYS" -t "$test" --csv)
	pilot=$(timeout 120 redis-benchmark "${common[@]}" -n 20000 | awk -F'"' 'NR == 2 { print $4 }' || true)
	n=$(awk -v r="${pilot:-0}" -v d="$DURATION" 'BEGIN { n = int(r * d); if (n < 10000) n = 10000; if (n > 5000000) n = 5000000; print n }')
	wait_for_quiet
	log "redis $op: redis-benchmark -t $test -c $CONNECTIONS --threads $THREADS -d $VALUE_SIZE -r $KEYS -n $n (pilot ${pilot:-?} req/s)"
	measure_cpu_start "$pid"
	timeout $((DURATION * 4 + 60)) redis-benchmark "${common[@]}" -n "$n" >"$out" 2>&1 ||
		fail "redis $op: redis-benchmark exited with status $? (see $out)"
	measure_cpu_end "$pid"
	if grep -qiE '^(error|err )|error:' "$out"; then
		fail "redis $op: errors in redis-benchmark output"
		sed 's/^/    /' "$out" >&2
	fi
	# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
	# "p95_latency_ms","p99_latency_ms","max_latency_ms"
	line=$(grep -iE "^\"$test\"" "$out" | head -1 || true)
	rps=$(awk -F'"' '{ print $4 }' <<<"$line")
	p50=$(awk -F'"' '{ print $10 }' <<<"$line")
	p99=$(awk -F'"' '{ print $14 }' <<<"$line")
	[[ -n "$rps" ]] || {
		fail "redis $op: no result line in redis-benchmark output"
		rps=0
	}
	log "redis $op: $rps req/s, p50 $p50 ms, p99 $p99 ms, CPU cores: server $SERVER_CORES, client $CLIENT_CORES, kernel $KERNEL_CORES, other $OTHER_CORES"
	ROWS+=("redis|$op|$rps|$p50|$p99|$SERVER_CORES|$CLIENT_CORES|$KERNEL_CORES|$OTHER_CORES|")
}

# start_redis starts redis-server on a free port; sets PORT and PID.
start_redis() {
	local data="$WORK_DIR/redis-data"
	free_port
	PORT=$FREE_PORT
	rm -rf "$data" && mkdir -p "$data"
	log "starting redis-server on 127.0.0.1:$PORT (appendfsync always), data in $data"
	redis-server --bind 127.0.0.1 --port "$PORT" --dir "$data" --daemonize no \
		--appendonly yes --appendfsync always --save '' \
		--logfile "$RESULTS_DIR/redis.log" >/dev/null 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until redis-server "$PID" redis-cli -h 127.0.0.1 -p "$PORT" ping
}

bench_redis() {
	local port pid
	start_with_retries redis-server start_redis "$RESULTS_DIR/redis.log"
	port=$PORT pid=$PID
	preload_redis "$port"
	run_redis_benchmark GET get "$port" "$pid"
	run_redis_benchmark PUT set "$port" "$pid"
	stop_pid "$pid"
}

# start_etcd starts a single etcd member on free ports; sets PORT and PID.
start_etcd() {
	local peer data="$WORK_DIR/etcd-data"
	free_port
	PORT=$FREE_PORT
	free_port
	peer=$FREE_PORT
	rm -rf "$data"
	log "starting etcd on 127.0.0.1:$PORT (peer $peer), data in $data"
	etcd --name bench --data-dir "$data" \
		--listen-client-urls "http://127.0.0.1:$PORT" \
		--advertise-client-urls "http://127.0.0.1:$PORT" \
		--listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "bench=http://127.0.0.1:$peer" \
		--initial-cluster-state new \
		--logger zap --log-outputs stderr --log-level warn \
		>"$RESULTS_DIR/etcd.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_until etcd "$PID" curl -sf -X POST "http://127.0.0.1:$PORT/v3/kv/range" -d '{"key":"AA=="}'
}

bench_etcd() {
	local port pid
	start_with_retries etcd start_etcd "$RESULTS_DIR/etcd.log"
	port=$PORT pid=$PID
	preload_etcd "$port"
	warmup_wrk etcd-get "http://127.0.0.1:$port"
	run_wrk etcd GET etcd-get "http://127.0.0.1:$port" "$pid"
	run_wrk etcd PUT etcd-put "http://127.0.0.1:$port" "$pid"
	stop_pid "$pid"
}

# ----------------------------------------------------------------- report

# probe_fsync prints the latency in ms of one 4 KiB O_DSYNC write in
# $WORK_DIR: 1000 writes take N seconds, so one takes N ms.
probe_fsync() {
	local secs
	secs=$(dd if=/dev/zero of="$WORK_DIR/fsync.probe" bs=4k count=1000 oflag=dsync 2>&1 |
		awk '/copied/ { for (i = 1; i <= NF; i++) if ($(i) == "s," || $(i) == "s") print $(i - 1) }')
	rm -f "$WORK_DIR/fsync.probe"
	awk -v s="${secs:-0}" 'BEGIN { printf "%.3f", s }'
}



# goal prints whether the ratio v meets "op g" (op is >= or <=).
goal() {
	awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {
		if (v == "n/a" || v == "") { print "unknown"; exit }
		ok = (op == ">=") ? (v + 0 >= g + 0) : (v + 0 <= g + 0)
		print ok ? "met" : "NOT met"
	}'
}

report() {
	local r f
	echo "Run: $(date -u +%Y-%m-%dT%H:%M:%SZ), \`scripts/bench-e2e.sh\` (\`make bench-e2e\`)"
	echo
	echo "- Machine: $(nproc) vCPU, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), kernel $(uname -r)"
	echo "- Data directories on $(stat -f -c %T "$WORK_DIR") ($(df -P "$WORK_DIR" | awk 'NR == 2 { print $1 }')); 4 KiB O_DSYNC write: ${FSYNC_MS} ms"
	echo "- brainy-core $BRAINY_VERSION ($(go version | awk '{ print $3 }')), $(redis-server --version | awk '{ print $3 }' | sed 's/v=/redis-server /'), etcd $(etcd --version | awk '/etcd Version/ { print $3 }'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
	echo "- Load: $CONNECTIONS connections, $THREADS client threads, ${DURATION} s per run, $KEYS pre-loaded keys, $VALUE_SIZE-byte values, uniformly random keys"
	echo
	echo "| store | op | req/s | p50 ms | p99 ms | CPU server | CPU client | CPU kernel | CPU other | errors |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r -a f <<<"$r"
		printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' \
			"${f[0]}" "${f[1]}" "${f[2]}" "${f[3]}" "${f[4]}" "${f[5]}" "${f[6]}" "${f[7]}" "${f[8]}" "${f[9]:-none}"
	done
	echo
	echo "CPU columns: average cores busy during the run (of $(nproc)): the store process, the load generator (wrk or redis-benchmark), the kernel outside processes (interrupts, loopback soft interrupts, kernel threads such as the journal), and every other process on the machine."
	echo
	echo "| op | brainy/redis req/s | brainy/etcd req/s | brainy/redis p99 | brainy/etcd p99 |"
	echo "|---|---:|---:|---:|---:|"
	for op in GET PUT; do
		printf '| %s | %s | %s | %s | %s |\n' "$op" \
			"$(ratio "$(row_field brainy-core "$op" 2)" "$(row_field redis "$op" 2)")" \
			"$(ratio "$(row_field brainy-core "$op" 2)" "$(row_field etcd "$op" 2)")" \
			"$(ratio "$(row_field brainy-core "$op" 4)" "$(row_field redis "$op" 4)")" \
			"$(ratio "$(row_field brainy-core "$op" 4)" "$(row_field etcd "$op" 4)")"
	done
	echo
	# The write path's goals against Redis (appendfsync always), same run.
	local put get p99
	put=$(ratio "$(row_field brainy-core PUT 2)" "$(row_field redis PUT 2)")
	p99=$(ratio "$(row_field brainy-core PUT 4)" "$(row_field redis PUT 4)")
	get=$(ratio "$(row_field brainy-core GET 2)" "$(row_field redis GET 2)")
	printf 'brainy-core/Redis: durable PUT req/s %s (goal >= 0.6: %s), PUT p99 %s (goal <= 2: %s), GET req/s %s (goal >= 1.0: %s)\n' \
		"$put" "$(goal "$put" '>=' 0.6)" "$p99" "$(goal "$p99" '<=' 2)" "$get" "$(goal "$get" '>=' 1.0)"
	if [[ -n "$BRAINY_COMMITS" ]]; then
		echo "brainy-core group commit during the PUT run: $BRAINY_COMMITS"
	fi
	if ((BRAINY_STOP_STATUS != 0)); then
		echo "brainy-core exited with status $BRAINY_STOP_STATUS on SIGTERM (see brainy-core.log)"
	fi
	if ((BRAINY_LOG_PROBLEMS > 0)); then
		echo "brainy-core logged $BRAINY_LOG_PROBLEMS lines above INFO (see brainy-core.log)"
	fi
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
	VALUE=$(printf '%*s' "$VALUE_SIZE" '' | tr ' ' x)
	BRAINY_LOG_PROBLEMS=0
	BRAINY_STOP_STATUS=0
	BRAINY_COMMITS=""

	trap cleanup EXIT
	trap 'log interrupted; exit 130' INT
	trap 'log terminated; exit 143' TERM
	mkdir -p "$TMP_BASE"
	WORK_DIR=$(mktemp -d "$TMP_BASE/brainy-bench-e2e.XXXXXX")
	if [[ -n "${BENCH_RESULTS_DIR:-}" ]]; then
		RESULTS_DIR=$BENCH_RESULTS_DIR
		mkdir -p "$RESULTS_DIR"
	else
		RESULTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-bench-results.XXXXXX")
	fi
	case "$(stat -f -c %T "$WORK_DIR")" in
	tmpfs | ramfs) log "WARNING: $WORK_DIR is in memory; fsync costs nothing there (set BENCH_TMPDIR)" ;;
	esac
	FSYNC_MS=$(probe_fsync)
	log "4 KiB O_DSYNC write in $WORK_DIR: $FSYNC_MS ms"

	bench_brainy
	bench_redis
	bench_etcd

	report | tee "$RESULTS_DIR/results.md"
	log "report and raw outputs in $RESULTS_DIR"
	if ((${#FAILURES[@]} > 0)); then
		die "${#FAILURES[@]} check(s) failed: ${FAILURES[*]}"
	fi
}

main "$@"
