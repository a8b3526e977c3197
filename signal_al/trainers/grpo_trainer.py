"""The TRL-native alternative to our PPO: ``trl.GRPOTrainer`` with a LoRA adapter.

Two modes, same adapter output as :func:`~signal_al.trainers.ppo_trainer.train_generator`
(a plain LoRA folder that vLLM hot-loads, plus ``ppo_state.json`` and ``metrics.json``):

* **online**: GRPO samples ``num_generations`` completions per prompt and scores them with
  any TRL reward function ``(prompts, completions, **kwargs) -> list[float]`` (such as the
  SIGnAL reward adapter);
* **replay**: stored rollouts (D_RL) are served by :func:`replay_rollout_func`; the reward is
  the stored one (:func:`stored_reward`), so no model is sampled. A replay group is
  ``num_generations`` rollouts (rollouts of the same prompt are kept together), whose mean
  reward is the GRPO baseline.

The reference policy is the base model with the adapter disabled (TRL does this for PEFT
models), so there is no second copy of the weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from signal_al.core.errors import ConfigError, UserError
from signal_al.trainers.adapter_io import check_output_folder, model_fingerprint, save_adapter
from signal_al.trainers.grpo_config import GRPOOptions
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.rollouts import Rollout, check_vocab, read_rollouts

REPLAY_PREFIX = "replay-group-"


def stored_reward(prompts: list, completions: list, stored_reward: list[float], **kwargs: Any) -> list[float]:
    """TRL reward function for replay: the reward stored with each rollout.

    >>> stored_reward(["replay-group-0"] * 2, ["a", "b"], stored_reward=[0.5, -1.0])
    [0.5, -1.0]
    """
    return [float(r) for r in stored_reward]


def replay_groups(rollouts: Sequence[Rollout], num_generations: int) -> list[list[Rollout]]:
    """Groups of ``num_generations`` rollouts, same-prompt rollouts adjacent; a remainder is dropped."""
    by_prompt: dict[tuple[int, ...], list[Rollout]] = {}
    for r in rollouts:
        by_prompt.setdefault(tuple(r.prompt_token_ids), []).append(r)
    ordered = [r for group in by_prompt.values() for r in group]
    if len(ordered) < num_generations:
        raise UserError(f"D_RL has {len(ordered)} rollouts, fewer than grpo.num_generations={num_generations}")
    count = len(ordered) // num_generations
    return [ordered[g * num_generations:(g + 1) * num_generations] for g in range(count)]


def replay_rollout_func(groups: list[list[Rollout]]) -> Callable[[list, Any], dict[str, Any]]:
    """A GRPO ``rollout_func`` that returns stored rollouts instead of sampling.

    The training dataset's prompts are ``replay-group-<g>`` keys; the k-th copy of key g in a
    call gets the k-th rollout of group g. The stored reward travels as the extra field
    ``stored_reward`` (read by :func:`stored_reward`), the stored prompt text as ``stored_prompt``.
    """

    def rollout_func(prompts: list, trainer: Any) -> dict[str, Any]:
        seen: dict[int, int] = {}
        chosen: list[Rollout] = []
        for key in prompts:
            if not isinstance(key, str) or not key.startswith(REPLAY_PREFIX):
                raise ValueError(f"replay rollout_func got a prompt that is not a replay key: {key!r}")
            g = int(key[len(REPLAY_PREFIX):])
            k = seen.get(g, 0)
            seen[g] = k + 1
            chosen.append(groups[g][k % len(groups[g])])
        return {
            "prompt_ids": [list(r.prompt_token_ids) for r in chosen],
            "completion_ids": [list(r.completion_token_ids) for r in chosen],
            "logprobs": None,
            "stored_reward": [r.reward for r in chosen],
            "stored_prompt": [r.prompt for r in chosen],
        }

    return rollout_func


def _trl_args(config: PPOConfig, options: GRPOOptions, output_dir: str, max_steps: int, use_cpu: bool,
              bf16: bool) -> Any:
    import sys

    from trl import GRPOConfig

    from signal_al.core.progress import is_terminal

    return GRPOConfig(
        output_dir=output_dir,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_iterations=config.num_ppo_epochs,
        epsilon=config.cliprange,
        beta=config.kl_coef,
        temperature=config.temperature,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        num_generations=options.num_generations,
        max_completion_length=options.max_completion_length,
        scale_rewards=options.scale_rewards,
        loss_type=options.loss_type,
        max_steps=max_steps,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=not is_terminal(sys.stderr),  # Trainer's bar redraws every step; a log gets its metric lines
        use_cpu=use_cpu,
        bf16=bf16,
        disable_dropout=config.disable_dropout,
        gradient_checkpointing=config.gradient_checkpointing,
        shuffle_dataset=True,
        remove_unused_columns=False,
    )


def train_generator_grpo(
    base_model: str | Path,
    out_dir: str | Path,
    config: PPOConfig | None = None,
    options: GRPOOptions | None = None,
    *,
    prompts: Sequence[str] | None = None,
    rl_data: str | Path | Sequence[Rollout] | None = None,
    reward_funcs: Callable | Sequence[Callable] | None = None,
    adapter: str | Path | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """One GRPO update with TRL: online on ``prompts`` with ``reward_funcs``, or replay of ``rl_data``.

    ``callbacks`` are ``transformers.TrainerCallback`` objects handed to the GRPOTrainer.
    """
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from signal_al.assets.registry import resolve_model

    config = config or PPOConfig()
    options = options or GRPOOptions()
    if (prompts is None) == (rl_data is None):
        raise ConfigError("GRPO: give either prompts (online sampling) or rl_data (replay), not both or neither")
    out = Path(out_dir)
    check_output_folder(out, overwrite)
    model_path = resolve_model(str(base_model))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except OSError as exc:
        raise UserError(f"{base_model}: GRPO needs a tokenizer next to the model ({exc})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    use_cpu = not torch.cuda.is_available()
    dtype = torch.float32 if use_cpu else (torch.bfloat16 if config.dtype in ("auto", "bfloat16") else getattr(torch, config.dtype))
    if config.load_in_4bit:
        raise ConfigError("ppo.load_in_4bit: use the PPO trainer for QLoRA; the GRPO option loads full-precision bases")
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if rl_data is not None:
        rollouts = read_rollouts(rl_data) if isinstance(rl_data, (str, Path)) else list(rl_data)
        if not rollouts:
            raise UserError("D_RL has no rollouts")
        check_vocab(rollouts, base.get_input_embeddings().num_embeddings,
                    str(rl_data) if isinstance(rl_data, (str, Path)) else "D_RL")
        groups = replay_groups(rollouts, options.num_generations)
        dataset = Dataset.from_list([{"prompt": f"{REPLAY_PREFIX}{g}"} for g in range(len(groups))])
        rollout_func = replay_rollout_func(groups)
        funcs: list[Callable] = [stored_reward] if reward_funcs is None else list(
            reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs])
        completions_total = len(groups) * options.num_generations
    else:
        if not reward_funcs:
            raise ConfigError("GRPO online mode needs reward_funcs")
        if not prompts:
            raise UserError("GRPO: no prompts")
        dataset = Dataset.from_list([{"prompt": p} for p in prompts])
        rollout_func = None
        funcs = list(reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs])
        completions_total = len(prompts) * options.num_generations
    world = int(os.environ.get("WORLD_SIZE", "1"))
    step_size = config.per_device_train_batch_size * config.gradient_accumulation_steps * world
    max_steps = options.max_steps or max(1, completions_total * config.num_ppo_epochs // step_size)
    peft_config = None
    if adapter is not None:
        try:
            base = PeftModel.from_pretrained(base, str(adapter), is_trainable=True)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:300]
            raise UserError(f"{adapter}: adapter does not fit base model {base_model} ({first})") from None
    else:
        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                                 target_modules=list(config.lora_target_modules), bias="none", task_type="CAUSAL_LM")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.grpo-", dir=out.parent))
    try:
        args = _trl_args(config, options, str(work / "trl"), max_steps, use_cpu, bf16=dtype == torch.bfloat16)
        with warnings.catch_warnings():  # rollout_func is marked experimental in TRL 1.x
            warnings.filterwarnings("ignore", message=".*rollout_func.*experimental")
            trainer = GRPOTrainer(model=base, reward_funcs=funcs, args=args, train_dataset=dataset,
                                  processing_class=tokenizer, peft_config=peft_config, rollout_func=rollout_func,
                                  callbacks=list(callbacks) if callbacks else None)
        trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
        metrics = {
            "trainer": "trl-grpo",
            "mode": "replay" if rl_data is not None else "online",
            "optimizer_steps": trainer.state.global_step,
            "history": history,
            "reward_mean": float(sum(h.get("reward", 0.0) for h in history) / max(len(history), 1)),
            "kl_final": history[-1].get("kl") if history else None,
            "train_runtime": next((h["train_runtime"] for h in trainer.state.log_history if "train_runtime" in h), None),
        }
        if trainer.accelerator.is_main_process:
            model = trainer.accelerator.unwrap_model(trainer.model)
            state = {"kl_coef": config.kl_coef, "base_model": str(base_model),
                     "base_fingerprint": model_fingerprint(model.config), "config": asdict(config),
                     "grpo": asdict(options)}
            save_adapter(out, model, base_model=str(base_model), state=state, metrics=metrics, overwrite=overwrite)
        trainer.accelerator.wait_for_everyone()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return metrics


__all__ = ["REPLAY_PREFIX", "replay_groups", "replay_rollout_func", "stored_reward", "train_generator_grpo"]
