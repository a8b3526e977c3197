"""The generator as a plug-in of the loop: SIGnAL proposes synthetic candidates before the
classifier pass, keeps their scores from that pass, and learns from them after the round.

The loop sees a :class:`GeneratorPlugin`. Pool-based strategies get :class:`NoGenerator`, whose
steps do nothing, so the loop states one order of steps for every method. :class:`SignalAgent` owns
the generator's lifecycle and its part of the run state (this round's candidates, the adapter):
the vLLM server it may start, the adapter it serves, D_RL and the PPO update. With the
in-process launcher one :class:`~signal_al.trainers.ppo_trainer.PPOTrainer` lives for the whole
run (one policy, one AdamW); every adapter folder also holds the optimizer state, so a resumed
run (or an ``accelerate`` job) continues the same optimisation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from signal_al.core.io_utils import atomic_write_jsonl
from signal_al.core.run_layout import (ADAPTERS_DIR, CANDIDATES_FILE, CONFIG_FILE, SERVER_LOG, adapter_folder,
                                       adapter_round, rl_file)
from signal_al.core.run_state import GenerationRound, Item, RunState
from signal_al.engine.context import RunContext
from signal_al.engine.generator.round import (generation_stats, reward_stats, rl_dataset, shuffled_scores,
                                              synthetic_items)
from signal_al.engine.methods import uses_generator

__all__ = ["GeneratorPlugin", "NoGenerator", "SignalAgent", "build_agent", "prune_optimizer_states"]

Commit = Callable[[RunState], None]


class GeneratorPlugin(Protocol):
    """What the loop asks of the generator, step by step (see :mod:`signal_al.engine.loop`).

    The plug-in owns its part of the run state: ``state.generation`` (this round's candidates and
    their scores) and ``state.adapter`` (the adapter it serves). It writes them, and :meth:`update`
    leaves them as the round commits them, so the loop never touches either.
    """

    generates: bool
    """Whether the run's pool grows with generated items: then only the budget ends a run, and the
    budget is not capped at the real pool."""

    def prepare(self, state: RunState) -> None:
        """Before the first round of this process (e.g. train the model annotator)."""

    def propose(self, state: RunState, round_index: int, budget: int, commit: Commit) -> None:
        """Step 1: add this round's candidates to the pool, committed before anything reads them."""

    def synthetic_share(self, round_index: int, rounds_total: int) -> float | None:
        """The share of this round's budget reserved for synthetic items (None: one ranking)."""

    def record_scores(self, state: RunState, round_index: int, scores: dict[str, float]) -> None:
        """Step 3: keep the candidates' scores from the round's one classifier pass."""

    def update(self, state: RunState, round_index: int, selected: list[Item], share: float | None,
               classifier: Any = None) -> dict:
        """Step 6: learn from the round; sets ``state.adapter``, clears ``state.generation`` and returns the
        generator's columns of the round's metrics row."""

    def close(self) -> None:
        """After the last round (or an error): stop what the plug-in started."""


class NoGenerator:
    """Pool-based runs: nothing is generated, scored for the generator or learned."""

    generates = False

    def prepare(self, state: RunState) -> None:
        pass

    def propose(self, state: RunState, round_index: int, budget: int, commit: Commit) -> None:
        pass

    def synthetic_share(self, round_index: int, rounds_total: int) -> float | None:
        return None

    def record_scores(self, state: RunState, round_index: int, scores: dict[str, float]) -> None:
        pass

    def update(self, state: RunState, round_index: int, selected: list[Item], share: float | None,
               classifier: Any = None) -> dict:
        return {}

    def close(self) -> None:
        pass


