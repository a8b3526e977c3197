"""Method names: which methods use the generator, and what a run's rows are called.

Which strategies generate is said once, by the strategy (:data:`signal_al.strategies.STRATEGIES`);
this module adds the grid's names for SIGnAL's ablations, and the loop, the grid and reports ask
these functions instead of testing names.
"""

from __future__ import annotations

from signal_al.config import ExperimentConfig
from signal_al.strategies import STRATEGIES

__all__ = ["SIGNAL_VARIANTS", "in_signal_family", "method_name", "strategy_of", "uses_generator"]

#: Grid method names of SIGnAL and its ablations -> active_learning.generator_update.
SIGNAL_VARIANTS = {"signal": "ppo", "signal-frozen": "frozen", "signal-shuffled": "shuffled"}


def uses_generator(strategy: str) -> bool:
    """Whether runs of this strategy (or grid method) generate candidates with the LLM.

    >>> uses_generator("signal-frozen"), uses_generator("badge")
    (True, False)
    """
    cls = STRATEGIES.get(strategy_of(strategy))
    return cls is not None and cls.generates


def strategy_of(method: str) -> str:
    """The selection strategy behind a grid method name (the ablations select like SIGnAL).

    >>> strategy_of("signal-shuffled")
    'signal'
    """
    return "signal" if method in SIGNAL_VARIANTS else method


def in_signal_family(name: object) -> bool:
    """Whether a report row's method name (see :func:`method_name`) is SIGnAL or one of its
    ablations, budget schedules or labelled variants; everything else is pool-based.

    >>> [in_signal_family(m) for m in ("signal", "signal-frozen", "signal-share0-1", "signal+k5", "badge")]
    [True, True, True, True, False]
    """
    return uses_generator(str(name).split("+")[0].split("-")[0])


def method_name(config: ExperimentConfig) -> str:
    """The name a run's rows carry: its strategy, signal-frozen / signal-shuffled for the ablations,
    a ``-share<start>-<end>`` suffix for SIGnAL with a real -> synthetic budget schedule, and
    ``+<variant>`` when ``active_learning.variant`` labels the settings."""
    al = config.active_learning
    name = al.strategy
    if uses_generator(al.strategy):
        name = al.strategy if al.generator_update == "ppo" else f"{al.strategy}-{al.generator_update}"
        if al.synthetic_share is not None:
            name += "-share{:g}-{:g}".format(*al.synthetic_share)
    return f"{name}+{al.variant}" if al.variant else name
