"""verl's custom reward function: the SIGnAL reward of a run.

In a verl config::

    custom_reward_function:
      path: <site-packages>/signal_al/integrations/verl.py   # python -c "import signal_al.integrations.verl as m; print(m.__file__)"
      name: compute_score          # or compute_score_batch with reward_model.reward_manager=batch

and ``SIGNAL_AL_RUN=runs/demo`` in the trainer's environment (``SIGNAL_AL_ROUND`` picks a round;
the latest by default). A row's ``extra_info`` may name its own run with ``{"signal_al_run": ...,
"signal_al_round": ...}``. ``data_source`` and ``ground_truth`` are not used: the SIGnAL score
needs no reference answer. The reward is the score, or the run's ``reward.invalid_penalty`` for
an empty completion or a copy of a labeled text. Scorers are loaded once per (run, round) and
process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ROUND_ENV", "RUN_ENV", "compute_score", "compute_score_batch", "get_scorer"]

RUN_ENV = "SIGNAL_AL_RUN"
ROUND_ENV = "SIGNAL_AL_ROUND"

_SCORERS: dict[tuple[str, int | None], Any] = {}
_LOCK = threading.Lock()


def _run_and_round(extra_info: Any) -> tuple[str, int | None]:
    from signal_al.core.errors import ConfigError

    extra = extra_info if isinstance(extra_info, dict) else {}
    run = extra.get("signal_al_run") or os.environ.get(RUN_ENV)
    if not run:
        raise ConfigError(f"verl reward: set {RUN_ENV}=<run folder> (or extra_info['signal_al_run']) to say whose "
                          "reward to compute")
    round_value = extra.get("signal_al_round", os.environ.get(ROUND_ENV))
    if round_value in (None, ""):
        return str(Path(run).resolve()), None
    try:
        return str(Path(run).resolve()), int(round_value)
    except (TypeError, ValueError):
        raise ConfigError(f"verl reward: {ROUND_ENV} / signal_al_round must be a round number, "
                          f"got {round_value!r}") from None


def get_scorer(extra_info: Any = None):
    """The cached ``(SignalScorer, RewardShaping)`` for the run named by ``extra_info`` or the environment."""
    key = _run_and_round(extra_info)
    with _LOCK:
        if key not in _SCORERS:
            from signal_al.integrations.runs import run_shaping
            from signal_al.rewards.scorer import SignalScorer

            scorer = SignalScorer.from_run(key[0], key[1])
            _SCORERS[key] = (scorer, run_shaping(scorer.run.run_dir))
        return _SCORERS[key]


def _rewards(texts: list[str], extra_info: Any) -> list[float]:
    import numpy as np

    from signal_al.rewards.shaping import invalid_reasons, shape_rewards

    scorer, shaping = get_scorer(extra_info)
    texts = [str(t or "").strip() for t in texts]
    labeled = scorer.labeled_texts if shaping.penalize_copies else ()
    invalid = np.array([r is not None for r in invalid_reasons(texts, max_chars=shaping.max_chars,
                                                               labeled=labeled)], dtype=bool)
    scores = np.zeros(len(texts), dtype=np.float64)
    valid = np.flatnonzero(~invalid)
    if valid.size:
        scores[valid] = scorer([texts[i] for i in valid])
    return shape_rewards(scores, invalid, shaping).tolist()


def compute_score(data_source: Any, solution_str: str, ground_truth: Any = None, extra_info: Any = None,
                  **kwargs: Any) -> float:
    """verl's per-sample reward function: the SIGnAL reward of ``solution_str``."""
    return float(_rewards([solution_str], extra_info)[0])


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str],
                        ground_truths: Sequence[Any] | None = None, extra_infos: Sequence[Any] | None = None,
                        **kwargs: Any) -> list[float]:
    """verl's batched reward function (``reward_model.reward_manager=batch``): one classifier pass per run."""
    texts = list(solution_strs)
    infos = list(extra_infos) if extra_infos is not None else [None] * len(texts)
    if len(infos) != len(texts):
        raise ValueError(f"extra_infos: has {len(infos)} items but solution_strs has {len(texts)}")
    groups: dict[tuple[str, int | None], list[int]] = {}
    for i, info in enumerate(infos):
        groups.setdefault(_run_and_round(info), []).append(i)
    out = [0.0] * len(texts)
    for indices in groups.values():
        for i, reward in zip(indices, _rewards([texts[i] for i in indices], infos[indices[0]])):
            out[i] = float(reward)
    return out
