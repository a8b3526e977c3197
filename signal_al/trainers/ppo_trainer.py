"""PPO + LoRA update of the generator on stored rollouts (D_RL), distributed with Accelerate.

TRL 1.x has no PPOTrainer, and its online trainers cannot take already-generated responses
with external rewards, so this is a compact PPO in the style of TRL's former PPOv2:

1. D_RL is consumed in *rollout batches* of ``per_device_train_batch_size x
   gradient_accumulation_steps x num_mini_batches x processes`` rollouts (seeded order).
2. For each rollout batch the current policy computes, once, the old log-probs and values;
   the reference log-probs come from the same weights with the LoRA adapter disabled
   (``peft``'s ``disable_adapter()``; no second copy of the model).
3. Per-token reward = ``-beta * KL(old || ref)`` on every completion token, plus the
   (optionally whitened and clipped) score on the last completion token. GAE gives the
   advantages (whitened over the rollout batch) and the returns.
4. ``num_ppo_epochs`` epochs over ``num_mini_batches`` shuffled minibatches: clipped policy
   loss plus ``vf_coef`` x clipped value loss, one optimiser step per minibatch.

Completions are cut after their first EOS token and sequences are right-padded, so neither
padding nor text after EOS reaches a loss. Losses are normalised by the *global* number of
completion tokens of the minibatch, so gradient accumulation and any number of processes
give the same update as one process with the same global batch. Every process reads the
whole D_RL; the per-rollout forward passes are sharded (``rank::world``) and their results
summed across processes, so all processes see identical advantages. Only the main process
writes; the output folder appears atomically (temporary folder, then rename).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from signal_al.errors import ConfigError, UserError
from signal_al.io_utils import atomic_directory
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.rollouts import Rollout, check_vocab, read_rollouts
from signal_al.trainers.value_head import VALUE_HEAD_FILE, ValueHead

STATE_FILE = "ppo_state.json"
METRICS_FILE = "metrics.json"


# --- small tensor helpers --------------------------------------------------------------------------


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp_min(1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Whiten ``values`` over the positions where ``mask`` is true (unbiased variance, as TRL did)."""
    mean = masked_mean(values, mask)
    centered = values - mean
    count = mask.sum()
    var = (centered.pow(2) * mask).sum() / (count - 1).clamp_min(1)
    whitened = centered * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates over the last dimension (values and rewards are 0 on padding)."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return advantages


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate: k1 = log-ratio, k3 = (r - 1) - log r with r = ref/pi."""
    log_ratio = logprobs - ref_logprobs
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    return log_ratio


def eos_ids_of(model: Any, tokenizer_path: str | None = None) -> set[int]:
    """EOS token ids from the generation config, the model config and (if present) the tokenizer."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer_path is not None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(tokenizer_path)
            if tok.eos_token_id is not None:
                ids.add(int(tok.eos_token_id))
        except Exception:  # no tokenizer next to the weights: the configs are enough
            pass
    return ids


def truncate_after_eos(tokens: Sequence[int], eos_ids: set[int]) -> list[int]:
    """Keep tokens up to and including the first EOS."""
    for i, token in enumerate(tokens):
        if token in eos_ids:
            return list(tokens[: i + 1])
    return list(tokens)


def model_fingerprint(config: Any) -> dict[str, Any]:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    return {k: getattr(config, k, None) for k in keys}


# --- the policy + value module that Accelerate wraps ----------------------------------------------


