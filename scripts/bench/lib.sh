#!/usr/bin/env bash
# Helpers shared by the benchmark scripts (scripts/bench-*.sh), sourced by
# them after they set BENCH_NAME (for log lines). The arrays PIDS and
# FAILURES and the variables WORK_DIR and RESULTS_DIR, which cleanup and
# the driver helpers use, start empty unless the script has set them
# before. Some functions set globals for the caller (STOP_STATUS,
# FREE_PORT, DRIVER_STATUS) or read its PID.
# shellcheck disable=SC2034,SC2153

declare -p PIDS &>/dev/null || PIDS=()
declare -p FAILURES &>/dev/null || FAILURES=()
: "${WORK_DIR=}" "${RESULTS_DIR=}"

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }

die() {
	log "FATAL: $*"
	exit 1
}

# fail records a failed check; the run goes on and exits 1 at the end.
fail() {
	log "FAILED: $*"
	FAILURES+=("$*")
}

# end_run RC TENTHS stops every process this script started (SIGTERM to
# all, then up to TENTHS tenths of a second for each to exit before
# SIGKILL), removes the data and exits with RC.
end_run() {
	local rc=$1 tenths=$2 pid i
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for ((i = 0; i < tenths; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
	if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
		rm -rf "$WORK_DIR"
	fi
	exit "$rc"
}

# cleanup stops every process this script started and removes the data.
cleanup() {
	local rc=$?
	if ((${#PIDS[@]} > 0)); then
		log "stopping the processes started here (${PIDS[*]})"
	fi
	end_run "$rc" 100
}

# stop_pid stops one process started by this script (SIGTERM, SIGKILL
# after 10 s), forgets it, and sets STOP_STATUS to its exit status.
stop_pid() {
	local pid=$1 i keep=()
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	STOP_STATUS=0
	wait "$pid" 2>/dev/null || STOP_STATUS=$?
	for i in "${PIDS[@]}"; do
		[[ "$i" == "$pid" ]] || keep+=("$i")
	done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# as_root runs a command as root (directly, or through sudo).
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# port_in_use reports whether something listens on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
	local port i low=32768
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range || true
	((low > 11000)) || low=32768
	for ((i = 0; i < 200; i++)); do
		port=$((10000 + RANDOM % (low - 10000)))
		[[ "$USED_PORTS" == *" $port "* ]] && continue
		port_in_use "$port" && continue
		USED_PORTS+="$port "
		FREE_PORT=$port
		return
	done
	die "no free loopback port found"
}

# wait_until NAME PID CMD... retries CMD for up to 30 s; returns 1 if
# process PID exits first (e.g. its port was taken meanwhile).
wait_until() {
	local what=$1 pid=$2 i
	shift 2
	for ((i = 0; i < 300; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$what exited during start-up"
			return 1
		fi
		sleep 0.1
	done
	die "$what not ready after 30 s"
}

# start_with_retries NAME START_FN LOG: runs START_FN (which picks free
# ports) up to 3 times; a port can be taken between the check and the bind.
start_with_retries() {
	local name=$1 start=$2 logfile=$3 attempt
	for attempt in 1 2 3; do
		if "$start"; then
			return 0
		fi
		stop_pid "$PID"
		log "$name start-up attempt $attempt failed; its log ends with:"
		tail -5 "$logfile" >&2 || true
	done
	die "$name did not start"
}

# cpu_ticks_busy prints the clock ticks the machine spent working since
# boot (user, nice, system, irq, softirq; not idle, I/O wait or steal).
cpu_ticks_busy() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# to_ms converts a wrk duration ("512.00us", "2.10ms", "1.02s") to ms.
to_ms() {
	awk -v d="$1" 'BEGIN {
		if (d ~ /us$/)      { sub(/us$/, "", d); printf "%.3f", d / 1000 }
		else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.3f", d }
		else if (d ~ /m$/)  { sub(/m$/, "", d);  printf "%.3f", d * 60000 }
		else if (d ~ /s$/)  { sub(/s$/, "", d);  printf "%.3f", d * 1000 }
		else                { printf "nan" }
	}'
}

# row_field STORE OP N prints field N of the matching row.
row_field() {
	local r
	for r in "${ROWS[@]}"; do
		IFS='|' read -r -a f <<<"$r"
		if [[ "${f[0]}" == "$1" && "${f[1]}" == "$2" ]]; then
			echo "${f[$3]}"
			return
		fi
	done
	echo 0
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# build_brainy DIR [CMD...] builds brainy-core (or the named commands under
# cmd/) into DIR, from the work tree or, with BRAINY_REF (BENCH_BRAINY_REF),
# from that commit, extracted under $WORK_DIR/src; sets BRAINY_VERSION for
# the report. Comparing two builds: run the script twice, once with
# BENCH_BRAINY_REF set to the older commit.
build_brainy() {
	local out=$1 src=$REPO_ROOT commit cmd
	shift
	local cmds=("${@:-brainy-core}")
	mkdir -p "$out"
	if [[ -n "$BRAINY_REF" ]]; then
		commit=$(git -C "$REPO_ROOT" rev-parse --short "$BRAINY_REF^{commit}") ||
			die "BENCH_BRAINY_REF=$BRAINY_REF is not a commit"
		src="$WORK_DIR/src"
		mkdir -p "$src"
		git -C "$REPO_ROOT" archive "$commit" | tar -x -C "$src"
		BRAINY_VERSION="commit $commit"
	else
		commit=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
		BRAINY_VERSION="work tree at $commit"
		if [[ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
			BRAINY_VERSION+=" with uncommitted changes"
		fi
	fi
	log "building ${cmds[*]} ($BRAINY_VERSION)"
	for cmd in "${cmds[@]}"; do
		(cd "$src" && go build -o "$out/$cmd" "./cmd/$cmd")
	done
}

# The scripts that build and run a Go driver (bench/<pkg>), which starts
# and stops every server itself, share the rest: driver_prepare, then
# build_driver, then run_driver and finish_driver.

# stop_driver is their EXIT trap: cleanup without its log line, and 40 s
# instead of 10 s before SIGKILL: on SIGTERM the driver stops the servers it
# started, and a brainy-core node may take a few seconds to hand over its
# leaderships.
stop_driver() {
	end_run $? 400
}

# driver_prepare sets the traps (stop_driver on exit; SIGINT and SIGTERM
# logged, exit 130 and 143) and makes WORK_DIR (under TMP_BASE) and
# RESULTS_DIR (BENCH_RESULTS_DIR, or a new temporary directory), both named
# after BENCH_NAME; it warns when WORK_DIR is in memory.
driver_prepare() {
	trap stop_driver EXIT
	trap 'log interrupted; exit 130' INT
	trap 'log terminated; exit 143' TERM
	mkdir -p "$TMP_BASE"
	WORK_DIR=$(mktemp -d "$TMP_BASE/brainy-$BENCH_NAME.XXXXXX")
	if [[ -n "${BENCH_RESULTS_DIR:-}" ]]; then
		RESULTS_DIR=$BENCH_RESULTS_DIR
		mkdir -p "$RESULTS_DIR"
	else
		RESULTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-$BENCH_NAME-results.XXXXXX")
	fi
	case "$(stat -f -c %T "$WORK_DIR")" in
	tmpfs | ramfs) log "WARNING: $WORK_DIR is in memory; fsync costs nothing there (set BENCH_TMPDIR)" ;;
	esac
}

# build_driver PKG builds brainy-core (from the work tree or
# BENCH_BRAINY_REF) and the driver ./bench/PKG (always from the work tree)
# into $WORK_DIR/bin, the driver as $BENCH_NAME; sets BRAINY_VERSION.
build_driver() {
	build_brainy "$WORK_DIR/bin"
	log "building the driver"
	(cd "$REPO_ROOT" && go build -o "$WORK_DIR/bin/$BENCH_NAME" "./bench/$1")
}

# run_driver CMD... runs the driver with its stdout appended to
# $RESULTS_DIR/results.md, in the background so that stop_driver can stop
# it, and sets DRIVER_STATUS to its exit status.
run_driver() {
	"$@" >>"$RESULTS_DIR/results.md" &
	local pid=$!
	PIDS+=("$pid")
	DRIVER_STATUS=0
	wait "$pid" || DRIVER_STATUS=$?
	PIDS=()
}

# finish_driver DATA WHAT NAME...: keeps the files of DATA (the driver's
# work directory, two levels down) named like one of the NAME patterns
# with the report, as DIR-FILE; prints the report, logs that WHAT are in
# RESULTS_DIR, and dies if the driver failed.
finish_driver() {
	local data=$1 what=$2 match=() name
	shift 2
	for name in "$@"; do
		((${#match[@]} == 0)) || match+=(-o)
		match+=(-name "$name")
	done
	if [[ -d "$data" ]]; then
		find "$data" -maxdepth 2 \( "${match[@]}" \) -print0 |
			while IFS= read -r -d '' f; do
				cp "$f" "$RESULTS_DIR/$(basename "$(dirname "$f")")-$(basename "$f")"
			done
	fi
	cat "$RESULTS_DIR/results.md"
	log "$what in $RESULTS_DIR"
	((DRIVER_STATUS == 0)) || die "the driver exited with status $DRIVER_STATUS"
}
