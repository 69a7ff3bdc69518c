#!/usr/bin/env bash
# Object-store writes per item, end to end: the real brainy-core binary with
# --storage s3://… on versitygw (the S3 server the tests use, provisioned by
# scripts/services/start-s3.sh), loaded over HTTP on loopback.
#
# Builds brainy-core (from the work tree, or from BENCH_BRAINY_REF) and the
# driver bench/objwrites, which puts a counting reverse proxy in front of
# versitygw, starts the nodes on their own fresh prefixes through it, and
# counts every S3 request they make. Two loads, for each cluster size in
# BENCH_NODES (1: a lone node; 3: three nodes on 127.0.0.x joined with
# --peers, each on its own prefix):
#   1. closed loop: BENCH_ITEMS adds (POST /v1/items) from each of
#      BENCH_WRITERS concurrent writers, each sending its next add once the
#      last one is answered;
#   2. sparse: BENCH_SPARSE adds from one writer that waits
#      BENCH_SPARSE_PACE after every answer (a lightly loaded node).
# Reported per run: items acknowledged, items/s, object Puts from the first
# add until 1 s after the last answer, split into segments, checkpoints,
# MANIFEST and claim records (a node's prefix claim and its renewals),
# Puts per acknowledged item (all nodes, and per node), items and KiB per
# segment Put; with BENCH_IDLE, the Puts of that long without load.
#
# The markdown report goes to stdout (and results.md in BENCH_RESULTS_DIR,
# with the nodes' logs); progress to stderr.
#
# Usage: scripts/bench-objstore-writes.sh     (or: make bench-objstore-writes)
#
# Settings (environment):
#   BENCH_ITEMS        adds per closed-loop run                (default 2000)
#   BENCH_WRITERS      closed-loop writer counts               (default 16,64)
#   BENCH_NODES        cluster sizes                           (default 1,3)
#   BENCH_SPARSE       adds in the sparse run; 0 skips it      (default 40)
#   BENCH_SPARSE_PACE  pause after each sparse answer          (default 250ms)
#   BENCH_IDLE         Puts counted this long after each closed-loop load
#                      (default 10s; 0 skips)
#   BENCH_VALUE_SIZE   value bytes per item                    (default 100)
#   BENCH_FIRST_IP     last octet of the first 127.0.0.x the nodes bind
#                      (HTTP 7070, QUIC 7071, gossip 7946)     (default 61)
#   BENCH_BRAINY_REF   build brainy-core from this commit instead of the
#                      work tree (e.g. HEAD~1, to compare)
#   BENCH_RESULTS_DIR  where the report and logs go (default: a new
#                      temporary directory)
#   BRAINY_TEST_S3_*   use this S3 server instead of provisioning versitygw
#                      (ENDPOINT, ACCESS_KEY, SECRET_KEY, REGION, BUCKET)
#
# About 3 minutes on two cores (each 3-node run waits for the cluster to
# place its partitions). Only processes this script started are stopped; a
# versitygw it started is stopped at the end unless a test process still
# uses it.

set -euo pipefail

ITEMS="${BENCH_ITEMS:-2000}"
WRITERS="${BENCH_WRITERS:-16,64}"
NODES="${BENCH_NODES:-1,3}"
SPARSE="${BENCH_SPARSE:-40}"
SPARSE_PACE="${BENCH_SPARSE_PACE:-250ms}"
IDLE="${BENCH_IDLE:-10s}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-100}"
FIRST_IP="${BENCH_FIRST_IP:-61}"
BRAINY_REF="${BENCH_BRAINY_REF:-}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LC_ALL=C

PIDS=()
WORK_DIR=""
RESULTS_DIR=""
FAILURES=()
BENCH_NAME=bench-objstore-writes
# shellcheck source=scripts/bench/lib.sh disable=SC2034
source "$REPO_ROOT/scripts/bench/lib.sh"

SERVICES="$REPO_ROOT/scripts/services"
CACHE=${BRAINY_CI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/brainy-ci}
OWNER=bench-objstore-writes
STARTED_S3=false

