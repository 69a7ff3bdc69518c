#!/usr/bin/env bash
# make bench-find: nearest-neighbour search, brainy's index (internal/hnsw)
# against hnswlib on the same vectors, one thread each, in one run; then
# the same vectors through two real brainy-core processes over HTTP, one
# with its index and one without (bench/find). Arguments go to bench/find
# (-n, -dims, -ef, -http-queries, ...).
#
# hnswlib and numpy come from Debian (python3-hnswlib, python3-numpy),
# installed with apt-get when /usr/bin/python3 cannot import them.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=bench-find
# shellcheck source=scripts/bench/lib.sh disable=SC2034
source "$REPO_ROOT/scripts/bench/lib.sh"

PYTHON=/usr/bin/python3

if ! "$PYTHON" -c 'import hnswlib, numpy' 2>/dev/null; then
	log "installing with apt-get: python3-hnswlib python3-numpy"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-hnswlib python3-numpy >&2
	"$PYTHON" -c 'import hnswlib, numpy' || die "hnswlib still not importable by $PYTHON"
fi

cd "$REPO_ROOT"
BIN="$(mktemp -d)"
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/brainy-core" ./cmd/brainy-core
go build -o "$BIN/find" ./bench/find
"$BIN/find" -python "$PYTHON" -core "$BIN/brainy-core" "$@"
