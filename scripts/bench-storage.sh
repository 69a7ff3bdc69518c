#!/usr/bin/env bash
# Storage benchmark: the Go benchmarks of tiers/backend, each backend opened
# as a node opens it (backend.Open), against the local test servers
# (versitygw for S3, fake-gcs-server for GCS, Azurite for Azure), which
# tiers/objstore/objstoretest provisions and stops again.
#
#   BenchmarkAdd        64 goroutines, each applying one-item synced batches
#                       of 100-byte values: items/s added and, for object
#                       stores, object Puts per item. The -unbuffered rows
#                       write to the segment log directly, without the
#                       buffered wrapper Open puts over it.
#   BenchmarkGet        point reads of distinct existing keys in random
#                       order: p50/p99 latency, cached (the writer reads),
#                       reopened (after a close and open: every object
#                       store read misses the value cache), and writing
#                       (cached, while one goroutine applies synced
#                       one-item batches back to back; -unbuffered: both on
#                       the segment log directly).
#   BenchmarkTieredGet  hot dir + S3 warm + Azure cold: p50/p99 of reads
#                       that hit each tier, each key's first read (a warm
#                       or cold hit promotes the key to hot).
#
# The raw `go test` output goes to stderr and $BENCH_RESULTS_DIR, the
# markdown summary to stdout.
#
# Usage: scripts/bench-storage.sh     (or: make bench-storage)
#
# Settings (environment):
#   BENCH_ADD_TIME       -benchtime of BenchmarkAdd            (default 3s)
#   BENCH_READS          reads per BenchmarkGet case           (default 2000)
#   BENCH_TIERED_READS   reads per tier in BenchmarkTieredGet  (default 1000)
#   BENCH_RESULTS_DIR    where the raw outputs go (default: a new temporary
#                        directory)
#   CI                   defaults to true here, so that a server that
#                        cannot be provisioned fails the run instead of
#                        skipping its rows
#
# About 5 minutes on two cores.

set -euo pipefail

ADD_TIME="${BENCH_ADD_TIME:-3s}"
READS="${BENCH_READS:-2000}"
TIERED_READS="${BENCH_TIERED_READS:-1000}"
RESULTS="${BENCH_RESULTS_DIR:-$(mktemp -d -t brainy-bench-storage.XXXXXX)}"
GO="${GO:-go}"
export CI="${CI:-true}"

cd "$(dirname "$0")/.."
mkdir -p "$RESULTS"

run() { # name, -bench regexp, -benchtime
	echo "== go test -run '^\$' -bench '$2' -benchtime $3 -benchmem ./tiers/backend" >&2
	"$GO" test -run '^$' -bench "$2" -benchtime "$3" -benchmem -timeout 30m ./tiers/backend \
		| tee "$RESULTS/$1.txt" >&2
}

run add '^BenchmarkAdd$' "$ADD_TIME"
run get '^BenchmarkGet$' "${READS}x"
run tiered '^BenchmarkTieredGet$' "${TIERED_READS}x"

# summary prints the markdown tables; metric(unit) is the value printed
# before that unit on a benchmark line.
summary() {
	awk '
	function metric(unit,   i) { for (i = 3; i <= NF; i++) if ($i == unit) return $(i-1); return "-" }
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		split(name, p, "/")
		if (p[1] == "BenchmarkAdd")
			add[++na] = sprintf("| %s | %s | %s |", p[2], metric("items/s"), metric("puts/item"))
		else if (p[1] == "BenchmarkGet")
			get[++ng] = sprintf("| %s | %s | %s | %s | %s |", p[2], p[3], metric("p50-µs"), metric("p99-µs"), metric("objreads/get"))
		else if (p[1] == "BenchmarkTieredGet")
			tier[++nt] = sprintf("| %s | %s / %s | %s / %s | %s / %s | %s | %s |", p[2],
				metric("hot-p50-µs"), metric("hot-p99-µs"), metric("warm-p50-µs"), metric("warm-p99-µs"),
				metric("cold-p50-µs"), metric("cold-p99-µs"), metric("puts/promotion"), metric("objreads/promotion"))
	}
	END {
		print "Added: 64 writers, one-item synced batches, 100-byte values"
		print ""
		print "| backend | items/s | object puts/item |"
		print "|---|---:|---:|"
		for (i = 1; i <= na; i++) print add[i]
		print ""
		print "Point reads, one at a time, each key once"
		print ""
		print "| backend | case | p50 µs | p99 µs | object reads/get |"
		print "|---|---|---:|---:|---:|"
		for (i = 1; i <= ng; i++) print get[i]
		print ""
		print "Tiered reads (hot dir, S3 warm, Azure cold), each key once, p50 / p99 µs"
		print ""
		print "| case | hot | warm | cold | object puts/promotion | object reads/promotion |"
		print "|---|---:|---:|---:|---:|---:|"
		for (i = 1; i <= nt; i++) print tier[i]
	}' "$RESULTS"/add.txt "$RESULTS"/get.txt "$RESULTS"/tiered.txt
}

echo "# Storage benchmark, $(date -u +%Y-%m-%d), $(nproc) cores, $("$GO" env GOVERSION)"
echo
summary
echo
echo "Raw output: $RESULTS"
