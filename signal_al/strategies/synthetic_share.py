"""Taking the top items by score: overall (:func:`top_indices`, every ranking strategy) or with
the real -> synthetic budget schedule (an option of SIGnAL's selection).

Plain SIGnAL ranks real and synthetic items together and takes the top b. The paper
suggests shifting the budget from real to synthetic items as the generator improves;
with a schedule, a share of each round's b is reserved for synthetic candidates (growing
linearly over the generating rounds) and the rest for real pool items, each side taken by
its own top scores. A side with too few unlabeled items passes its slots to the other.
"""

from __future__ import annotations

import numpy as np


def top_indices(scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``n`` highest scores, best first; exact ties broken by ``rng``."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise RuntimeError("strategy produced NaN or inf scores (a bug, please report it)")
    order = np.lexsort((rng.random(len(scores)), -scores))
    return order[:n]


def scheduled_share(round_index: int, rounds_total: int, schedule: tuple[float, float] | list[float]) -> float:
    """The synthetic share of round ``round_index``'s budget: ``schedule[0]`` in round 1 (the first
    generating round), ``schedule[1]`` in the last round (``rounds_total - 1``), linear between."""
    start, end = schedule
    last = max(rounds_total - 1, 1)
    progress = 0.0 if last == 1 else (min(max(round_index, 1), last) - 1) / (last - 1)
    return float(start + (end - start) * progress)


def synthetic_slots(budget: int, share: float, n_real: int, n_synthetic: int) -> int:
    """How many of ``budget`` picks go to synthetic items: round-half-up of share × budget,
    moved to the other side where one side has too few items."""
    if budget > n_real + n_synthetic:
        raise ValueError(f"budget {budget} exceeds the {n_real + n_synthetic} unlabeled items")
    wanted = int(np.floor(share * budget + 0.5))
    return int(min(max(wanted, budget - n_real), n_synthetic))


def split_top_indices(scores: np.ndarray, synthetic: np.ndarray, budget: int, share: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Positions of the chosen items: the top synthetic and the top real ones by ``scores``,
    in the proportion :func:`synthetic_slots` gives; best first within each side, synthetic first."""
    scores = np.asarray(scores, dtype=np.float64)
    synthetic = np.asarray(synthetic, dtype=bool)
    if scores.shape != synthetic.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and synthetic mask {synthetic.shape} must be equal 1-D shapes")
    syn_pos, real_pos = np.flatnonzero(synthetic), np.flatnonzero(~synthetic)
    n_syn = synthetic_slots(budget, share, len(real_pos), len(syn_pos))
    chosen_syn = syn_pos[top_indices(scores[syn_pos], n_syn, rng)]
    chosen_real = real_pos[top_indices(scores[real_pos], budget - n_syn, rng)]
    return np.concatenate([chosen_syn, chosen_real]).astype(np.int64)


__all__ = ["scheduled_share", "split_top_indices", "synthetic_slots"]
