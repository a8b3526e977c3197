"""How many labels a run acquires and when: the exact acquisition grid of a run's rounds.

Targets are cumulative labeled-set sizes rounded from the exact grid (seed set = round 0,
then ``round_fraction`` of the real pool per round), so a pool of 85 at 10 % reaches
17 / 34 / 51 ... = 20 / 40 / 60 % instead of drifting to 16 / 32 / 48.
"""

from __future__ import annotations

import math

from signal_al.core.errors import ConfigError

__all__ = ["check_grid", "round_targets", "target_pct", "total_budget"]


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5 + 1e-9))


def round_targets(pool_size: int, round_fraction: float, total: int, seed_size: int | None = None) -> list[int]:
    """Cumulative labeled-set size after each round, ending at ``total``.

    >>> round_targets(85, 0.1, 51)
    [9, 17, 26, 34, 43, 51]
    >>> round_targets(100, 0.1, 50, seed_size=4)
    [4, 14, 24, 34, 44, 50]
    """
    step = max(round_fraction * pool_size, 1.0)
    offset = 0.0 if seed_size is None else seed_size - step
    targets: list[int] = []
    index = 0
    while not targets or targets[-1] < total:
        target = min(total, max(_round_half_up(offset + (index + 1) * step), targets[-1] + 1 if targets else 0))
        targets.append(target)
        index += 1
    return targets


def target_pct(round_index: int, round_fraction: float, seed_size: int | None, pool_size: int) -> float:
    """The round's nominal position on the acquisition grid, in % of the real pool.

    >>> target_pct(2, 0.1, None, 85)
    30.0
    """
    seed_pct = round_fraction * 100.0 if seed_size is None else 100.0 * seed_size / pool_size
    return round(seed_pct + round_index * round_fraction * 100.0, 4)


def total_budget(pool_size: int, stop_fraction: float, *, pool_based: bool) -> int:
    """All annotations of a run; pool-based strategies cannot exceed the pool.

    >>> total_budget(85, 2.0, pool_based=True), total_budget(85, 2.0, pool_based=False)
    (85, 170)
    """
    total = int(round(stop_fraction * pool_size))
    return min(total, pool_size) if pool_based else total


def check_grid(pool_size: int, stop_fraction: float, seed_size: int | None, *, pool_based: bool) -> None:
    """The acquisition grid fits the real pool; a ConfigError naming the key otherwise (checked
    before a run writes anything)."""
    if pool_size < 1:
        raise ConfigError("the real pool is empty: raise data.pool_size or data.pool_fraction")
    if seed_size is not None and seed_size > pool_size:
        raise ConfigError(f"active_learning.seed_size={seed_size} exceeds the real pool of {pool_size}")
    if total_budget(pool_size, stop_fraction, pool_based=pool_based) < 1:
        raise ConfigError(f"active_learning.stop_fraction={stop_fraction:g} acquires no label from a real pool of "
                          f"{pool_size}: raise it")
