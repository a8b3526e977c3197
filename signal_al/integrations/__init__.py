"""The SIGnAL reward in other RL stacks, and a run's reward outside the loop.

- :mod:`.runs`: a run's saved config and reward shaping; ``SignalScorer.from_run`` (which reads the
  run folder through :mod:`signal_al.rewards.run_reward`) gives its scorer.
- :mod:`.files`: ``signal-al score``: a file of texts scored under a run.
- :mod:`.verl`: verl's custom reward function (``compute_score`` and its batched form).
- TRL: :func:`signal_al.rewards.get_signal_reward` around ``SignalScorer.from_run(...)``.
- OpenRLHF: ``signal-al serve-reward`` (:mod:`signal_al.integrations.reward_server`).
"""

from __future__ import annotations

__all__: list[str] = []
