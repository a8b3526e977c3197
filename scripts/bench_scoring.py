#!/usr/bin/env python
"""Benchmark of the SIGnAL score (``signal_al.rewards.signal_scores``) against its floor and peers.

Every contender gets the same arrays (k = 10, C = 4, D = 384) and runs once, in its own
fresh process, so that its peak memory is its own. The arrays are random but shaped like
sentence-embedding output: a 64-component Gaussian mixture in a 32-dimensional latent
space mapped linearly to 384 dimensions plus isotropic noise; class probabilities are the
softmax of a random linear head on the embeddings.

Standard size (N = 50,000 unlabeled, L = 5,000 labeled), exact neighbours:
  ours         signal_scores (faiss flat index, chunked, vectorised KL)
  faiss_floor  faiss IndexFlatL2 build + k-NN search alone, on pre-normalised arrays
  numpy        a straightforward chunked numpy brute force of the same score
  skactiveml   scikit-activeml's ContrastiveAL fed the same embeddings and probabilities
Large size (N = 500,000, L = 50,000):
  ours_approx  signal_scores(approximate=True)
  ours_exact   signal_scores (exact)
  skactiveml   as above, cut off after --timeout seconds and reported as such
and the recall@10 of the approximate neighbours and the Spearman correlation of the
approximate scores with the exact ones.

The last line reads
  scoring: ours=<s> faiss_floor=<s> ratio_to_floor=<x> speedup_vs_skactiveml=<x>
  large_speedup_vs_skactiveml=<x> large_recall=<r> large_spearman=<rho>
(values of a part that did not run are ``na``; a speedup over a cut-off run is ``>=x``).
Needs the ``bench`` extra (scikit-activeml, psutil, scipy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K, C, D = 10, 4, 384
SIZES = {"standard": (50_000, 5_000), "large": (500_000, 50_000)}


# --------------------------------------------------------------------------- data
def make_arrays(n_u: int, n_l: int, seed: int) -> dict[str, np.ndarray]:
    """Embedding-like float32 arrays and softmax probabilities (see the module docstring)."""
    rng = np.random.default_rng(seed)
    latent, components = 32, 64
    n = n_u + n_l
    mixing = rng.standard_normal((latent, D), dtype=np.float32) / np.sqrt(latent)
    centres = 1.5 * rng.standard_normal((components, latent), dtype=np.float32)
    head = 0.5 * rng.standard_normal((D, C), dtype=np.float32)
    emb = np.empty((n, D), dtype=np.float32)
    probs = np.empty((n, C), dtype=np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries at the large size
        m = min(100_000, n - start)
        z = centres[rng.integers(0, components, m)] + rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ mixing + 0.3 * rng.standard_normal((m, D), dtype=np.float32)
        logits = x @ head
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        emb[start : start + m] = x
        probs[start : start + m] = p / p.sum(axis=1, keepdims=True)
    return {"probs_u": probs[:n_u], "emb_u": emb[:n_u], "probs_l": probs[n_u:], "emb_l": emb[n_u:]}


# --------------------------------------------------------------------------- contenders (worker side)
# Each contender is set up first (imports, adapters, pre-normalised copies: not timed) and
# returns the callable that is timed; the callable returns (scores or None, neighbours).
def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def setup_ours(a, approximate: bool = False):
    from signal_al.rewards import signal_scores

    def run():
        out = signal_scores(a["probs_u"], a["emb_u"], a["probs_l"], a["emb_l"], k=K, approximate=approximate,
                            return_neighbors=True)
        return out.scores, out.neighbors

    return run


def setup_faiss_floor(a):
    import faiss

    xu, xl = _normalized(a["emb_u"]), _normalized(a["emb_l"])

    def run():
        index = faiss.IndexFlatL2(D)
        index.add(xl)
        return None, index.search(xu, K)[1]

    return run


def setup_numpy(a):
    def run():
        """Chunked brute force: full distance rows, argpartition, KL over the k neighbours."""
        xu, xl = _normalized(a["emb_u"]), _normalized(a["emb_l"])
        pu = a["probs_u"].astype(np.float64)
        pl = a["probs_l"].astype(np.float64)
        log_u, log_l = np.log(np.maximum(pu, 1e-12)), np.log(np.maximum(pl, 1e-12))
        sq_l = (xl * xl).sum(axis=1)
        scores = np.empty(len(xu))
        nbrs = np.empty((len(xu), K), dtype=np.int64)
        for s in range(0, len(xu), 2048):
            q = xu[s : s + 2048]
            d2 = (q * q).sum(axis=1)[:, None] + sq_l[None, :] - 2.0 * q @ xl.T
            nbr = np.argpartition(d2, K - 1, axis=1)[:, :K]
            dist = np.sqrt(np.maximum(np.take_along_axis(d2, nbr, axis=1), 0.0))
            kl = (pu[s : s + 2048, None, :] * (log_u[s : s + 2048, None, :] - log_l[nbr])).sum(axis=2)
            scores[s : s + 2048] = (kl / np.maximum(dist, 1e-6)).mean(axis=1)
            nbrs[s : s + 2048] = nbr
        return scores, nbrs

    return run


def setup_skactiveml(a):
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.pool import ContrastiveAL

    class Lookup(SkactivemlClassifier):
        """A 'classifier' whose predict_proba returns the benchmark's arrays for row ids."""

        def __init__(self, probs=None, emb=None, classes=None, missing_label=np.nan):
            super().__init__(classes=classes, missing_label=missing_label)
            self.probs, self.emb = probs, emb

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X, return_embeddings=False):
            rows = X[:, 0].astype(np.int64)
            return (self.probs[rows].copy(), self.emb[rows]) if return_embeddings else self.probs[rows].copy()

    n_u, n_l = len(a["probs_u"]), len(a["probs_l"])
    X = np.arange(n_u + n_l, dtype=np.float64)[:, None]
    y = np.full(n_u + n_l, np.nan)
    y[n_u:] = np.random.default_rng(0).integers(0, C, n_l)
    clf = Lookup(np.concatenate([a["probs_u"], a["probs_l"]]), np.concatenate([a["emb_u"], a["emb_l"]]),
                 classes=np.arange(C))
    strategy = ContrastiveAL(nearest_neighbors_dict={"n_neighbors": K}, clf_embedding_flag_name="return_embeddings",
                             random_state=0)

    def run():
        _, utilities = strategy.query(X, y, clf, fit_clf=False, batch_size=1, return_utilities=True)
        return utilities[0, :n_u], None

    return run


