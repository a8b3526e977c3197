"""The TRL-native option: trl.GRPOTrainer with a LoRA adapter, online or replaying stored rollouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import one_torch_thread, tiny_qwen2_with_smollm2_tokenizer
from signal_al.core.errors import UserError
from signal_al.trainers.grpo_config import GRPOOptions
from signal_al.trainers.grpo_trainer import replay_groups, replay_rollout_func, stored_reward, train_generator_grpo
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.rollouts import Rollout, write_rollouts

one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def tiny_with_tokenizer(tmp_path_factory) -> Path:
    """A 2-layer random Qwen2 sharing the SmolLM2 tokenizer (GRPO decodes completions for rewards)."""
    model, tokenizer = tiny_qwen2_with_smollm2_tokenizer()
    folder = tmp_path_factory.mktemp("tiny-tok") / "qwen2"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _rollouts(folder: Path, n: int = 16) -> list[Rollout]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    rollouts = []
    for i in range(n):
        prompt = f"Write example {i // 4}:"
        text = " good" * (1 + i % 3) if i % 2 else " bad" * (1 + i % 3)
        rollouts.append(Rollout(prompt=prompt, prompt_token_ids=tokenizer(prompt)["input_ids"], completion=text,
                                completion_token_ids=tokenizer(text)["input_ids"] + [tokenizer.eos_token_id],
                                reward=1.0 if i % 2 else -1.0, line=i + 1))
    return rollouts


def _check_adapter(out: Path, base: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = json.loads((out / "adapter_config.json").read_text())
    assert config["use_dora"] is False and config["bias"] == "none" and not config["modules_to_save"]
    assert config["r"] in (1, 8, 16, 32, 64)
    assert (out / "metrics.json").is_file() and (out / "ppo_state.json").is_file()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(out))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_stored_reward_and_replay_groups():
    assert stored_reward(["k"], ["x"], stored_reward=[0.25]) == [0.25]
    rollouts = [Rollout([1, i % 2], [5], float(i), line=i) for i in range(7)]
    groups = replay_groups(rollouts, 3)
    assert [[r.line for r in g] for g in groups] == [[0, 2, 4], [6, 1, 3]]  # same prompt together, 1 dropped
    func = replay_rollout_func(groups)
    out = func(["replay-group-1", "replay-group-1", "replay-group-0"], None)
    assert out["stored_reward"] == [6.0, 1.0, 0.0] and out["logprobs"] is None
    with pytest.raises(UserError, match="fewer than"):
        replay_groups(rollouts[:2], 3)


@pytest.mark.slow
def test_grpo_replay_of_stored_rollouts(tiny_with_tokenizer, tmp_path):
    data = write_rollouts(tmp_path / "d_rl.jsonl", _rollouts(tiny_with_tokenizer))
    out = tmp_path / "adapter"
    config = PPOConfig(learning_rate=1e-3, per_device_train_batch_size=8, num_ppo_epochs=1)
    metrics = train_generator_grpo(tiny_with_tokenizer, out, config, GRPOOptions(num_generations=4), rl_data=data)
    assert metrics["mode"] == "replay" and metrics["optimizer_steps"] == 2
    assert metrics["history"][0]["reward_std"] > 0  # the stored rewards reached GRPO
    _check_adapter(out, tiny_with_tokenizer)


@pytest.mark.slow
def test_grpo_online_with_a_trl_reward_function(tiny_with_tokenizer, tmp_path):
    def shorter_is_better(prompts, completions, **kwargs):
        return [-float(len(c)) for c in completions]

    out = tmp_path / "adapter"
    config = PPOConfig(learning_rate=1e-3, per_device_train_batch_size=4, num_ppo_epochs=1)
    metrics = train_generator_grpo(tiny_with_tokenizer, out, config,
                                   GRPOOptions(num_generations=4, max_completion_length=8),
                                   prompts=["Write a review:", "Write a tweet:"], reward_funcs=shorter_is_better)
    assert metrics["mode"] == "online" and metrics["optimizer_steps"] == 2
    _check_adapter(out, tiny_with_tokenizer)
    # the next round continues from this adapter, scored by the SIGnAL reward adapter (stub scorer)
    from signal_al.rewards import get_signal_reward

    signal_reward = get_signal_reward(lambda texts: [len(t) / 10 for t in texts])
    metrics = train_generator_grpo(tiny_with_tokenizer, tmp_path / "round2", config,
                                   GRPOOptions(num_generations=4, max_completion_length=8),
                                   prompts=["Write a review:"], reward_funcs=signal_reward, adapter=out)
    assert metrics["optimizer_steps"] == 1
    _check_adapter(tmp_path / "round2", tiny_with_tokenizer)