class PolicyWithValue(nn.Module):
    """The PEFT policy and its value head as one module, so DDP/DeepSpeed/FSDP wrap both."""

    def __init__(self, policy: nn.Module, value_head: ValueHead) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = value_head
        # FSDP's transformer auto-wrap reads the decoder layer classes from here
        self._no_split_modules = getattr(policy.get_base_model(), "_no_split_modules", None)

    def forward(self, input_ids: torch.Tensor, gather_index: torch.Tensor, completion_ids: torch.Tensor,
                temperature: float = 1.0, with_entropy: bool = False) -> dict[str, torch.Tensor]:
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        causal_lm = self.policy.get_base_model()
        # Right padding + causal attention: padding never reaches an earlier position, so no mask.
        hidden = causal_lm.get_decoder()(input_ids=input_ids, use_cache=False).last_hidden_state
        # Hidden state at position t predicts token t+1: keep only those predicting completion tokens.
        hidden = hidden.gather(1, gather_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        logits = causal_lm.get_output_embeddings()(hidden).float() / temperature
        out = {"logprobs": selective_log_softmax(logits, completion_ids), "values": self.value_head(hidden)}
        if with_entropy:
            with torch.no_grad():
                out["entropy"] = entropy_from_logits(logits)
        return out


# --- the trainer -----------------------------------------------------------------------------------


class PPOTrainer:
    """Load the base model (+ previous adapter), then :meth:`train` on rollouts and :meth:`save`."""

    def __init__(self, base_model: str | Path, config: PPOConfig | None = None, *, adapter: str | Path | None = None,
                 accelerator: Any = None, cpu: bool | None = None, eos_token_ids: Sequence[int] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        from accelerate import Accelerator

        from signal_al.assets import resolve_model

        self.config = config or PPOConfig()
        c = self.config
        self.base_model = str(base_model)
        self.model_path = resolve_model(self.base_model)
        self.adapter = Path(adapter) if adapter is not None else None
        self.micro_steps = c.gradient_accumulation_steps
        if accelerator is None:
            # no visible GPU: CPU processes over gloo, also under a MULTI_GPU `accelerate launch` config
            cpu = (not torch.cuda.is_available()) if cpu is None else cpu
            accelerator = Accelerator(gradient_accumulation_steps=self.micro_steps, cpu=cpu)
        elif accelerator.gradient_accumulation_steps != self.micro_steps:
            raise ConfigError(f"accelerator has gradient_accumulation_steps={accelerator.gradient_accumulation_steps}, "
                              f"ppo.gradient_accumulation_steps is {self.micro_steps}")
        self.accelerator = accelerator
        self.log = log if log is not None else (lambda msg: None)
        prev_state = self._check_adapter() if self.adapter is not None else {}
        self.kl_coef = float(prev_state.get("kl_coef", c.kl_coef)) if c.adaptive_kl else c.kl_coef

        torch.manual_seed(c.seed)  # identical LoRA initialisation on every process
        base = self._load_base()
        self.fingerprint = model_fingerprint(base.config)
        self.vocab_size = base.get_input_embeddings().num_embeddings
        self.eos_ids = set(eos_token_ids) if eos_token_ids is not None else eos_ids_of(base, self.model_path)
        self.pad_id = base.config.pad_token_id if isinstance(base.config.pad_token_id, int) else 0
        policy = self._wrap_lora(base)
        hidden = base.config.hidden_size
        if self.adapter is not None and (self.adapter / VALUE_HEAD_FILE).is_file():
            value_head = ValueHead.load(self.adapter, hidden)
        else:
            value_head = ValueHead(hidden, generator=torch.Generator().manual_seed(c.seed))
        self.fresh_adapter = self.adapter is None  # LoRA B = 0: the policy *is* the reference until a step
        model = PolicyWithValue(policy, value_head)
        if c.disable_dropout:
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.p = 0.0
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=c.learning_rate, eps=1e-5)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.model.train()
        self.history: list[dict[str, float]] = []

    # -- loading --------------------------------------------------------------------------------------

    def _check_adapter(self) -> dict[str, Any]:
        from transformers import AutoConfig

        assert self.adapter is not None
        if not (self.adapter / "adapter_config.json").is_file():
            raise UserError(f"{self.adapter}: not a LoRA adapter folder (no adapter_config.json)")
        state_path = self.adapter / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        expected = state.get("base_fingerprint")
        if expected:
            try:
                found = model_fingerprint(AutoConfig.from_pretrained(self.model_path))
            except OSError as exc:
                raise UserError(f"{self.base_model}: cannot read the base model config ({exc})") from None
            if found != expected:
                diff = ", ".join(f"{k} {expected[k]} vs {found.get(k)}" for k in expected if expected[k] != found.get(k))
                raise UserError(f"{self.adapter}: adapter was trained on another base model than "
                                f"{self.base_model} ({diff})")
        return state

    def _load_base(self) -> nn.Module:
        from transformers import AutoModelForCausalLM

        c = self.config
        device_is_cuda = self.accelerator.device.type == "cuda"
        if c.dtype == "auto":
            dtype = torch.bfloat16 if device_is_cuda and torch.cuda.is_bf16_supported() else torch.float32
        else:
            dtype = getattr(torch, c.dtype)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if c.load_in_4bit:
            if not device_is_cuda:
                raise ConfigError("ppo.load_in_4bit: QLoRA (bitsandbytes 4-bit) needs a CUDA GPU")
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16 if dtype == torch.float32 else dtype)
            kwargs["device_map"] = {"": self.accelerator.local_process_index}
        try:
            base = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        except OSError as exc:
            raise UserError(f"{self.base_model}: cannot load the base model ({exc})") from None
        base.config.use_cache = False
        if c.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=c.gradient_checkpointing)
        elif c.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.enable_input_require_grads()
        return base

    def _wrap_lora(self, base: nn.Module) -> nn.Module:
        from peft import LoraConfig, PeftModel, get_peft_model

        c = self.config
        if self.adapter is None:
            lora = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                              target_modules=list(c.lora_target_modules), bias="none", task_type="CAUSAL_LM")
            try:
                return get_peft_model(base, lora)
            except ValueError as exc:
                raise ConfigError(f"ppo.lora_target_modules: {exc}") from None
        try:
            policy = PeftModel.from_pretrained(base, str(self.adapter), is_trainable=True)
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise UserError(f"{self.adapter}: adapter does not fit base model {self.base_model} ({first})") from None
        check_vllm_loadable(policy.peft_config["default"], where=str(self.adapter))
        return policy

    # -- batches --------------------------------------------------------------------------------------

    def _collate(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        prompts = [self._prompts[i] for i in indices]
        completions = [self._completions[i] for i in indices]
        n = len(indices)
        seq_len = max(len(p) + len(c) for p, c in zip(prompts, completions))
        comp_len = max(len(c) for c in completions)
        input_ids = torch.full((n, seq_len), self.pad_id, dtype=torch.long)
        completion_ids = torch.full((n, comp_len), self.pad_id, dtype=torch.long)
        gather_index = torch.zeros((n, comp_len), dtype=torch.long)
        mask = torch.zeros((n, comp_len), dtype=torch.bool)
        for row, (p, c) in enumerate(zip(prompts, completions)):
            input_ids[row, : len(p) + len(c)] = torch.tensor(p + c)
            completion_ids[row, : len(c)] = torch.tensor(c)
            positions = torch.arange(comp_len).clamp_max(len(c) - 1) + len(p) - 1
            gather_index[row] = positions
            mask[row, : len(c)] = True
        device = self.accelerator.device
        return {"input_ids": input_ids.to(device), "gather_index": gather_index.to(device),
                "completion_ids": completion_ids.to(device), "mask": mask.to(device)}

    def _local_chunks(self, indices: Sequence[int], steps: int | None = None) -> list[tuple[list[int], bool]]:
        """This process's micro-batches of ``indices`` (``rank::world``); a process with none left gets a
        dummy micro-batch (flag False) so every process runs the same number of forward passes."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        size = self.config.per_device_train_batch_size
        local = list(indices[rank::world])
        if steps is None:
            steps = math.ceil(math.ceil(len(indices) / world) / size)
        assert len(local) <= steps * size, "a minibatch is larger than its micro-steps can hold"
        chunks = [local[i * size:(i + 1) * size] for i in range(steps)]
        return [(chunk, True) if chunk else ([indices[0]], False) for chunk in chunks]

    @torch.no_grad()
    def _forward_all(self, indices: Sequence[int], width: int, reference: bool) -> dict[str, torch.Tensor]:
        """Log-probs, values and entropy of ``indices`` (sharded, then summed over processes)."""
        n = len(indices)
        position = {idx: k for k, idx in enumerate(indices)}
        device = self.accelerator.device
        out = {key: torch.zeros((n, width), device=device) for key in ("logprobs", "values", "entropy")}
        unwrapped = self.accelerator.unwrap_model(self.model)
        context = unwrapped.policy.disable_adapter() if reference else nullcontext()
        self.model.eval()
        with context:
            for chunk, real in self._local_chunks(indices):
                batch = self._collate(chunk)
                result = self.model(batch["input_ids"], batch["gather_index"], batch["completion_ids"],
                                    temperature=self.config.temperature, with_entropy=not reference)
                if not real:
                    continue
                rows = torch.tensor([position[i] for i in chunk], device=device)
                length = batch["mask"].shape[1]
                for key in out:
                    if key in result:
                        out[key][rows, :length] = (result[key].float() * batch["mask"]).to(out[key].dtype)
        self.model.train()
        if self.accelerator.num_processes > 1:
            out = {key: self.accelerator.reduce(value, reduction="sum") for key, value in out.items()}
        return out

    # -- training -------------------------------------------------------------------------------------

    def _prepare_rollouts(self, rollouts: Sequence[Rollout], source: str) -> torch.Tensor:
        if not rollouts:
            raise UserError(f"{source}: D_RL has no rollouts")
        check_vocab(rollouts, self.vocab_size, source)
        self._prompts = [list(r.prompt_token_ids) for r in rollouts]
        self._completions = [truncate_after_eos(r.completion_token_ids, self.eos_ids) for r in rollouts]
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

    def train(self, rollouts: Sequence[Rollout], source: str = "D_RL") -> dict[str, Any]:
        """Run the PPO update on ``rollouts``; returns the metrics (identical on every process).

        ``source`` names the data in error messages (the D_RL path).
        """
        c, acc = self.config, self.accelerator
        scores = self._prepare_rollouts(rollouts, source)
        n = len(rollouts)
        world = acc.num_processes
        generator = torch.Generator().manual_seed(c.seed)
        order = torch.randperm(n, generator=generator).tolist()
        rollout_batch = c.per_device_train_batch_size * c.gradient_accumulation_steps * c.num_mini_batches * world
        kl_start, kl_coefs = [], []
        self._ref_logprobs: dict[int, torch.Tensor] = {}
        tokens = 0
        start = time.perf_counter()
        for first in range(0, n, rollout_batch):
            batch = order[first:first + rollout_batch]
            stats = self._train_rollout_batch(batch, scores, generator)
            kl_start.append(stats["kl"])
            kl_coefs.append(self.kl_coef)
            tokens += stats["tokens"]
            if acc.is_main_process and self.history:
                h = self.history[-1]
                self.log(f"rollout batch {first // rollout_batch + 1}/{math.ceil(n / rollout_batch)}: "
                         f"kl {stats['kl']:.4f} beta {self.kl_coef:.4g} policy loss {h['policy_loss']:.4f} "
                         f"value loss {h['value_loss']:.4f} clipfrac {h['clipfrac']:.3f}")
            if c.adaptive_kl:  # Ziegler et al.'s proportional controller
                error = max(-0.2, min(0.2, stats["kl"] / c.target_kl - 1.0))
                self.kl_coef *= 1.0 + error * len(batch) / c.kl_horizon
        seconds = time.perf_counter() - start
        final = self._final_kl(order)
        last = self.history[-1] if self.history else {}

        def mean_of(key: str) -> float:
            values = [h[key] for h in self.history]
            return float(sum(values) / len(values)) if values else float("nan")

        completion_tokens = sum(len(t) for t in self._completions)
        metrics = {
            "num_rollouts": n,
            "num_processes": world,
            "optimizer_steps": len(self.history),
            "completion_tokens": completion_tokens,
            "reward_mean": float(self._raw_scores.mean()),
            "reward_std": float(self._raw_scores.std()) if n > 1 else 0.0,
            "kl_coef": kl_coefs[0] if kl_coefs else self.kl_coef,
            "kl_coef_next": self.kl_coef,
            "kl_start": float(sum(kl_start) / len(kl_start)),
            "kl_final": final["kl"],
            "kl_final_k3": final["kl_k3"],
            "entropy": final["entropy"],
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
        return metrics

    def _train_rollout_batch(self, batch: list[int], scores: torch.Tensor, generator: torch.Generator) -> dict:
        c, acc = self.config, self.accelerator
        device = acc.device
        width = max(len(self._completions[i]) for i in batch)
        mask = torch.zeros((len(batch), width), dtype=torch.bool, device=device)
        last = torch.zeros(len(batch), dtype=torch.long, device=device)
        for row, i in enumerate(batch):
            mask[row, : len(self._completions[i])] = True
            last[row] = len(self._completions[i]) - 1
        fmask = mask.float()
        old = self._forward_all(batch, width, reference=False)
        if self.fresh_adapter:
            ref_logprobs = old["logprobs"]
        else:
            ref_logprobs = self._forward_all(batch, width, reference=True)["logprobs"]
        for row, i in enumerate(batch):
            self._ref_logprobs[i] = ref_logprobs[row, : len(self._completions[i])].cpu()
        old_logprobs, old_values = old["logprobs"], old["values"] * fmask
        kl = kl_penalty(old_logprobs, ref_logprobs, c.kl_estimator) * fmask
        rewards = -self.kl_coef * kl
        rows = torch.arange(len(batch), device=device)
        rewards[rows, last] += scores[batch].to(device)
        advantages = gae(rewards, old_values, c.gamma, c.lam)
        returns = advantages + old_values
        if c.whiten_advantages:
            advantages = masked_whiten(advantages, fmask)
        advantages = advantages * fmask

        position = {idx: k for k, idx in enumerate(batch)}
        scale_base = acc.num_processes * self.micro_steps
        for _epoch in range(c.num_ppo_epochs):
            perm = torch.randperm(len(batch), generator=generator)
            for part in torch.tensor_split(perm, c.num_mini_batches):
                if len(part) == 0:
                    continue
                mb = [batch[k] for k in part.tolist()]
                num_tokens = float(fmask[part].sum())
                sums = torch.zeros(7, device=device)
                grad_norm = torch.tensor(0.0)
                for chunk, real in self._local_chunks(mb, steps=self.micro_steps):
                    with acc.accumulate(self.model):
                        b = self._collate(chunk)
                        rows_ = torch.tensor([position[i] for i in chunk], device=device)
                        length = b["mask"].shape[1]
                        m = b["mask"].float()
                        out = self.model(b["input_ids"], b["gather_index"], b["completion_ids"],
                                         temperature=c.temperature, with_entropy=True)
                        old_lp = old_logprobs[rows_, :length]
                        adv = advantages[rows_, :length]
                        ret = returns[rows_, :length]
                        old_v = old_values[rows_, :length]
                        log_ratio = (out["logprobs"] - old_lp) * m
                        ratio = torch.exp(log_ratio)
                        pg_losses = torch.max(-adv * ratio, -adv * ratio.clamp(1 - c.cliprange, 1 + c.cliprange))
                        v = out["values"]
                        v_clipped = old_v + (v - old_v).clamp(-c.cliprange_value, c.cliprange_value)
                        vf_losses = 0.5 * torch.max((v - ret) ** 2, (v_clipped - ret) ** 2)
                        per_token = (pg_losses + c.vf_coef * vf_losses) * m
                        weight = scale_base / num_tokens if real else 0.0
                        acc.backward(per_token.sum() * weight)
                        if acc.sync_gradients:
                            norm = acc.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                            grad_norm = norm if norm is not None else torch.tensor(float("nan"))  # DeepSpeed clips itself
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    if real:
                        with torch.no_grad():
                            sums += torch.stack([
                                (pg_losses * m).sum(), (vf_losses * m).sum(),
                                ((-adv * ratio < pg_losses).float() * m).sum(),
                                (((v_clipped - ret) ** 2 > (v - ret) ** 2).float() * m).sum(),
                                (0.5 * log_ratio ** 2 * m).sum(), (out["entropy"] * m).sum(), m.sum(),
                            ]).detach()
                self.fresh_adapter = False
                if acc.num_processes > 1:
                    sums = acc.reduce(sums, reduction="sum")
                count = float(sums[6].clamp_min(1))
                pg, vf = float(sums[0]) / count, float(sums[1]) / count
                self.history.append({
                    "step": len(self.history) + 1,
                    "loss": pg + c.vf_coef * vf,
                    "policy_loss": pg,
                    "value_loss": vf,
                    "clipfrac": float(sums[2]) / count,
                    "vf_clipfrac": float(sums[3]) / count,
                    "approx_kl": float(sums[4]) / count,
                    "entropy": float(sums[5]) / count,
                    "grad_norm": float(grad_norm),
                })
        tokens = sum(len(self._prompts[i]) + len(self._completions[i]) for i in batch) * c.num_ppo_epochs
        seq_kl = float((kl.sum(1)).mean())
        return {"kl": seq_kl, "tokens": tokens}

    def _final_kl(self, order: list[int]) -> dict[str, float]:
        """KL(policy || reference) per sequence and mean entropy after the update (one no-grad pass)."""
        width = max(len(self._completions[i]) for i in order)
        now = self._forward_all(order, width, reference=False)
        mask = torch.zeros_like(now["logprobs"])
        ref = torch.zeros_like(now["logprobs"])
        for row, i in enumerate(order):
            length = len(self._completions[i])
            mask[row, :length] = 1
            ref[row, :length] = self._ref_logprobs[i].to(ref.device)
        kl = kl_penalty(now["logprobs"], ref, self.config.kl_estimator) * mask
        k3 = kl_penalty(now["logprobs"], ref, "k3") * mask
        return {"kl": float(kl.sum(1).mean()), "kl_k3": float(k3.sum(1).mean()),
                "entropy": float(masked_mean(now["entropy"], mask))}

    # -- saving ---------------------------------------------------------------------------------------

    def save(self, out_dir: str | Path, metrics: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write adapter, value head, state and metrics atomically (main process only; call on all)."""
        acc = self.accelerator
        out = Path(out_dir)
        state_dict = acc.get_state_dict(self.model)  # collective under ZeRO-3 / FSDP
        if acc.is_main_process:
            if out.exists() and any(out.iterdir()) and not overwrite:
                raise UserError(f"{out}: output folder exists and is not empty")
            with atomic_directory(out) as tmp:
                unwrapped = acc.unwrap_model(self.model)
                policy_state = {k[len("policy."):]: v for k, v in state_dict.items() if k.startswith("policy.")}
                head_state = {k[len("value_head."):]: v for k, v in state_dict.items() if k.startswith("value_head.")}
                unwrapped.policy.peft_config["default"].base_model_name_or_path = self.base_model
                unwrapped.policy.save_pretrained(str(tmp), state_dict=policy_state)
                check_vllm_loadable(json.loads((tmp / "adapter_config.json").read_text()), where=str(out))
                unwrapped.value_head.save(tmp, head_state)
                state = {"kl_coef": self.kl_coef, "base_model": self.base_model,
                         "base_fingerprint": self.fingerprint, "config": asdict(self.config)}
                (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
                if metrics is not None:
                    (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        acc.wait_for_everyone()
        return out


def check_vllm_loadable(lora_config: Any, where: str) -> None:
    """Plain LoRA only: vLLM refuses DoRA, trained biases and modules_to_save."""
    get = (lambda k: lora_config.get(k)) if isinstance(lora_config, dict) else (lambda k: getattr(lora_config, k, None))
    problems = []
    if get("use_dora"):
        problems.append("DoRA")
    if get("bias") not in (None, "none"):
        problems.append(f"bias={get('bias')}")
    if get("modules_to_save"):
        problems.append(f"modules_to_save={get('modules_to_save')}")
    if problems:
        raise UserError(f"{where}: adapter is not a plain LoRA vLLM can serve ({', '.join(problems)})")


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
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: output folder exists and is not empty")
    trainer = PPOTrainer(base_model, config, adapter=adapter, accelerator=accelerator, cpu=cpu, log=log)
    metrics = trainer.train(rollouts, source=str(rl_data) if isinstance(rl_data, (str, Path)) else "D_RL")
    trainer.save(out, metrics, overwrite=overwrite)
    return metrics


__all__ = [
    "PPOTrainer",
    "PolicyWithValue",
    "check_vllm_loadable",
    "gae",
    "kl_penalty",
    "masked_mean",
    "masked_whiten",
    "train_generator",
    "truncate_after_eos",
]