# provision_s3 takes BRAINY_TEST_S3_* from the environment, or starts (or
# reuses) versitygw with the project's script. While the run lasts it holds
# a shared lock on the server's users file, as test processes do, so that
# none of them stops the server underneath it.
provision_s3() {
	if [[ -n "${BRAINY_TEST_S3_ENDPOINT:-}" ]]; then
		log "using the S3 server at $BRAINY_TEST_S3_ENDPOINT"
		return
	fi
	mkdir -p "$CACHE/services"
	exec 8>"$CACHE/services/s3.users"
	flock -s 8
	local env
	# 8>&-: a server started here must not inherit (and so hold) the lock.
	env=$(BRAINY_SERVICE_OWNER=$OWNER "$SERVICES/start-s3.sh" 8>&-) || die "versitygw could not be provisioned"
	eval "$env"
	if [[ "$(cat "$CACHE/services/s3.owner" 2>/dev/null)" == "$OWNER" ]]; then
		STARTED_S3=true
	fi
}

# release_s3 stops the versitygw this script started, unless another
# process still holds the users lock.
release_s3() {
	$STARTED_S3 || return 0
	exec 8>&-
	(
		flock -n 9 || exit 0
		[[ "$(cat "$CACHE/services/s3.owner" 2>/dev/null)" == "$OWNER" ]] || exit 0
		"$SERVICES/stop-s3.sh" >&2
	) 9>"$CACHE/services/s3.users"
}

on_exit() {
	local rc=$?
	release_s3 || true
	cleanup_with "$rc"
}

cleanup_with() {
	(exit "$1")
	cleanup
}

main() {
	command -v go >/dev/null || die "go is not on PATH"
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-bench-objstore.XXXXXX")
	trap on_exit EXIT
	trap 'log interrupted; exit 130' INT
	trap 'log terminated; exit 143' TERM
	if [[ -n "${BENCH_RESULTS_DIR:-}" ]]; then
		RESULTS_DIR=$BENCH_RESULTS_DIR
		mkdir -p "$RESULTS_DIR"
	else
		RESULTS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/brainy-bench-objstore-results.XXXXXX")
	fi
	build_brainy "$WORK_DIR/bin"
	log "building the driver"
	(cd "$REPO_ROOT" && go build -o "$WORK_DIR/bin/objwrites" ./bench/objwrites)
	provision_s3

	local drv=("$WORK_DIR/bin/objwrites" -brainy-core "$WORK_DIR/bin/brainy-core" -work-dir "$RESULTS_DIR"
		-endpoint "$BRAINY_TEST_S3_ENDPOINT" -bucket "$BRAINY_TEST_S3_BUCKET" -region "${BRAINY_TEST_S3_REGION:-us-east-1}"
		-access-key "$BRAINY_TEST_S3_ACCESS_KEY" -secret-key "$BRAINY_TEST_S3_SECRET_KEY"
		-nodes "$NODES" -value-size "$VALUE_SIZE" -first-ip "$FIRST_IP")
	local rc=0 out="$RESULTS_DIR/results.md"
	{
		echo "# Object Puts per item, $(date -u '+%Y-%m-%d %H:%M') UTC"
		echo
		echo "Command: \`scripts/bench-objstore-writes.sh\` (\`make bench-objstore-writes\`), brainy-core $BRAINY_VERSION ($(go version | awk '{ print $3 }')), S3 server $BRAINY_TEST_S3_ENDPOINT ($(cat "$CACHE/bin/versitygw.version" 2>/dev/null || echo "not provisioned here") versitygw)"
		echo "Machine: $(nproc) vCPU, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
		echo
		echo "## Closed loop"
		echo
	} >"$out"
	"${drv[@]}" -writers "$WRITERS" -items "$ITEMS" -idle "$IDLE" >>"$out" || rc=$?
	if ((SPARSE > 0)); then
		{
			echo
			echo "## Sparse: one writer, $SPARSE_PACE between an answer and the next add"
			echo
		} >>"$out"
		"${drv[@]}" -writers 1 -items "$SPARSE" -pace "$SPARSE_PACE" >>"$out" || rc=$?
	fi
	cat "$out"
	log "report and node logs in $RESULTS_DIR"
	((rc == 0)) || die "the driver exited with status $rc"
}

main "$@"
