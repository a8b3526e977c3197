"""Selection strategies, one module each, looked up by the name configs use.

:data:`STRATEGIES` is the one list of them: a new strategy is its module and one entry there (its
class in the tuple). Which names configs accept, which strategies are pool-based (the grid's default
methods) and which generate (``generates = True``: the loop gives them the generator plug-in) all
come from it.

>>> from signal_al.strategies import get_strategy
>>> get_strategy("cal", k=5).name
'cal'
>>> build_strategy("signal").params.relevance
'none'
>>> pool_based_names()[:3]
['random', 'entropy', 'bertkm']
"""

from __future__ import annotations

from signal_al.core.errors import ConfigError
from signal_al.rewards.score import ScoreParams
from signal_al.strategies.badge import Badge
from signal_al.strategies.base import PoolView, QueryStrategy, RankingStrategy, Selection, as_rng, top_indices
from signal_al.strategies.bertkm import BertKMeans
from signal_al.strategies.cal import ContrastiveActiveLearning
from signal_al.strategies.cluster import ClusterEntropy
from signal_al.strategies.coreset import CoreSet
from signal_al.strategies.entropy import EntropySampling, predictive_entropy
from signal_al.strategies.qbc import KNNDisagreement
from signal_al.strategies.random_sampling import RandomSampling
from signal_al.strategies.signal_sampling import SignalSampling

__all__ = [
    "STRATEGIES",
    "Badge",
    "BertKMeans",
    "ClusterEntropy",
    "ContrastiveActiveLearning",
    "CoreSet",
    "EntropySampling",
    "KNNDisagreement",
    "PoolView",
    "QueryStrategy",
    "RandomSampling",
    "RankingStrategy",
    "Selection",
    "SignalSampling",
    "as_rng",
    "build_strategy",
    "get_strategy",
    "pool_based_names",
    "predictive_entropy",
    "top_indices",
]

#: Config name -> strategy class: the one list of strategies.
STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls
    for cls in (
        RandomSampling,
        EntropySampling,
        BertKMeans,
        Badge,
        ContrastiveActiveLearning,
        CoreSet,
        ClusterEntropy,
        KNNDisagreement,
        SignalSampling,
    )
}


def get_strategy(name: str, **params) -> QueryStrategy:
    """The strategy called ``name`` (see :data:`STRATEGIES`), constructed with ``params``."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ConfigError(
            f"active_learning.strategy: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        ) from None
    try:
        return cls(**params)
    except TypeError as err:
        raise ConfigError(f"active_learning.strategy: bad parameters for {name!r}: {err}") from None


def pool_based_names() -> list[str]:
    """The strategies that select from the real pool alone (no generator), in :data:`STRATEGIES` order."""
    return [name for name, cls in STRATEGIES.items() if not cls.generates]


def build_strategy(name: str, reward: ScoreParams | None = None) -> QueryStrategy:
    """The strategy a run's config names: ``signal`` takes its score parameters from the ``reward``
    section (default :class:`~signal_al.rewards.score.ScoreParams`), so its selection and the D_RL
    rewards use the same formula as ``signal_scores``; others their defaults."""
    if name == SignalSampling.name:
        return get_strategy(name, params=reward)
    return get_strategy(name)
