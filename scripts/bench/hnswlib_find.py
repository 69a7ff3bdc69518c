#!/usr/bin/env python3
"""The anchors of make bench-find: hnswlib (Debian python3-hnswlib) and
FAISS's HNSW (python3-faiss, when installed) on the same vectors, with the
same M, ef_construction and ef, one thread each.

usage: hnswlib_find.py DIR M EF_CONSTRUCTION K EF[,EF...] ROUNDS [nofaiss]
DIR holds base.f32, queries.f32 (float32, little-endian, row after row),
truth.i32 (the exact k nearest, by row) and dims.txt. Prints one JSON
object: build seconds and, per ef, microseconds per query (the best of
ROUNDS passes over the queries, as bench/find takes its own) and recall@k,
for hnswlib, and the same under "faiss" when FAISS is there. FAISS has no
cosine: its vectors are normalised and compared by inner product, which
ranks as cosine does.
"""
import json
import sys
import time

import hnswlib
import numpy as np


def main():
    d, m, efc, k, efs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    skip_faiss = len(sys.argv) > 7 and sys.argv[7] == "nofaiss"
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
        took = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            labels, _ = index.knn_query(queries, k=k, num_threads=1)
            took = min(took, time.perf_counter() - start)
        hits = sum(len(set(labels[i]) & set(truth[i])) for i in range(len(queries)))
        out["searches"].append({"ef": ef, "us_per_query": took / len(queries) * 1e6, "recall": hits / (len(queries) * k)})
    try:
        import faiss
    except ImportError:
        faiss = None
    if skip_faiss:
        faiss = None
    if faiss is not None:
        faiss.omp_set_num_threads(1)
        nb, nq = base / np.linalg.norm(base, axis=1, keepdims=True), queries / np.linalg.norm(queries, axis=1, keepdims=True)
        fx = faiss.IndexHNSWFlat(dims, m, faiss.METRIC_INNER_PRODUCT)
        fx.hnsw.efConstruction = efc
        start = time.perf_counter()
        fx.add(np.ascontiguousarray(nb, dtype="float32"))
        fout = {"build_seconds": time.perf_counter() - start, "searches": []}
        for ef in [int(e) for e in efs.split(",")]:
            fx.hnsw.efSearch = max(ef, k)
            took = float("inf")
            for _ in range(rounds):
                start = time.perf_counter()
                _, labels = fx.search(np.ascontiguousarray(nq, dtype="float32"), k)
                took = min(took, time.perf_counter() - start)
            hits = sum(len(set(labels[i]) & set(truth[i])) for i in range(len(queries)))
            fout["searches"].append({"ef": ef, "us_per_query": took / len(queries) * 1e6, "recall": hits / (len(queries) * k)})
        out["faiss"] = fout
    print(json.dumps(out))


if __name__ == "__main__":
    main()