CONTENDERS = {
    "ours": setup_ours,
    "ours_exact": setup_ours,
    "ours_approx": lambda a: setup_ours(a, approximate=True),
    "faiss_floor": setup_faiss_floor,
    "numpy": setup_numpy,
    "skactiveml": setup_skactiveml,
}


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Linux's ``ru_maxrss`` survives ``exec`` and so starts at the parent's peak (the driver
    that made the arrays); ``VmHWM`` belongs to the process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover - not Linux


def worker(name: str, folder: Path) -> None:
    """Load the arrays, set up and time one contender, write its outputs and a JSON record."""
    import psutil

    arrays = {key: np.load(folder / f"{key}.npy") for key in ("probs_u", "emb_u", "probs_l", "emb_l")}
    run = CONTENDERS[name](arrays)
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    scores, nbrs = run()
    wall = time.perf_counter() - start
    peak = peak_rss_bytes()
    if scores is not None:
        np.save(folder / f"{name}.scores.npy", scores)
    if nbrs is not None:
        np.save(folder / f"{name}.nbrs.npy", nbrs)
    record = {"wall": wall, "peak_mb": peak / 2**20, "extra_mb": max(0, peak - rss_before) / 2**20}
    (folder / f"{name}.json").write_text(json.dumps(record))


# --------------------------------------------------------------------------- driver
def run_contender(name: str, folder: Path, timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--folder", str(folder)]
    start = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"wall": time.perf_counter() - start, "peak_mb": float("nan"), "extra_mb": float("nan"),
                "cut_off": True}
    record = json.loads((folder / f"{name}.json").read_text())
    record["cut_off"] = False
    return record


