"""The SIGnAL reward in other RL stacks, and a run's reward outside the loop.

- :mod:`.runs`: :func:`~.runs.load_run_scorer` reads a run folder's reward (the round's classifier,
  its labeled set and the ``reward`` section); ``SignalScorer.from_run`` calls it.
- :mod:`.files`: ``signal-al score``: a file of texts scored under a run.
- :mod:`.verl`: verl's custom reward function (``compute_score`` and its batched form).
- TRL: :func:`signal_al.rewards.get_signal_reward` around ``SignalScorer.from_run(...)``.
- OpenRLHF: ``signal-al serve-reward`` (:mod:`signal_al.reward_server`).
"""

from __future__ import annotations

__all__: list[str] = []