class SignalAgent:
    """SIGnAL's generator from round 1 on (round 0 has no labeled set to score candidates against)."""

    generates = True

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.config = context.config
        self.run_dir = context.run_dir
        self.log = context.log
        self._generator: Any = None
        self._trainer: Any = None  # the in-process PPOTrainer, kept across rounds
        self._trainer_adapter: str | None = None  # the adapter folder its weights equal
        self._heldout_base: list | None = None
        self._resources = contextlib.ExitStack()  # the vLLM server started for this run, if any

    def prepare(self, state: RunState) -> None:
        """Train (or load) the model annotator before a vLLM server competes for the CPU."""
        if self.config.active_learning.annotator == "model" and not state.finished:
            self.context.model_annotator()

    def generator(self, state: RunState) -> Any:
        """The candidate generator (its server started on first use), serving the latest adapter."""
        if self._generator is None:
            from signal_al.generation.generator import create_generator
            from signal_al.generation.server.process import managed_server

            self._resources.enter_context(managed_server(
                self.config.generator, log_file=self.run_dir / SERVER_LOG, log=self.log))
            self._generator = create_generator(self.config.generator, self.context.data.spec, seed=self.config.seed,
                                               device=str(self.context.device))
            if state.adapter is not None:  # a resumed run: the server may be new, reload the adapter
                self._generator.load_adapter(self.run_dir / state.adapter, adapter_round(state.adapter))
        return self._generator

    def _this_round(self, state: RunState, round_index: int) -> GenerationRound | None:
        """This round's candidates, when the plug-in has proposed them (a resumed round reuses them)."""
        return state.generation if state.generation is not None and state.generation.round == round_index else None

    def propose(self, state: RunState, round_index: int, budget: int, commit: Commit) -> None:
        """Candidates join the pool as synthetic items, committed before the classifier pass
        (a resumed round reuses the persisted ones)."""
        if round_index < 1 or budget <= 0 or self._this_round(state, round_index) is not None:
            return
        from signal_al.generation.cleaning import dedup_key
        from signal_al.generation.records import read_jsonl

        known = [dedup_key(item.text, item.text_pair) for item in state.items]  # R ∪ S ∪ L
        g = self.config.generator
        num = g.prompts_per_round or g.candidates_per_round or budget
        candidates = self.generator(state).generate(self.context.pool, num, known=known, round_index=round_index)
        state.items.extend(synthetic_items(candidates, round_index))
        state.generation = GenerationRound(round_index, [c.to_dict() for c in candidates])
        path = self.run_dir / CANDIDATES_FILE  # rewritten whole, so a repeated round leaves no duplicates
        earlier = [c.to_dict() for c in read_jsonl(path) if (c.round or 0) < round_index] if path.is_file() else []
        atomic_write_jsonl(path, earlier + state.generation.candidates)
        commit(state)

    def synthetic_share(self, round_index: int, rounds_total: int) -> float | None:
        """The share of this round's budget reserved for synthetic items (None: one ranking)."""
        schedule = self.config.active_learning.synthetic_share
        if schedule is None or round_index < 1:
            return None
        from signal_al.strategies.synthetic_share import scheduled_share

        return scheduled_share(round_index, rounds_total, schedule)

    def record_scores(self, state: RunState, round_index: int, scores: dict[str, float]) -> None:
        """This round's candidates keep their scores from the round's one classifier pass (D_RL)."""
        generation = self._this_round(state, round_index)
        if generation is None:
            return
        fresh = {item.id for item in state.items if item.source == "synthetic" and item.round == round_index}
        generation.scores = {i: v for i, v in scores.items() if i in fresh}

    def update(self, state: RunState, round_index: int, selected: list[Item], share: float | None,
               classifier: Any = None) -> dict:
        """D_RL from this round's candidates and scores, one PPO update, then the new adapter against
        the base model on the held-out prompts; the round's generator metrics. The new adapter becomes
        ``state.adapter`` and the round's candidates leave the state (they are in D_RL and
        ``candidates.jsonl``)."""
        generation = self._this_round(state, round_index)
        if generation is None:
            return {}
        from signal_al.generation.records import Candidate

        candidates = [Candidate.from_dict(c) for c in generation.candidates]
        scores = generation.scores
        row = {**generation_stats(candidates), **reward_stats(candidates, scores, round_index)}
        adapter, update_row = self._learn(state, round_index, candidates, scores)
        row.update(update_row)
        if adapter is not None and adapter != state.adapter:
            self.generator(state).load_adapter(self.run_dir / adapter, round_index)  # hot-load for the next round
            if classifier is not None and self.measures_heldout(round_index):
                row.update(self._heldout_gain(state, classifier))
        row["n_synthetic_selected"] = sum(item.source == "synthetic" for item in selected)
        if share is not None:
            row["synthetic_share"] = round(share, 6)
        state.adapter, state.generation = adapter, None
        return row

    def measures_heldout(self, round_index: int) -> bool:
        """Whether this round's update is followed by the held-out lift: rounds 1, 1 + k, 1 + 2k, ...
        (k = ``active_learning.heldout_every``), none when ``heldout_samples`` is 0."""
        al = self.config.active_learning
        return al.heldout_samples > 0 and (round_index - 1) % al.heldout_every == 0

    def _learn(self, state: RunState, round_index: int, candidates: list, scores: dict) -> tuple[str | None, dict]:
        from signal_al.assets.registry import resolve_model
        from signal_al.trainers.rollouts import write_rollouts

        config = self.config
        update = config.active_learning.generator_update
        if update == "frozen":
            return state.adapter, {}
        if update == "shuffled":
            scores = shuffled_scores(scores, np.random.default_rng([config.seed, round_index, 1]))
        rollouts = rl_dataset(candidates, scores, round_index, config.reward.invalid_penalty,
                              config.reward.whiten_kept, config.reward.applied_gated_penalty)
        if not rollouts:
            self.log(f"round {round_index}: no candidate to learn from; the generator keeps its adapter")
            return state.adapter, {}
        rl_path = self.run_dir / rl_file(round_index)
        write_rollouts(rl_path, rollouts)
        # a seed per round; PPO's log-probs must use the temperature the candidates were sampled with
        ppo = dataclasses.replace(config.ppo, seed=config.seed * 1000 + round_index,
                                  temperature=config.generator.temperature or config.ppo.temperature)
        name = adapter_folder(round_index)
        previous = None if state.adapter is None else self.run_dir / state.adapter
        base = resolve_model(config.generator.model)
        prune_optimizer_states(self.run_dir, keep=state.adapter)
        if ppo.launcher == "accelerate":
            from signal_al.trainers.ppo_launch import launch_command, run_update_job

            command = launch_command(self.run_dir / CONFIG_FILE, base, rl_path, self.run_dir / name, ppo,
                                     adapter=previous)
            self.log(f"round {round_index}: PPO update as an accelerate job (log: {rl_path.with_suffix('.log')})")
            metrics = run_update_job(command, self.run_dir / name, rl_path.with_suffix(".log"), ppo)
        else:
            trainer = self._trainer_for(state, base, ppo, previous)
            metrics = trainer.train(rollouts, source=str(rl_path), seed=ppo.seed)
            trainer.save(self.run_dir / name, metrics, overwrite=True)
            self._trainer_adapter = name
        keys = ("kl_served_k3", "kl_start", "kl_coef", "served_logprob_mae", "served_logprob_max", "is_weight_mean",
                "is_truncated_frac", "optimizer_steps_total")
        return name, {**{k: metrics[k] for k in keys if metrics.get(k) is not None},
                      "ppo_policy_loss": metrics["policy_loss"], "ppo_value_loss": metrics["value_loss"],
                      "ppo_steps": metrics["optimizer_steps"], "n_rollouts": len(rollouts), "adapter": name}

    def _trainer_for(self, state: RunState, base: str, ppo: Any, previous: Path | None) -> Any:
        """The run's one in-process trainer: built on first use from the committed adapter (and its optimizer
        state), then kept, so it holds exactly what a resumed run would load."""
        from signal_al.trainers.ppo_trainer import PPOTrainer

        if self._trainer is not None and self._trainer_adapter != state.adapter:
            self._trainer = None  # a round was redone from an earlier commit: reload what was committed
        if self._trainer is None:
            self._trainer = PPOTrainer(base, ppo, adapter=previous, cpu=self.context.device.type == "cpu",
                                       log=self.log if self.context.progress else None)
            self._trainer_adapter = state.adapter
        return self._trainer

    def _heldout_gain(self, state: RunState, classifier: Any) -> dict:
        """The adapter just loaded against the base model on the run's fixed held-out prompts, both
        rewarded like the update (this round's classifier and labeled set, the same shaping): the
        paired gain with its interval, the mean length on both sides, and KL(new || base) on the new
        adapter's own samples."""
        from signal_al.engine.generator.heldout import (heldout_seed, paired_gain, score_kept, shaped_heldout_rewards,
                                                        words_of)
        from signal_al.rewards.scorer import SignalScorer

        context, al = self.context, self.config.active_learning
        per_prompt = min(al.heldout_samples_per_prompt, al.heldout_samples)
        prompts = math.ceil(al.heldout_samples / per_prompt)
        generator, seed = self.generator(state), heldout_seed(self.config.seed)
        if self._heldout_base is None:  # the base model's answers never change: generated once per process
            self._heldout_base = generator.generate(context.pool, prompts, samples_per_prompt=per_prompt, seed=seed,
                                                    adapter=None)
        trained = generator.generate(context.pool, prompts, samples_per_prompt=per_prompt, seed=seed, adapter=True)
        scorer = SignalScorer.from_state(classifier, context.tokenizer, state, params=self.config.reward,
                                         batch_size=self.config.classifier.eval_batch_size,
                                         max_length=self.config.classifier.max_length, device=context.device)
        reward = self.config.reward
        shape = dict(gated_penalty=reward.applied_gated_penalty, invalid_penalty=reward.invalid_penalty)
        base = shaped_heldout_rewards(score_kept(self._heldout_base, scorer), **shape)
        new = shaped_heldout_rewards(score_kept(trained, scorer), **shape)
        groups = np.array([c.group for c in trained])  # the z treats a prompt's samples as one cluster
        row = paired_gain(base, new, groups)
        words_base, words_new = words_of(self._heldout_base), words_of(trained)
        row["heldout_words_base"] = float(np.nanmean(words_base)) if (~np.isnan(words_base)).any() else None
        row["heldout_words_adapter"] = float(np.nanmean(words_new)) if (~np.isnan(words_new)).any() else None
        if self._trainer is not None:  # KL(new || base) on the new adapter's own samples (k3, >= 0)
            sampled = [c for c in trained if c.prompt_token_ids and c.completion_token_ids]
            if sampled:
                kl = self._trainer.policy_kl([c.prompt_token_ids for c in sampled],
                                             [c.completion_token_ids for c in sampled])
                row["kl_new_base"] = float(np.nanmean(kl))
        return row

    def close(self) -> None:
        self._trainer = None
        if self._generator is not None:
            self._generator.backend.close()
            self._generator = None
        self._resources.close()  # stops a server this run started


def prune_optimizer_states(run_dir: Path, keep: str | None) -> None:
    """Delete ``optimizer.pt`` from every adapter folder but the committed one (``keep``): a resume
    needs only the latest, and each is twice the adapter's size. Runs only once ``keep`` is committed."""
    from signal_al.trainers.adapter_io import OPTIMIZER_FILE

    folder = run_dir / ADAPTERS_DIR
    if not folder.is_dir():
        return
    for path in folder.glob(f"*/{OPTIMIZER_FILE}"):
        if keep is None or path.parent != run_dir / keep:
            path.unlink(missing_ok=True)


def build_agent(context: RunContext) -> GeneratorPlugin:
    """The generator plug-in the run's strategy needs."""
    return SignalAgent(context) if uses_generator(context.config.active_learning.strategy) else NoGenerator()
