"""PPO + LoRA update of the generator on stored rollouts (D_RL), distributed with Accelerate.

TRL 1.x has no PPOTrainer, and its online trainers cannot take already-generated responses
with external rewards, so this is a compact PPO in the style of TRL's former PPOv2:

1. D_RL is consumed in *rollout batches* of ``per_device_train_batch_size x
   gradient_accumulation_steps x num_mini_batches x processes`` rollouts (seeded order that
   keeps each group's rollouts adjacent, so they share their prompt's forward pass).
2. For each rollout batch the current policy computes, once, the old log-probs (and values);
   the reference log-probs come from the same weights with the LoRA adapter disabled
   (``peft``'s ``disable_adapter()``; no second copy of the model).
3. Advantages (``ppo.advantage``, maths in :mod:`signal_al.trainers.ppo_math`):

   * ``gae``: per-token reward ``-beta * KL(old || ref)`` plus the (optionally whitened and
     clipped) score on the last token; GAE with the value head, whitened per rollout batch.
   * ``rloo`` / ``grpo``: one advantage per rollout from its group's rewards, computed over
     the whole D_RL before any minibatch (a pre-pass gives the start policy's and the
     reference's log-probs), broadcast to its tokens. rloo puts ``-beta * sum_t KL`` into the
     sequence reward; grpo adds ``beta * k3(pi || ref)`` per token to the loss.
4. ``num_ppo_epochs`` epochs over ``num_mini_batches`` minibatches: clipped policy loss (plus
   ``vf_coef`` x clipped value loss for gae), one optimiser step per minibatch.

**One optimizer for the generator's life.** AdamW's state is saved with every adapter
(``optimizer.pt``, keyed by parameter name) and restored when the next update continues from
that adapter, so consecutive updates are one optimisation (a trainer kept in memory across
rounds gives the same weights as one restarted from the saved folder). ``ppo.reset_optimizer``
restores the old fresh-AdamW-per-update behaviour as an ablation.

**Served = trained.** Rollouts that carry the serving engine's log-probs (``Rollout.logprobs``)
are compared token by token with the trainer's recomputation under the start policy
(``served_logprob_mae``), and the policy loss is weighted by truncated importance weights
``min(pi_old / pi_served, cap)`` (``ppo.importance_sampling_cap``), as TRL's GRPO does for vLLM.

**An honest KL.** ``kl_served_k3`` is KL(start policy || base) estimated with the non-negative
k3 estimator on D_RL, which the start policy sampled; :meth:`PPOTrainer.policy_kl` gives the same
for any sequences sampled from the current policy (the loop uses it on the new adapter's
held-out samples). A KL measured on another policy's samples is never reported as a KL.

Completions are cut after their first EOS token and sequences are right-padded, so neither
padding nor text after EOS reaches a loss. Losses are normalised by the *global* number of
completion tokens of the minibatch, so gradient accumulation and any number of processes
give the same update as one process with the same global batch. Every process reads the
whole D_RL; the no-grad forward passes are sharded and their results summed across
processes, so all processes see identical advantages. Only the main process writes; the
output folder appears atomically (:mod:`signal_al.trainers.adapter_io`).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from signal_al.core.errors import ConfigError, UserError
from signal_al.trainers.accelerator import is_fsdp, make_accelerator
from signal_al.trainers.adapter_io import (METRICS_FILE, OPTIMIZER_FILE, STATE_FILE, check_output_folder,
                                           check_vllm_loadable, model_fingerprint, read_optimizer_state, save_adapter)
from signal_al.trainers.batches import (collate_full, collate_shared, group_shuffled_order, local_chunks,
                                        truncate_after_eos)
from signal_al.trainers.policy_loading import disable_dropout, eos_ids_of, load_base, read_adapter_state, wrap_lora
from signal_al.trainers.policy_model import PolicyWithValue
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.ppo_math import (gae, group_index, grpo_advantages, kl_penalty, masked_mean, masked_whiten,
                                         ppo_loss, rloo_advantages, sequence_kl_k3, truncated_is_weights, whiten)
from signal_al.trainers.rollouts import Rollout, check_vocab, read_rollouts
from signal_al.trainers.value_head import VALUE_HEAD_FILE, ValueHead

#: Order of the per-minibatch statistic sums (reduced over processes as one tensor).
STAT_KEYS = ("policy_loss", "value_loss", "clipfrac", "vf_clipfrac", "approx_kl", "ref_kl", "entropy", "tokens")


class PPOTrainer:
    """Load the base model (+ previous adapter), then :meth:`train` on rollouts and :meth:`save`."""

    def __init__(self, base_model: str | Path, config: PPOConfig | None = None, *, adapter: str | Path | None = None,
                 accelerator: Any = None, cpu: bool | None = None, eos_token_ids: Sequence[int] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        from signal_al.assets.registry import resolve_model

        self.config = config or PPOConfig()
        c = self.config
        self.base_model = str(base_model)
        self.model_path = resolve_model(self.base_model)
        self.adapter = Path(adapter) if adapter is not None else None
        self.micro_steps = c.gradient_accumulation_steps
        if accelerator is None:
            # no visible GPU: CPU processes over gloo, also under a MULTI_GPU `accelerate launch` config
            accelerator = make_accelerator(self.micro_steps, cpu)
        elif accelerator.gradient_accumulation_steps != self.micro_steps:
            raise ConfigError(f"accelerator has gradient_accumulation_steps={accelerator.gradient_accumulation_steps}, "
                              f"ppo.gradient_accumulation_steps is {self.micro_steps}")
        self.accelerator = accelerator
        self.log = log if log is not None else (lambda msg: None)
        prev_state = read_adapter_state(self.adapter, self.model_path, self.base_model) if self.adapter else {}
        self.kl_coef = float(prev_state.get("kl_coef", c.kl_coef)) if c.adaptive_kl else c.kl_coef
        # a cache cannot be replayed by gradient checkpointing, and FSDP reshards the weights the prompt's
        # cache came from before backward: training forwards then run full sequences
        self.share_train = c.share_prompt_forward and not c.gradient_checkpointing and not is_fsdp(accelerator)

        torch.manual_seed(c.seed)  # identical LoRA initialisation on every process
        base = load_base(self.model_path, self.base_model, c, accelerator.device, accelerator.local_process_index)
        self.fingerprint = model_fingerprint(base.config)
        self.vocab_size = base.get_input_embeddings().num_embeddings
        self.eos_ids = set(eos_token_ids) if eos_token_ids is not None else eos_ids_of(base, self.model_path)
        self.pad_id = base.config.pad_token_id if isinstance(base.config.pad_token_id, int) else 0
        policy = wrap_lora(base, c, self.adapter, self.base_model)
        value_head = None
        if c.advantage == "gae":
            hidden = base.config.hidden_size
            if self.adapter is not None and (self.adapter / VALUE_HEAD_FILE).is_file():
                value_head = ValueHead.load(self.adapter, hidden)
            else:
                value_head = ValueHead(hidden, generator=torch.Generator().manual_seed(c.seed))
        self.fresh_adapter = self.adapter is None  # LoRA B = 0: the policy *is* the reference until a step
        model = PolicyWithValue(policy, value_head)
        if c.disable_dropout:
            disable_dropout(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.learning_rate, eps=1e-5)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.model.train()
        self.history: list[dict[str, float]] = []
        self.optimizer_restored = False
        if self.adapter is not None and not c.reset_optimizer:
            self.optimizer_restored = self._restore_optimizer(read_optimizer_state(self.adapter))

    # -- the optimizer's state ------------------------------------------------------------------------

    def _persists_optimizer(self) -> bool:
        """DeepSpeed keeps its own optimizer partitions, which this trainer does not save."""
        return not str(getattr(self.accelerator.state, "distributed_type", "")).endswith("DEEPSPEED")

    def _torch_optimizer(self) -> torch.optim.Optimizer:
        return getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate wraps it

    def optimizer_state(self) -> dict[str, Any] | None:
        """AdamW's full state keyed by parameter name (a collective under FSDP; rank 0 holds it)."""
        if not self._persists_optimizer():
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.accelerator.unwrap_model(self.model), self._torch_optimizer(),
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _restore_optimizer(self, state: dict[str, Any] | None) -> bool:
        """Continue the adapter's optimizer; parameters it has no state for (a new value head) start fresh."""
        if state is None:
            self.log(f"{self.adapter}: no {OPTIMIZER_FILE} next to the adapter; the update starts a fresh AdamW")
            return False
        if not self._persists_optimizer():
            self.log("DeepSpeed: the saved optimizer state is not restored; the update starts a fresh AdamW")
            return False
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        model = self.accelerator.unwrap_model(self.model)
        names = {name for name, p in model.named_parameters() if p.requires_grad}
        try:
            saved = {k: v for k, v in state["state"].items() if k in names}
            groups = [{**g, "params": [n for n in g["params"] if n in names]} for g in state["param_groups"]]
            set_optimizer_state_dict(model, self._torch_optimizer(), {"state": saved, "param_groups": groups},
                                     options=StateDictOptions(full_state_dict=True, strict=False))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"{self.adapter / OPTIMIZER_FILE}: saved optimizer state does not fit this adapter "
                            f"({type(exc).__name__}: {str(exc)[:200]}); delete it to start a fresh AdamW") from None
        for group in self._torch_optimizer().param_groups:  # the config's learning rate wins over the saved one
            group["lr"] = self.config.learning_rate
        fresh = len(names) - len(saved)
        if fresh:
            self.log(f"{self.adapter}: {fresh} of {len(names)} trainable tensors have no saved optimizer state "
                     "and start fresh")
        return bool(saved)

    def optimizer_steps_total(self) -> int:
        """AdamW steps taken over the generator's life (the ``step`` count it keeps per parameter)."""
        steps = [int(s["step"]) for s in self._torch_optimizer().state.values() if "step" in s]
        return max(steps, default=0)

    # -- batches and no-grad passes --------------------------------------------------------------------

    def _collate(self, indices: Sequence[int], shared: bool, data: tuple[list, list] | None = None
                 ) -> dict[str, torch.Tensor]:
        all_prompts, all_completions = data or (self._prompts, self._completions)
        prompts = [all_prompts[i] for i in indices]
        completions = [all_completions[i] for i in indices]
        batch = (collate_shared if shared else collate_full)(prompts, completions, self.pad_id)
        return {key: value.to(self.accelerator.device) for key, value in batch.items()}

    def _run(self, batch: dict[str, torch.Tensor], with_entropy: bool) -> dict[str, torch.Tensor]:
        inputs = {key: value for key, value in batch.items() if key != "mask"}
        return self.model(**inputs, temperature=self.config.temperature, with_entropy=with_entropy)

    def _local_chunks(self, indices: Sequence[int], steps: int | None = None) -> list[tuple[list[int], bool]]:
        acc = self.accelerator
        return local_chunks(indices, self.config.per_device_train_batch_size, acc.process_index, acc.num_processes,
                            steps)

    @torch.no_grad()
    def _forward_all(self, indices: Sequence[int], width: int, reference: bool,
                     with_entropy: bool | None = None, data: tuple[list, list] | None = None
                     ) -> dict[str, torch.Tensor]:
        """Log-probs, values (gae) and entropy of ``indices`` (sharded, then summed over processes).

        ``data``: (prompts, completions) to read instead of the current D_RL's.
        """
        n = len(indices)
        position = {idx: k for k, idx in enumerate(indices)}
        device = self.accelerator.device
        with_entropy = (not reference) if with_entropy is None else with_entropy
        keys = ["logprobs"] + (["entropy"] if with_entropy else [])
        if self.accelerator.unwrap_model(self.model).value_head is not None:
            keys.append("values")
        out = {key: torch.zeros((n, width), device=device) for key in keys}
        unwrapped = self.accelerator.unwrap_model(self.model)
        context = unwrapped.policy.disable_adapter() if reference else nullcontext()
        self.model.eval()
        with context:
            for chunk, real in self._local_chunks(indices):
                batch = self._collate(chunk, shared=self.config.share_prompt_forward, data=data)
                result = self._run(batch, with_entropy)
                if not real:
                    continue
                rows = torch.tensor([position[i] for i in chunk], device=device)
                length = batch["mask"].shape[1]
                for key in out:
                    out[key][rows, :length] = (result[key].float() * batch["mask"]).to(out[key].dtype)
        self.model.train()
        if self.accelerator.num_processes > 1:
            out = {key: self.accelerator.reduce(value, reduction="sum") for key, value in out.items()}
        return out

    def _stack(self, cache: dict[int, torch.Tensor], batch: list[int], width: int) -> torch.Tensor:
        out = torch.zeros((len(batch), width), device=self.accelerator.device)
        for row, i in enumerate(batch):
            out[row, : len(cache[i])] = cache[i].to(out.device)
        return out

    def _completion_mask(self, indices: Sequence[int], completions: Sequence[Sequence[int]] | None = None
                         ) -> torch.Tensor:
        completions = self._completions if completions is None else completions
        width = max(len(completions[i]) for i in indices)
        mask = torch.zeros((len(indices), width), device=self.accelerator.device)
        for row, i in enumerate(indices):
            mask[row, : len(completions[i])] = 1.0
        return mask

    def policy_kl(self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]) -> list[float]:
        """KL(current policy || base) of each sequence (sum of per-token k3; >= 0, unbiased on its own samples).

        Pass sequences the *current* policy sampled (e.g. the new adapter's held-out samples):
        on another policy's samples the estimate is not a KL of anything. Call on every process.
        """
        completions = [truncate_after_eos(c, self.eos_ids) for c in completions]
        data = ([list(p) for p in prompts], completions)
        rows = [i for i, (p, c) in enumerate(zip(*data)) if p and c]
        if not rows:
            return []
        width = max(len(completions[i]) for i in rows)
        now = self._forward_all(rows, width, reference=False, with_entropy=False, data=data)["logprobs"]
        ref = self._forward_all(rows, width, reference=True, with_entropy=False, data=data)["logprobs"]
        kl = sequence_kl_k3(now, ref, self._completion_mask(rows, completions)).cpu().tolist()
        values = [float("nan")] * len(completions)
        for row, i in enumerate(rows):
            values[i] = kl[row]
        return values

    # -- training -------------------------------------------------------------------------------------

    def _prepare_rollouts(self, rollouts: Sequence[Rollout], source: str) -> torch.Tensor:
        if not rollouts:
            raise UserError(f"{source}: D_RL has no rollouts")
        check_vocab(rollouts, self.vocab_size, source)
        self._prompts = [list(r.prompt_token_ids) for r in rollouts]
        self._completions = [truncate_after_eos(r.completion_token_ids, self.eos_ids) for r in rollouts]
        # the server's log-probs of the same tokens (None: not recorded), cut like the completions
        self._served = [None if r.logprobs is None else torch.tensor(r.logprobs[: len(c)], dtype=torch.float32)
                        for r, c in zip(rollouts, self._completions)]
        self._group_keys = [r.group_key() for r in rollouts]
        self._groups = group_index(self._group_keys)
        scores = torch.tensor([r.reward for r in rollouts], dtype=torch.float32)
        if not torch.isfinite(scores).all():
            bad = next(r for r in rollouts if not math.isfinite(r.reward))
            raise UserError(f"{source}:{bad.line}: reward is {bad.reward}")
        self._raw_scores = scores.clone()
        c = self.config
        if c.whiten_rewards and len(scores) > 1 and scores.std() > 0:
            scores = (scores - scores.mean()) / (scores.std() + 1e-8)
        if c.reward_clip is not None:
            scores = scores.clamp(-c.reward_clip, c.reward_clip)
        return scores

    def _start_pass(self, order: list[int]) -> dict[str, float]:
        """Start-policy (and gae: value) and reference outputs of all of D_RL, once.

        They give rloo/grpo their D_RL-wide group advantages, the first rollout batch its old
        log-probs, the served-vs-trained comparison and KL(start policy || base) on the start
        policy's own samples. Returns those two measurements.
        """
        width = max(len(self._completions[i]) for i in order)
        start_out = self._forward_all(order, width, reference=False, with_entropy=False)
        start = start_out["logprobs"]
        ref = start if self.fresh_adapter else self._forward_all(order, width, reference=True)["logprobs"]
        mask = self._completion_mask(order)
        seq_kl = (kl_penalty(start, ref, self.config.kl_estimator) * mask).sum(1).cpu()
        k3 = sequence_kl_k3(start, ref, mask).cpu()
        self._seq_kl = torch.zeros(len(self._prompts))
        served_diff: list[torch.Tensor] = []
        for row, i in enumerate(order):
            length = len(self._completions[i])
            self._start_logprobs[i] = start[row, :length].cpu()
            if "values" in start_out:
                self._start_values[i] = start_out["values"][row, :length].cpu()
            self._ref_logprobs[i] = ref[row, :length].cpu()
            self._seq_kl[i] = seq_kl[row]
            if self._served[i] is not None:
                served_diff.append((self._start_logprobs[i] - self._served[i]).abs())
        stats = {"kl_served_k3": float(k3.mean())}
        if served_diff:
            diffs = torch.cat(served_diff)
            stats.update(served_logprob_mae=float(diffs.mean()), served_logprob_max=float(diffs.max()),
                         served_tokens=int(diffs.numel()), served_rollouts=len(served_diff))
        return stats

    @torch.no_grad()
    def served_gap(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        """Served = trained, measured without training: the current policy's log-probs of the rollouts'
        tokens against the ones they carry (``Rollout.logprobs``), and KL(policy || base) on them.

        Returns ``served_logprob_mae`` (mean |difference| per token), ``served_logprob_max``,
        ``served_tokens``, ``served_rollouts`` and ``kl_served_k3``.
        """
        self._prepare_rollouts(rollouts, "served_gap")
        self._start_logprobs, self._start_values, self._ref_logprobs = {}, {}, {}
        return self._start_pass(list(range(len(rollouts))))

    def _sequence_advantages(self, scores: torch.Tensor) -> torch.Tensor:
        """rloo/grpo advantage of every rollout of D_RL (rloo's reward uses the current beta)."""
        if self.config.advantage == "grpo":
            return grpo_advantages(scores, self._groups)
        advantages = rloo_advantages(scores - self.kl_coef * self._seq_kl, self._groups)
        return whiten(advantages) if self.config.whiten_advantages else advantages

    def train(self, rollouts: Sequence[Rollout], source: str = "D_RL", seed: int | None = None) -> dict[str, Any]:
        """Run the PPO update on ``rollouts``; returns the metrics (identical on every process).

        ``source`` names the data in error messages (the D_RL path); ``seed`` (default
        ``ppo.seed``) orders the minibatches. Calling it again continues the same policy and
        optimizer: a trainer can live across rounds.
        """
        c, acc = self.config, self.accelerator
        scores = self._prepare_rollouts(rollouts, source)
        n = len(rollouts)
        world = acc.num_processes
        self.history = []
        self._is_sums = torch.zeros(3)  # weight sum, truncated tokens, tokens
        generator = torch.Generator().manual_seed(c.seed if seed is None else seed)
        order = group_shuffled_order(self._group_keys, generator)
        rollout_batch = c.per_device_train_batch_size * c.gradient_accumulation_steps * c.num_mini_batches * world
        kl_start, kl_coefs = [], []
        self._ref_logprobs: dict[int, torch.Tensor] = {}
        self._start_logprobs: dict[int, torch.Tensor] = {}
        self._start_values: dict[int, torch.Tensor] = {}
        tokens = 0
        start = time.perf_counter()
        if acc.is_main_process:
            self.log(f"PPO update of {n} rollouts: {world} process(es), {acc.distributed_type}, {acc.device}, "
                     f"optimizer {'continued' if self.optimizer_restored or self.optimizer_steps_total() else 'new'}")
        start_stats = self._start_pass(order)
        for first in range(0, n, rollout_batch):
            batch = order[first:first + rollout_batch]
            stats = self._train_rollout_batch(batch, scores, generator)
            kl_start.append(stats["kl"])
            kl_coefs.append(self.kl_coef)
            tokens += stats["tokens"]
            if acc.is_main_process and self.history:
                h = self.history[-1]
                self.log(f"rollout batch {first // rollout_batch + 1}/{math.ceil(n / rollout_batch)}: "
                         f"KL(policy||base) {stats['kl_k3']:.4f} (k3, per sequence) beta {self.kl_coef:.4g} "
                         f"policy loss {h['policy_loss']:.4f} "
                         f"value loss {h['value_loss']:.4f} clipfrac {h['clipfrac']:.3f}")
            if c.adaptive_kl:  # Ziegler et al.'s proportional controller
                error = max(-0.2, min(0.2, stats["kl"] / c.target_kl - 1.0))
                self.kl_coef *= 1.0 + error * len(batch) / c.kl_horizon
        seconds = time.perf_counter() - start
        last = self.history[-1] if self.history else {}
        weight_sum, truncated, weighted_tokens = self._is_sums.tolist()

        def mean_of(key: str) -> float:
            values = [h[key] for h in self.history]
            return float(sum(values) / len(values)) if values else float("nan")

        return {
            "advantage": c.advantage,
            "num_rollouts": n,
            "num_groups": int(self._groups.max()) + 1,
            "num_processes": world,
            "optimizer_steps": len(self.history),
            "completion_tokens": sum(len(t) for t in self._completions),
            "reward_mean": float(self._raw_scores.mean()),
            "reward_std": float(self._raw_scores.std()) if n > 1 else 0.0,
            "kl_coef": kl_coefs[0] if kl_coefs else self.kl_coef,
            "kl_coef_next": self.kl_coef,
            "kl_start": float(sum(kl_start) / len(kl_start)),
            **start_stats,
            "is_weight_mean": weight_sum / weighted_tokens if weighted_tokens else None,
            "is_truncated_frac": truncated / weighted_tokens if weighted_tokens else None,
            "optimizer_restored": self.optimizer_restored,
            "optimizer_steps_total": self.optimizer_steps_total(),
            "entropy": mean_of("entropy"),
            "policy_loss": mean_of("policy_loss"),
            "value_loss": mean_of("value_loss"),
            "clipfrac": mean_of("clipfrac"),
            "vf_clipfrac": mean_of("vf_clipfrac"),
            "approx_kl": mean_of("approx_kl"),
            "last_policy_loss": last.get("policy_loss"),
            "update_seconds": seconds,
            "tokens_per_second": tokens / max(seconds, 1e-9),
            "history": self.history,
        }

    def _old_and_reference(self, batch: list[int], width: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The rollout batch's old outputs (current policy) and reference log-probs, reusing cached passes."""
        if not self.history:  # the policy has not moved since the start pass
            old = {"logprobs": self._stack(self._start_logprobs, batch, width)}
            if self._start_values:
                old["values"] = self._stack(self._start_values, batch, width)
        else:
            old = self._forward_all(batch, width, reference=False, with_entropy=False)
        if all(i in self._ref_logprobs for i in batch):
            return old, self._stack(self._ref_logprobs, batch, width)
        ref = old["logprobs"] if self.fresh_adapter else self._forward_all(batch, width, reference=True)["logprobs"]
        for row, i in enumerate(batch):
            self._ref_logprobs[i] = ref[row, : len(self._completions[i])].cpu()
        return old, ref

    def _train_rollout_batch(self, batch: list[int], scores: torch.Tensor, generator: torch.Generator) -> dict:
        c, acc = self.config, self.accelerator
        device = acc.device
        fmask = self._completion_mask(batch)
        width = fmask.shape[1]
        old, ref_logprobs = self._old_and_reference(batch, width)
        old_logprobs = old["logprobs"]
        kl = kl_penalty(old_logprobs, ref_logprobs, c.kl_estimator) * fmask
        old_values = returns = None
        if c.advantage == "gae":
            old_values = old["values"] * fmask
            rewards = -self.kl_coef * kl
            last = fmask.sum(1).long() - 1
            rewards[torch.arange(len(batch), device=device), last] += scores[batch].to(device)
            advantages = gae(rewards, old_values, c.gamma, c.lam)
            returns = advantages + old_values
            if c.whiten_advantages:
                advantages = masked_whiten(advantages, fmask)
        else:
            advantages = self._sequence_advantages(scores)[batch].to(device)[:, None].expand_as(fmask)
        advantages = advantages * fmask
        in_loss_ref = ref_logprobs if c.advantage == "grpo" else None
        is_weights = None
        if c.importance_sampling_cap is not None and any(self._served[i] is not None for i in batch):
            # rollouts without served log-probs count as served by the old policy (weight 1)
            served = old_logprobs.clone()
            for row, i in enumerate(batch):
                if self._served[i] is not None:
                    served[row, : len(self._served[i])] = self._served[i].to(device)
            is_weights = truncated_is_weights(old_logprobs, served, fmask, c.importance_sampling_cap)
            raw = torch.exp((old_logprobs - served) * fmask)
            self._is_sums += torch.tensor([float(is_weights.sum()), float(((raw > c.importance_sampling_cap)
                                                                             * fmask).sum()), float(fmask.sum())])

        def rows_of(tensor: torch.Tensor | None, rows: torch.Tensor, length: int) -> torch.Tensor | None:
            return tensor[rows, :length] if tensor is not None else None

        position = {idx: k for k, idx in enumerate(batch)}
        scale_base = acc.num_processes * self.micro_steps
        for _epoch in range(c.num_ppo_epochs):
            perm = torch.tensor(group_shuffled_order([self._group_keys[i] for i in batch], generator))
            for part in torch.tensor_split(perm, c.num_mini_batches):
                if len(part) == 0:
                    continue
                mb = [batch[k] for k in part.tolist()]
                num_tokens = float(fmask[part].sum())
                sums = torch.zeros(len(STAT_KEYS), device=device)
                grad_norm = torch.tensor(0.0)
                for chunk, real in self._local_chunks(mb, steps=self.micro_steps):
                    with acc.accumulate(self.model):
                        b = self._collate(chunk, shared=self.share_train)
                        rows = torch.tensor([position[i] for i in chunk], device=device)
                        length = b["mask"].shape[1]
                        out = self._run(b, with_entropy=True)
                        per_token, stats = ppo_loss(
                            out["logprobs"], rows_of(old_logprobs, rows, length), rows_of(advantages, rows, length),
                            b["mask"], c.cliprange, values=out.get("values"),
                            old_values=rows_of(old_values, rows, length), returns=rows_of(returns, rows, length),
                            cliprange_value=c.cliprange_value, vf_coef=c.vf_coef,
                            ref_logprobs=rows_of(in_loss_ref, rows, length), kl_coef=self.kl_coef,
                            is_weights=rows_of(is_weights, rows, length))
                        weight = scale_base / num_tokens if real else 0.0
                        acc.backward(per_token.sum() * weight)
                        if acc.sync_gradients:
                            norm = acc.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                            grad_norm = norm if norm is not None else torch.tensor(float("nan"))  # DeepSpeed clips itself
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    if real:
                        stats["entropy"] = (out["entropy"] * b["mask"]).sum()
                        sums += torch.stack([stats[key].float() for key in STAT_KEYS])
                self.fresh_adapter = False
                if acc.num_processes > 1:
                    sums = acc.reduce(sums, reduction="sum")
                self._log_step(sums, grad_norm)
        tokens = sum(len(self._prompts[i]) + len(self._completions[i]) for i in batch) * c.num_ppo_epochs
        k3 = (kl_penalty(old_logprobs, ref_logprobs, "k3") * fmask).sum(1).mean()
        return {"kl": float(kl.sum(1).mean()), "kl_k3": float(k3), "tokens": tokens}

    def _log_step(self, sums: torch.Tensor, grad_norm: torch.Tensor) -> None:
        c = self.config
        count = float(sums[STAT_KEYS.index("tokens")].clamp_min(1))
        mean = {key: float(sums[k]) / count for k, key in enumerate(STAT_KEYS) if key != "tokens"}
        loss = mean["policy_loss"] + c.vf_coef * mean["value_loss"]
        if c.advantage == "grpo":
            loss += self.kl_coef * mean["ref_kl"]
        self.history.append({"step": len(self.history) + 1, "loss": loss, **mean, "grad_norm": float(grad_norm)})

    # -- saving ---------------------------------------------------------------------------------------

    def save(self, out_dir: str | Path, metrics: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write adapter, value head (gae), optimizer state, beta and metrics atomically (main process writes;
        call on all)."""
        acc = self.accelerator
        out = Path(out_dir)
        state_dict = acc.get_state_dict(self.model)  # collective under ZeRO-3 / FSDP
        optimizer_state = self.optimizer_state()  # collective under FSDP
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(self.model)
            state = {"kl_coef": self.kl_coef, "base_model": self.base_model,
                     "base_fingerprint": self.fingerprint, "config": asdict(self.config)}
            save_adapter(out, unwrapped.policy, base_model=self.base_model, state=state, metrics=metrics,
                         policy_state={k[len("policy."):]: v for k, v in state_dict.items() if k.startswith("policy.")},
                         value_head=unwrapped.value_head,
                         head_state={k[len("value_head."):]: v for k, v in state_dict.items()
                                     if k.startswith("value_head.")},
                         optimizer_state=optimizer_state, overwrite=overwrite)
        acc.wait_for_everyone()
        return out


def train_generator(base_model: str | Path, rl_data: str | Path | Sequence[Rollout], out_dir: str | Path,
                    config: PPOConfig | None = None, *, adapter: str | Path | None = None, cpu: bool | None = None,
                    accelerator: Any = None, overwrite: bool = False,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One PPO update: base model (+ previous adapter) and D_RL in, new adapter folder out.

    Bad input (empty D_RL, NaN reward, token ids outside the vocabulary, an adapter for
    another base model) raises a UserError before anything is written.
    """
    rollouts = read_rollouts(rl_data) if isinstance(rl_data, (str, Path)) else list(rl_data)
    if not rollouts:
        raise UserError("D_RL has no rollouts")
    out = Path(out_dir)
    check_output_folder(out, overwrite)
    trainer = PPOTrainer(base_model, config, adapter=adapter, accelerator=accelerator, cpu=cpu, log=log)
    metrics = trainer.train(rollouts, source=str(rl_data) if isinstance(rl_data, (str, Path)) else "D_RL")
    trainer.save(out, metrics, overwrite=overwrite)
    if trainer.accelerator.num_processes > 1:  # tear the process group down before exit: a live gloo thread
        trainer.accelerator.end_training()     # at interpreter exit aborts the process (SIGABRT, seen on CI)
    return metrics


__all__ = ["METRICS_FILE", "STATE_FILE", "PPOTrainer", "PolicyWithValue", "check_vllm_loadable", "eos_ids_of", "gae",
           "kl_penalty", "masked_mean", "masked_whiten", "model_fingerprint", "train_generator", "truncate_after_eos"]