def print_table(title: str, records: dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"{'contender':<13} {'wall s':>9} {'peak RSS MiB':>13} {'extra MiB':>10}  note")
    for name, r in records.items():
        note = "cut off" if r["cut_off"] else ""
        print(f"{name:<13} {r['wall']:>9.2f} {r['peak_mb']:>13.0f} {r['extra_mb']:>10.0f}  {note}")
    sys.stdout.flush()


def recall_at_k(exact: np.ndarray, approx: np.ndarray) -> float:
    exact, approx = np.sort(exact, axis=1), np.sort(approx, axis=1)
    hits = (approx[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return float(hits / exact.size)


def fmt_speedup(ours: dict, peer: dict) -> str:
    ratio = peer["wall"] / ours["wall"]
    return f">={ratio:.1f}" if peer["cut_off"] else f"{ratio:.1f}"


def bench_standard(args, root: Path) -> dict[str, str]:
    n_u, n_l = (max(K + 1, int(v * args.scale)) for v in SIZES["standard"])
    folder = root / "standard"
    folder.mkdir()
    for key, value in make_arrays(n_u, n_l, args.seed).items():
        np.save(folder / f"{key}.npy", value)
    records = {name: run_contender(name, folder, args.timeout) for name in ("ours", "faiss_floor", "numpy", "skactiveml")}
    print_table(f"standard: N={n_u:,} L={n_l:,} k={K} C={C} D={D}, exact", records)
    ours, floor = np.load(folder / "ours.nbrs.npy"), np.load(folder / "faiss_floor.nbrs.npy")
    print(f"neighbour agreement ours vs faiss floor: {recall_at_k(floor, ours):.4f}")
    return {
        "ours": f"{records['ours']['wall']:.2f}",
        "faiss_floor": f"{records['faiss_floor']['wall']:.2f}",
        "ratio_to_floor": f"{records['ours']['wall'] / records['faiss_floor']['wall']:.2f}",
        "speedup_vs_skactiveml": fmt_speedup(records["ours"], records["skactiveml"]),
    }


def bench_large(args, root: Path) -> dict[str, str]:
    from scipy.stats import spearmanr

    n_u, n_l = (max(K + 1, int(v * args.scale)) for v in SIZES["large"])
    folder = root / "large"
    folder.mkdir()
    for key, value in make_arrays(n_u, n_l, args.seed + 1).items():
        np.save(folder / f"{key}.npy", value)
    records = {name: run_contender(name, folder, args.timeout) for name in ("ours_approx", "ours_exact", "skactiveml")}
    print_table(f"large: N={n_u:,} L={n_l:,} k={K} C={C} D={D}", records)
    recall = recall_at_k(np.load(folder / "ours_exact.nbrs.npy"), np.load(folder / "ours_approx.nbrs.npy"))
    rho = spearmanr(np.load(folder / "ours_exact.scores.npy"), np.load(folder / "ours_approx.scores.npy")).statistic
    print(f"approximate vs exact: recall@{K}={recall:.4f} spearman={rho:.4f}; "
          f"exact is {records['ours_exact']['wall'] / records['ours_approx']['wall']:.1f}x slower")
    return {
        "large_speedup_vs_skactiveml": fmt_speedup(records["ours_approx"], records["skactiveml"]),
        "large_recall": f"{recall:.4f}",
        "large_spearman": f"{rho:.4f}",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("standard", "large", "all"), default="all",
                        help="standard: N=50k/L=5k only; large: N=500k/L=50k only; all: both (default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random arrays")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds after which a contender is cut off (default 900 = 15 minutes)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply N and L (e.g. 0.01 for a smoke run)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.folder)
        return

    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}, numpy {np.__version__}")
    fields = {key: "na" for key in ("ours", "faiss_floor", "ratio_to_floor", "speedup_vs_skactiveml",
                                    "large_speedup_vs_skactiveml", "large_recall", "large_spearman")}
    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as tmp:
        if args.size in ("standard", "all"):
            fields.update(bench_standard(args, Path(tmp)))
        if args.size in ("large", "all"):
            fields.update(bench_large(args, Path(tmp)))
    print("scoring: " + " ".join(f"{key}={value}" for key, value in fields.items()))


if __name__ == "__main__":
    main()
