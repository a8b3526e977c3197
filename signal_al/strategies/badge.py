"""BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

The gradient of the cross-entropy loss w.r.t. the last layer's weights, taking the
predicted class ŷ as the label, is g = (p − onehot(ŷ)) ⊗ h: the predicted class's block is
(p̂ − 1)·h, i.e. its magnitude is (1 − p̂)·|h|, and every other class c contributes p_c·h.
This holds for two classes exactly as for many (a known peer library drops the (1 − p̂)
term and gets the binary case wrong). Norms are large for uncertain items, angles differ
for different predicted classes, so k-means++ seeding trades uncertainty off against
diversity. As in the reference implementation the first centre is the largest gradient,
the rest are D²-sampled, never repeating an item.

Distances between gradient embeddings are computed without building the C·D vectors:
|v_i⊗h_i − v_j⊗h_j|² = |v_i|²|h_i|² + |v_j|²|h_j|² − 2 (v_i·v_j)(h_i·h_j).
"""

from __future__ import annotations

import numpy as np

from signal_al.strategies.base import PoolView, QueryStrategy, as_rng, top_indices

__all__ = ["Badge", "gradient_factors"]


def gradient_factors(probs: np.ndarray) -> np.ndarray:
    """v = p − onehot(argmax p), the class factor of the gradient embedding v ⊗ h."""
    v = np.array(probs, dtype=np.float64, copy=True)
    v[np.arange(len(v)), v.argmax(axis=1)] -= 1.0
    return v


class Badge(QueryStrategy):
    """Gradient embeddings (p − onehot(ŷ)) ⊗ h, k-means++ seeding."""

    name = "badge"

    def score(self, pool: PoolView, budget: int | None = None, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Gradient embedding norms |p − onehot(ŷ)|·|h| (the first item BADGE picks is the largest)."""
        h = pool.require_embeddings(self.name)[pool.unlabeled].astype(np.float64)
        v = gradient_factors(pool.probs[pool.unlabeled])
        return np.linalg.norm(v, axis=1) * np.linalg.norm(h, axis=1)

    def query(self, pool: PoolView, budget: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        budget = self.check_budget(pool, budget)
        rng = as_rng(rng)
        if budget == 0:
            return pool.unlabeled[:0]
        h = pool.require_embeddings(self.name)[pool.unlabeled].astype(np.float64)
        v = gradient_factors(pool.probs[pool.unlabeled])
        sq = np.einsum("ij,ij->i", v, v) * np.einsum("ij,ij->i", h, h)  # |g_i|²
        chosen = [int(top_indices(sq, 1, rng)[0])]
        taken = np.zeros(len(h), dtype=bool)
        taken[chosen[0]] = True
        d2 = np.full(len(h), np.inf)
        for _ in range(budget - 1):
            c = chosen[-1]
            dist = sq + sq[c] - 2.0 * (v @ v[c]) * (h @ h[c])
            np.minimum(d2, np.maximum(dist, 0.0), out=d2)
            weights = np.where(taken, 0.0, d2)
            total = weights.sum()
            if total > 0:
                nxt = int(rng.choice(len(h), p=weights / total))
            else:  # every remaining item coincides with a centre: pick uniformly among them
                nxt = int(rng.choice(np.flatnonzero(~taken)))
            chosen.append(nxt)
            taken[nxt] = True
        return pool.unlabeled[np.asarray(chosen, dtype=np.int64)]
