#!/usr/bin/env python3
"""The anchor of make bench-find: hnswlib (Debian python3-hnswlib) on the
same vectors, with the same M, ef_construction and ef, one thread.

usage: hnswlib_find.py DIR M EF_CONSTRUCTION K EF[,EF...]
DIR holds base.f32, queries.f32 (float32, little-endian, row after row),
truth.i32 (the exact k nearest, by row) and dims.txt. Prints one JSON
object: build seconds and, per ef, microseconds per query and recall@k.
"""
import json
import sys
import time

import hnswlib
import numpy as np


def main():
    d, m, efc, k, efs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    dims = int(open(f"{d}/dims.txt").read())
    base = np.fromfile(f"{d}/base.f32", dtype="<f4").reshape(-1, dims)
    queries = np.fromfile(f"{d}/queries.f32", dtype="<f4").reshape(-1, dims)
    truth = np.fromfile(f"{d}/truth.i32", dtype="<i4").reshape(len(queries), -1)[:, :k]
    index = hnswlib.Index(space="cosine", dim=dims)
    index.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=1)
    index.set_num_threads(1)
    start = time.perf_counter()
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build = time.perf_counter() - start
    out = {"build_seconds": build, "searches": []}
    for ef in [int(e) for e in efs.split(",")]:
        index.set_ef(max(ef, k))
        start = time.perf_counter()
        labels, _ = index.knn_query(queries, k=k, num_threads=1)
        took = time.perf_counter() - start
        hits = sum(len(set(labels[i]) & set(truth[i])) for i in range(len(queries)))
        out["searches"].append({"ef": ef, "us_per_query": took / len(queries) * 1e6, "recall": hits / (len(queries) * k)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
