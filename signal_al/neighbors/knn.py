"""Nearest labeled neighbours with faiss: exact (flat) or approximate (IVF), CPU or GPU.

Every score in this project looks for neighbours in the labeled set only, so the index is
built once over the labeled embeddings and searched with the unlabeled ones in chunks;
memory stays O((N + L)·D + chunk·k) plus faiss's own bounded blocks. Distances come back
as Euclidean (not squared) distances in float64; pairs that are very close are recomputed
directly in float64, because the ``|x|² + |y|² − 2x·y`` form faiss uses cancels for
near-duplicates and would otherwise turn a zero distance into ~3e-4.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

from signal_al.neighbors.validation import row_sq_norms

__all__ = ["LabeledIndex", "ListBatchedIVF", "faiss_gpu_available", "threaded_search"]

#: Squared distances below this fraction of |q|² + |y|² are recomputed in float64 from the
#: vectors themselves (there the float32 ``|q|² + |y|² − 2q·y`` has lost most of its digits).
_REFINE_BELOW = 1e-2
#: Smallest query slice worth a thread of its own in the exact search.
_MIN_ROWS_PER_THREAD = 1024
#: Unit-norm check for the inner-product shortcut.
_UNIT_TOL = 1e-4


def faiss_gpu_available() -> bool:
    """True when the installed faiss has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class LabeledIndex:
    """A kNN index over the labeled embeddings (rows of ``embeddings``).

    The default is exact search with a faiss flat index. ``approximate=True`` uses an
    inverted-file search (:class:`ListBatchedIVF`: k-means lists, exact distances inside
    the ``nprobe`` probed lists) meant for large labeled sets, where the exact search
    dominates the run time. ``use_gpu=None`` picks faiss's GPU flat index when
    :func:`faiss_gpu_available` (on a GPU the exact search is cheaper than building lists,
    so ``approximate`` is ignored there); the CPU path is the default everywhere else and
    returns the same neighbours.

    When every labeled row has unit norm the index searches by inner product, which is
    cheaper than L2 and gives the same order, and converts back to Euclidean distances.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        *,
        approximate: bool = False,
        nlist: int | None = None,
        nprobe: int | None = None,
        use_gpu: bool | None = None,
        seed: int = 0,
    ) -> None:
        data = np.ascontiguousarray(embeddings, dtype=np.float32)
        if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
            raise ValueError(f"embeddings: expected a non-empty 2-D array, got shape {np.shape(embeddings)}")
        self.data = data
        self.dim = data.shape[1]
        self._sqnorm = row_sq_norms(data)
        self.unit_norm = bool(np.all(np.abs(self._sqnorm - 1.0) < _UNIT_TOL))
        metric = faiss.METRIC_INNER_PRODUCT if self.unit_norm else faiss.METRIC_L2
        self.approximate = bool(approximate) and len(data) > 1
        if use_gpu is None:
            use_gpu = faiss_gpu_available()
        elif use_gpu and not faiss_gpu_available():
            raise ValueError("use_gpu: the installed faiss has no GPU support or no GPU is visible")
        self.use_gpu = bool(use_gpu)

        if self.approximate and not self.use_gpu:
            self._ivf = ListBatchedIVF(data, metric, nlist=nlist, nprobe=nprobe, seed=seed)
            self.nlist, self.nprobe = self._ivf.nlist, self._ivf.nprobe
            index = None
        else:  # exact; on a GPU the exact search is faster than building an IVF index
            self._ivf = None
            self.nlist = self.nprobe = None
            index = faiss.IndexFlatIP(self.dim) if self.unit_norm else faiss.IndexFlatL2(self.dim)
            index.add(data)
        if self.use_gpu and index is not None:  # pragma: no cover - needs faiss-gpu and a GPU
            self._gpu_resources = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
        self.index = index
        self._exact: LabeledIndex | None = None if self._ivf is not None else self

    def __len__(self) -> int:
        return len(self.data)

    def search(
        self, queries: np.ndarray, k: int, *, chunk_size: int = 16384
    ) -> tuple[np.ndarray, np.ndarray]:
        """Euclidean distances (float64) and indices (int64) of the ``k`` nearest labeled rows.

        ``k`` larger than the labeled set returns all labeled rows. Rows are sorted by
        distance. The queries are processed ``chunk_size`` rows at a time.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries: expected shape (n, {self.dim}), got {queries.shape}")
        if k < 1:
            raise ValueError(f"k: must be positive, got {k}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be positive, got {chunk_size}")
        k = min(int(k), len(self))
        n = len(queries)
        dist = np.empty((n, k), dtype=np.float64)
        idx = np.empty((n, k), dtype=np.int64)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            dist[start:stop], idx[start:stop] = self._search_chunk(queries[start:stop], k)
        return dist, idx

    def _search_chunk(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        qn = row_sq_norms(q)
        sq, idx = self._search_squared(q, k, qn)
        missing = idx < 0  # an approximate search can come back short of k neighbours
        if missing.any():
            rows = np.flatnonzero(missing.any(axis=1))
            sq[rows], idx[rows] = self._exact_index()._search_squared(q[rows], k, qn[rows])
        np.maximum(sq, 0.0, out=sq)
        close = sq < _REFINE_BELOW * (qn[:, None] + self._sqnorm[idx])
        if close.any():
            r, c = np.nonzero(close)
            diff = q[r].astype(np.float64) - self.data[idx[r, c]].astype(np.float64)
            sq[r, c] = np.einsum("ij,ij->i", diff, diff)
            # keep each row sorted by the refined distances
            order = np.argsort(sq, axis=1, kind="stable")
            sq = np.take_along_axis(sq, order, axis=1)
            idx = np.take_along_axis(idx, order, axis=1)
        return np.sqrt(sq), idx

    def _search_squared(self, q: np.ndarray, k: int, qn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared Euclidean distances (float64, unclamped) and indices, as the index found them."""
        raw, idx = self._ivf.search(q, k) if self._ivf is not None else self._flat_search(q, k)
        if self.unit_norm:  # |q - y|² = |q|² + 1 - 2 q·y for unit y
            sq = qn[:, None] + 1.0 - 2.0 * raw.astype(np.float64)
            sq[idx < 0] = np.inf
            return sq, idx
        return raw.astype(np.float64), idx

    def _flat_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(q, k) if self.use_gpu else threaded_search(self.index, q, k)

    def _exact_index(self) -> LabeledIndex:
        if self._exact is None:
            self._exact = LabeledIndex(self.data, approximate=False, use_gpu=self.use_gpu)
        return self._exact


def threaded_search(index: faiss.Index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` split over Python threads that each run faiss single-threaded.

    Same results as one multi-threaded call (faiss releases the GIL), but without OpenMP
    barriers: when another process takes a core, one slice waits instead of every block of
    the search (measured 25-30 % faster on a loaded 2-core machine, equal on an idle one).
    """
    threads = faiss.omp_get_max_threads()
    n = len(q)
    if threads < 2 or n < 2 * _MIN_ROWS_PER_THREAD:
        return index.search(q, k)
    parts = max(threads, min(4 * threads, n // _MIN_ROWS_PER_THREAD))
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)

    def run(j: int) -> None:
        lo, hi = bounds[j], bounds[j + 1]
        index.search(q[lo:hi], k, D=dist[lo:hi], I=idx[lo:hi])

    with ThreadPoolExecutor(threads, initializer=faiss.omp_set_num_threads, initargs=(1,)) as pool:
        for _ in pool.map(run, range(parts)):
            pass
    return dist, idx


class ListBatchedIVF:
    """Inverted-file kNN that scans one list at a time for all the queries probing it.

    faiss's CPU ``IndexIVFFlat`` walks the probed lists query by query; with hundreds of
    thousands of queries that re-reads every list from memory thousands of times and is
    memory-bound. Here the labeled rows are grouped by their k-means list (faiss k-means),
    each query picks its ``nprobe`` nearest lists, and each list is searched once per
    chunk of queries with faiss's exact BLAS kernel (``faiss.knn``, single-threaded, one
    Python thread per core taking lists from a queue); per-list results are then merged.
    Distances inside the probed lists are exact, so only neighbours living in unprobed
    lists can be missed. Defaults: about sqrt(L) lists, ``max(8, nlist/32)`` probes.

    ``search`` returns faiss-style raw values (inner products for ``METRIC_INNER_PRODUCT``,
    squared L2 otherwise) and ``-1`` ids where fewer than k rows were probed.
    """

    def __init__(self, data: np.ndarray, metric: int, *, nlist: int | None = None,
                 nprobe: int | None = None, seed: int = 0) -> None:
        n, dim = data.shape
        self.metric = metric
        self.nlist = max(1, min(int(nlist or _default_nlist(n)), n))
        self.nprobe = max(1, min(int(nprobe or _default_nprobe(self.nlist)), self.nlist))
        kmeans = faiss.Kmeans(dim, self.nlist, niter=_KMEANS_ITER, seed=seed, max_points_per_centroid=_KMEANS_POINTS,
                              min_points_per_centroid=1, spherical=metric == faiss.METRIC_INNER_PRODUCT)
        kmeans.train(data)
        self.quantizer = faiss.IndexFlat(dim, metric)
        self.quantizer.add(kmeans.centroids)
        _, assign = threaded_search(self.quantizer, data, 1)
        order = np.argsort(assign[:, 0], kind="stable")
        self.ids = order.astype(np.int64)
        self.vectors = np.ascontiguousarray(data[order])
        self.offsets = np.searchsorted(assign[order, 0], np.arange(self.nlist + 1))

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n, nprobe = len(q), self.nprobe
        larger_is_closer = self.metric == faiss.METRIC_INNER_PRODUCT
        # one row of k candidates per (query, probe) pair, in query-major order
        cand_d = np.full((n * nprobe, k), -np.inf if larger_is_closer else np.inf, dtype=np.float32)
        cand_i = np.full((n * nprobe, k), -1, dtype=np.int64)
        _, probes = threaded_search(self.quantizer, q, nprobe)
        flat = probes.ravel()
        pairs = np.argsort(flat, kind="stable")  # (query, probe) pairs grouped by list
        bounds = np.searchsorted(flat[pairs], np.arange(self.nlist + 1))
        sizes = np.diff(self.offsets)
        work = (np.diff(bounds) * sizes).astype(np.float64)
        tasks = [int(t) for t in np.argsort(-work, kind="stable") if work[t] > 0]  # biggest first

        def scan(lst: int) -> None:
            sel = pairs[bounds[lst] : bounds[lst + 1]]
            lo, hi = int(self.offsets[lst]), int(self.offsets[lst + 1])
            kk = min(k, hi - lo)
            d, i = faiss.knn(q[sel // nprobe], self.vectors[lo:hi], kk, metric=self.metric)
            cand_d[sel, :kk] = d  # every (query, probe) pair belongs to one list: disjoint writes
            cand_i[sel, :kk] = self.ids[lo + i]

        threads = min(faiss.omp_get_max_threads(), len(tasks))
        if threads > 1:
            # One single-threaded faiss call per list on each of `threads` Python threads (faiss
            # releases the GIL) instead of thousands of small OpenMP regions, whose barriers
            # stall badly when other processes compete for the cores.
            with ThreadPoolExecutor(threads, initializer=faiss.omp_set_num_threads, initargs=(1,)) as pool:
                for _ in pool.map(scan, tasks):
                    pass
        else:
            for lst in tasks:
                scan(lst)
        cand_d = cand_d.reshape(n, nprobe * k)
        cand_i = cand_i.reshape(n, nprobe * k)
        key = -cand_d if larger_is_closer else cand_d
        if nprobe > 1:
            top = np.argpartition(key, k - 1, axis=1)[:, :k]
            key = np.take_along_axis(key, top, axis=1)
            cand_d = np.take_along_axis(cand_d, top, axis=1)
            cand_i = np.take_along_axis(cand_i, top, axis=1)
        best = np.argsort(key, axis=1, kind="stable")
        return np.take_along_axis(cand_d, best, axis=1), np.take_along_axis(cand_i, best, axis=1)


#: k-means settings of the approximate index: a few iterations on a subsample are plenty
#: for partitioning (they only decide which lists get probed).
_KMEANS_ITER = 10
_KMEANS_POINTS = 64


def _default_nlist(n: int) -> int:
    """About sqrt(L) lists (and at least ~32 rows per list)."""
    return max(1, min(int(round(math.sqrt(n))), n // 32))


def _default_nprobe(nlist: int) -> int:
    """Probe ~1/32 of the lists, at least 8: about 3-4 % of the labeled rows at L = 50k."""
    return min(nlist, max(8, math.ceil(nlist / 32)))
