"""PPO + LoRA generator update on stored rollouts: code paths on a tiny random-weight Qwen2 (CPU)."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import one_torch_thread  # (also sets HF_HUB_OFFLINE before transformers is imported)
from signal_al.core.errors import ConfigError, DataError, UserError
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.ppo_trainer import (PPOTrainer, gae, kl_penalty, masked_whiten, train_generator,
                                            truncate_after_eos)
from signal_al.trainers.rollouts import Rollout, read_rollouts, write_rollouts

EOS = 2
VOCAB = 128


def make_tiny_qwen2(folder: Path, hidden: int = 32, vocab: int = VOCAB, seed: int = 0) -> Path:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=EOS, pad_token_id=0, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=EOS, pad_token_id=0)
    model.save_pretrained(folder)
    return folder


def make_rollouts(n: int = 16, seed: int = 0, junk_after_eos: bool = False) -> list[Rollout]:
    """Prompts of random tokens; odd rows end in token 7 and get +1, even rows end in 9 and get -1."""
    rng, junk = random.Random(seed), random.Random(seed + 1000)
    rollouts = []
    for i in range(n):
        prompt = [1] + [rng.randrange(3, VOCAB) for _ in range(rng.randrange(3, 10))]
        body = [rng.randrange(10, VOCAB) for _ in range(rng.randrange(1, 6))] + [7 if i % 2 else 9]
        completion = body + [EOS]
        if junk_after_eos:
            completion += [junk.randrange(3, VOCAB) for _ in range(junk.randrange(1, 8))]
        rollouts.append(Rollout(prompt_token_ids=prompt, completion_token_ids=completion,
                                reward=1.0 if i % 2 else -1.0, prompt=f"prompt {i}", line=i + 1))
    return rollouts


one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "qwen2")


FAST = PPOConfig(learning_rate=1e-3, per_device_train_batch_size=4, num_mini_batches=2, num_ppo_epochs=2)


# --- D_RL file --------------------------------------------------------------------------------------


def test_rollouts_round_trip(tmp_path):
    path = write_rollouts(tmp_path / "d_rl.jsonl", make_rollouts(4))
    back = read_rollouts(path)
    assert [r.completion_token_ids for r in back] == [r.completion_token_ids for r in make_rollouts(4)]
    assert [r.line for r in back] == [1, 2, 3, 4]
    record = json.loads(path.read_text().splitlines()[0])
    assert set(record) >= {"prompt", "prompt_token_ids", "completion", "completion_token_ids", "reward"}


@pytest.mark.parametrize("content, message", [
    ("", "has no rollouts"),
    ("\n\n", "has no rollouts"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": NaN}\n', ":1: reward is nan"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": 1}\n'
     '{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": Infinity}\n', ":2: reward is inf"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": null}\n', "'reward' must be a number"),
    ('{"prompt_token_ids": [1], "reward": 1.0}\n', "missing key(s) completion_token_ids"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [], "reward": 1.0}\n', "'completion_token_ids' is empty"),
    ('{"prompt_token_ids": [1, "a"], "completion_token_ids": [2], "reward": 1.0}\n', "list of integer token ids"),
    ("not json\n", ":1: invalid JSON"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2, 3], "reward": 1.0, "logprobs": [-0.1]}\n',
     "'logprobs' has 1 values for 2 completion tokens"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": 1.0, "logprobs": [0.5]}\n',
     "not a log-probability"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": 1.0, "logprobs": [NaN]}\n',
     "not a log-probability"),
    ('{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": 1.0, "logprobs": "x"}\n',
     "'logprobs' must be a list of numbers"),
])
def test_bad_rl_data_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "d_rl.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=None) as info:
        read_rollouts(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_served_logprobs_round_trip(tmp_path):
    rollouts = make_rollouts(3)
    rollouts[1].logprobs = [-0.25] * len(rollouts[1].completion_token_ids)
    back = read_rollouts(write_rollouts(tmp_path / "d_rl.jsonl", rollouts))
    assert [r.logprobs for r in back] == [None, rollouts[1].logprobs, None]


def test_missing_rl_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_rollouts(tmp_path / "nope.jsonl")


# --- pieces -----------------------------------------------------------------------------------------


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.2, 0.1, 0.0]])  # last position is padding (value 0, reward 0)
    adv = gae(rewards, values, gamma=0.9, lam=0.8)
    d2 = 1.0 - 0.1
    d1 = 0.0 + 0.9 * 0.1 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2, a1 = d2, d1 + 0.72 * d2
    assert torch.allclose(adv[0, :3], torch.tensor([d0 + 0.72 * a1, a1, a2]))
    assert adv[0, 3] == 0


def test_whiten_kl_and_eos_helpers():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = masked_whiten(x, mask)
    assert abs(float((w * mask).sum())) < 1e-5
    logp, ref = torch.randn(3, 5), torch.randn(3, 5)
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    assert torch.equal(kl_penalty(logp, ref, "k1"), logp - ref)
    assert truncate_after_eos([5, 6, 2, 8, 2], {2}) == [5, 6, 2]
    assert truncate_after_eos([5, 6], {2}) == [5, 6]


def test_config_rejects_ranks_vllm_cannot_serve_and_configs_still_load():
    with pytest.raises(ConfigError, match="ppo.lora_r"):
        PPOConfig(lora_r=7)
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config

    for path in sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml")):
        load_config(ExperimentConfig, path)


# --- training, saving, loading ----------------------------------------------------------------------


def test_update_writes_a_plain_lora_adapter_that_peft_loads(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    metrics = train_generator(tiny, make_rollouts(16), out, FAST)
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "value_head.safetensors", "ppo_state.json",
            "metrics.json", "optimizer.pt"} <= files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["use_dora"] is False and adapter_config["bias"] == "none"
    assert not adapter_config["modules_to_save"] and adapter_config["r"] in (1, 8, 16, 32, 64)
    assert adapter_config["base_model_name_or_path"] == str(tiny)
    for key in ("reward_mean", "reward_std", "kl_served_k3", "policy_loss", "value_loss", "clipfrac", "vf_clipfrac",
                "entropy", "approx_kl", "tokens_per_second"):
        assert math.isfinite(metrics[key]), key
    assert metrics["optimizer_steps"] == 2 * 2 * 2  # 2 rollout batches x 2 epochs x 2 minibatches
    assert json.loads((out / "metrics.json").read_text())["optimizer_steps"] == 8

    base = AutoModelForCausalLM.from_pretrained(tiny)
    model = PeftModel.from_pretrained(base, str(out))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # the update moved the adapter

    # a second round continues from the adapter: the reference is the adapter-disabled base
    again = train_generator(tiny, make_rollouts(16, seed=1), tmp_path / "round2", FAST, adapter=out)
    assert again["kl_start"] != 0.0
    with pytest.raises(UserError, match="exists and is not empty"):
        train_generator(tiny, make_rollouts(4), out, FAST)


def test_padding_and_tokens_after_eos_never_reach_the_losses(tiny):
    """Unpadded micro-batches of one clean rollout == padded batches with junk after EOS."""
    config = replace(FAST, num_mini_batches=2, num_ppo_epochs=2)
    unpadded = PPOTrainer(tiny, replace(config, per_device_train_batch_size=1, gradient_accumulation_steps=4))
    m1 = unpadded.train(make_rollouts(16))
    padded = PPOTrainer(tiny, config)
    m2 = padded.train(make_rollouts(16, junk_after_eos=True))
    assert m1["completion_tokens"] == m2["completion_tokens"]
    l1 = [h["loss"] for h in m1["history"]]
    l2 = [h["loss"] for h in m2["history"]]
    assert len(l1) == len(l2) == 8
    assert l1 == pytest.approx(l2, abs=1e-5)
    p1 = dict(unpadded.model.named_parameters())
    for name, p in padded.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, p1[name], atol=1e-5, rtol=1e-4)


def test_large_beta_keeps_the_policy_near_the_reference(tiny):
    """The penalty acts from the second rollout batch on (a fresh adapter *is* the reference at first)."""
    config = replace(FAST, learning_rate=3e-3, per_device_train_batch_size=2, num_mini_batches=1, num_ppo_epochs=2)
    free = kl_after_training(tiny, replace(config, kl_coef=0.0))
    held = kl_after_training(tiny, replace(config, kl_coef=100.0))
    assert free > 3 * held
    assert held < 0.03


def kl_after_training(model: Path, config: PPOConfig) -> float:
    """Mean k3 distance of the trained policy from the base on the training sequences."""
    trainer = PPOTrainer(model, config)
    rollouts = make_rollouts(16)
    trainer.train(rollouts)
    kl = trainer.policy_kl([r.prompt_token_ids for r in rollouts], [r.completion_token_ids for r in rollouts])
    return sum(kl) / len(kl)


def test_adaptive_beta_moves_and_is_saved(tiny, tmp_path):
    config = replace(FAST, adaptive_kl=True, target_kl=1e-6, kl_horizon=10, kl_coef=0.1)
    out = tmp_path / "a"
    metrics = train_generator(tiny, make_rollouts(16), out, config)
    assert metrics["kl_coef_next"] != pytest.approx(0.1)
    state = json.loads((out / "ppo_state.json").read_text())
    assert state["kl_coef"] == pytest.approx(metrics["kl_coef_next"])
    again = train_generator(tiny, make_rollouts(8), tmp_path / "b", config, adapter=out)
    assert again["kl_coef"] == pytest.approx(state["kl_coef"])


# --- bad input: clear errors, nothing written ------------------------------------------------------


def _assert_nothing_written(folder: Path) -> None:
    assert not folder.exists() or not any(folder.iterdir())
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}")]


def test_empty_rl_data(tiny, tmp_path):
    path = tmp_path / "d_rl.jsonl"
    path.write_text("")
    with pytest.raises(UserError, match="no rollouts"):
        train_generator(tiny, path, tmp_path / "out", FAST)
    _assert_nothing_written(tmp_path / "out")


def test_nan_reward_names_the_line(tiny, tmp_path):
    path = write_rollouts(tmp_path / "d_rl.jsonl", make_rollouts(3))
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["reward"] = float("nan")
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"d_rl.jsonl:2: reward is nan"):
        train_generator(tiny, path, tmp_path / "out", FAST)
    _assert_nothing_written(tmp_path / "out")


def test_token_ids_outside_the_vocabulary(tiny, tmp_path):
    rollouts = make_rollouts(4)
    rollouts[2].completion_token_ids = [5, VOCAB + 10, EOS]
    path = write_rollouts(tmp_path / "d_rl.jsonl", rollouts)
    with pytest.raises(UserError, match=r"d_rl.jsonl:3: 'completion_token_ids' has token id 138 outside"):
        train_generator(tiny, path, tmp_path / "out", FAST)
    _assert_nothing_written(tmp_path / "out")


def test_adapter_from_another_base_model(tiny, tmp_path):
    other = make_tiny_qwen2(tmp_path / "other", hidden=48)
    adapter = tmp_path / "adapter"
    train_generator(other, make_rollouts(4), adapter, replace(FAST, num_ppo_epochs=1))
    with pytest.raises(UserError, match="another base model"):
        train_generator(tiny, make_rollouts(4), tmp_path / "out", FAST, adapter=adapter)
    _assert_nothing_written(tmp_path / "out")
    # without our state file, peft's own shape check is turned into the same kind of error
    (adapter / "ppo_state.json").unlink()
    with pytest.raises(UserError, match="does not fit base model"):
        train_generator(tiny, make_rollouts(4), tmp_path / "out", FAST, adapter=adapter)
    _assert_nothing_written(tmp_path / "out")
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        train_generator(tiny, make_rollouts(4), tmp_path / "out", FAST, adapter=tmp_path)


# --- CLI --------------------------------------------------------------------------------------------


def test_cli_train_generator(tiny, tmp_path, capsys):
    from signal_al.cli import main

    data = write_rollouts(tmp_path / "d_rl.jsonl", make_rollouts(8))
    config = tmp_path / "exp.yaml"
    config.write_text(f"generator:\n  model: {tiny}\nppo:\n  num_ppo_epochs: 1\n  per_device_train_batch_size: 4\n")
    out = tmp_path / "adapter"
    assert main(["train-generator", "--config", str(config), "--rl-data", str(data), "--out", str(out)]) == 0
    assert (out / "adapter_model.safetensors").is_file()
    assert "adapter written to" in capsys.readouterr().out

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_token_ids": [1], "completion_token_ids": [5], "reward": NaN}\n')
    assert main(["train-generator", "--config", str(config), "--rl-data", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl:1: reward is nan" in err
    assert main(["train-generator", "--config", str(config), "--rl-data", str(data), "--out", str(tmp_path / "y"),
                 "--set", "ppo.lora_r=3"]) == 2
    assert "ppo.lora_r" in capsys.readouterr().err


# --- group advantages and the shared prompt forward -------------------------------------------------


def grouped_rollouts(prompt_lengths=(1, 4, 9, 12), size: int = 3, seed: int = 0) -> list[Rollout]:
    """Groups of ``size`` rollouts sharing a prompt; completions ending in 7 get +1, in 9 get -1."""
    rng = random.Random(seed)
    rollouts = []
    for g, length in enumerate(prompt_lengths):
        prompt = [1] + [rng.randrange(3, VOCAB) for _ in range(length - 1)]
        for k in range(size):
            good = (g + k) % 2 == 1
            body = [rng.randrange(10, VOCAB) for _ in range(rng.randrange(1, 6))]
            rollouts.append(Rollout(prompt_token_ids=prompt, completion_token_ids=body + [7 if good else 9, EOS],
                                    reward=1.0 if good else -1.0, line=len(rollouts) + 1))
    return rollouts


@pytest.fixture(scope="module")
def random_adapter(tiny, tmp_path_factory) -> Path:
    """A LoRA on q/v with random A and B: the prompt's keys/values depend on trainable weights."""
    from helpers import random_lora

    return random_lora(tiny, tmp_path_factory.mktemp("lora") / "adapter")


def _lora_grads(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None and "lora" in n}
    trainer.model.zero_grad()
    return grads


@pytest.mark.parametrize("reference", [False, True])
def test_shared_prompt_forward_matches_full_sequences(tiny, random_adapter, reference):
    trainer = PPOTrainer(tiny, FAST, adapter=random_adapter)
    rollouts = grouped_rollouts()
    trainer._prepare_rollouts(rollouts, "test")
    indices = list(range(len(rollouts)))
    full, shared = trainer._collate(indices, shared=False), trainer._collate(indices, shared=True)
    assert shared["prefix_ids"].shape[0] == 4  # one prefix row per distinct prompt
    mask = full["mask"]
    assert torch.equal(mask, shared["mask"])
    context = trainer.model.policy.disable_adapter() if reference else torch.enable_grad()
    outputs = []
    with context:
        for batch in (full, shared):
            out = trainer._run(batch, with_entropy=True)
            if not reference:  # with the adapter disabled nothing trainable is in the log-probs
                (out["logprobs"] * mask).sum().backward()
            outputs.append((out, _lora_grads(trainer)))
    (out_f, grads_f), (out_s, grads_s) = outputs
    for key in ("logprobs", "values", "entropy"):
        torch.testing.assert_close(out_s[key] * mask, out_f[key] * mask, atol=2e-5, rtol=1e-4)
    if not reference:  # gradients reach the LoRA weights through the cached prompt keys/values
        assert any("v_proj" in n for n in grads_f) and grads_f.keys() == grads_s.keys()
        for name, grad in grads_f.items():
            torch.testing.assert_close(grads_s[name], grad, atol=2e-5, rtol=1e-4)


def test_one_token_prompts_need_no_prefix(tiny):
    trainer = PPOTrainer(tiny, FAST)
    rollouts = grouped_rollouts(prompt_lengths=(1, 1), size=2)
    trainer._prepare_rollouts(rollouts, "test")
    shared = trainer._collate([0, 1, 2, 3], shared=True)
    assert "prefix_ids" not in shared
    full = trainer._collate([0, 1, 2, 3], shared=False)
    with torch.no_grad():
        a, b = trainer._run(full, with_entropy=False), trainer._run(shared, with_entropy=False)
    torch.testing.assert_close(a["logprobs"] * full["mask"], b["logprobs"] * full["mask"], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("advantage", ["gae", "grpo"])
def test_shared_and_full_forwards_give_the_same_update(tiny, advantage):
    config = replace(FAST, advantage=advantage, per_device_train_batch_size=3, num_mini_batches=2)
    runs = []
    for share in (True, False):
        trainer = PPOTrainer(tiny, replace(config, share_prompt_forward=share))
        runs.append((trainer, trainer.train(grouped_rollouts())))
    (t1, m1), (t2, m2) = runs
    assert [h["loss"] for h in m1["history"]] == pytest.approx([h["loss"] for h in m2["history"]], abs=1e-5)
    sequences = ([r.prompt_token_ids for r in grouped_rollouts()], [r.completion_token_ids for r in grouped_rollouts()])
    assert t1.policy_kl(*sequences) == pytest.approx(t2.policy_kl(*sequences), abs=1e-5)
    p2 = dict(t2.model.named_parameters())
    for name, p in t1.model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, p2[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("advantage", ["rloo", "grpo"])
def test_group_advantages_train_without_a_value_head(tiny, tmp_path, advantage):
    config = replace(FAST, advantage=advantage, per_device_train_batch_size=3)
    out = tmp_path / "adapter"
    metrics = train_generator(tiny, grouped_rollouts(), out, config)
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "ppo_state.json", "metrics.json"} <= files
    assert "value_head.safetensors" not in files
    assert metrics["value_loss"] == 0.0 and metrics["vf_clipfrac"] == 0.0
    assert metrics["num_groups"] == 4 and metrics["advantage"] == advantage
    for key in ("kl_served_k3", "kl_start", "kl_coef", "policy_loss", "clipfrac", "approx_kl", "tokens_per_second"):
        assert math.isfinite(metrics[key]), key
    # the next round may switch estimators: gae starts a fresh value head next to an adapter without one
    gae_round = train_generator(tiny, grouped_rollouts(seed=1), tmp_path / "gae", FAST, adapter=out)
    assert (tmp_path / "gae" / "value_head.safetensors").is_file() and gae_round["kl_start"] != 0.0
    again = train_generator(tiny, grouped_rollouts(seed=2), tmp_path / "again", config, adapter=tmp_path / "gae")
    assert again["kl_start"] != 0.0 and not (tmp_path / "again" / "value_head.safetensors").exists()


@pytest.mark.parametrize("advantage", ["rloo", "grpo"])
def test_group_advantages_raise_rewarded_completions(tiny, advantage):
    """Within each group, +1 completions gain log-probability relative to -1 completions."""
    config = replace(FAST, advantage=advantage, learning_rate=3e-3, per_device_train_batch_size=6,
                     num_mini_batches=1, num_ppo_epochs=4, kl_coef=0.01)
    rollouts = grouped_rollouts(prompt_lengths=(3, 5, 7, 9), size=4)
    trainer = PPOTrainer(tiny, config)
    trainer._prepare_rollouts(rollouts, "test")
    order = list(range(len(rollouts)))
    width = max(len(r.completion_token_ids) for r in rollouts)
    good = torch.tensor([r.reward > 0 for r in rollouts])

    def margin() -> float:
        sums = trainer._forward_all(order, width, reference=False)["logprobs"].sum(1)
        return float(sums[good].mean() - sums[~good].mean())

    before = margin()
    trainer.train(rollouts)
    assert margin() > before + 0.5


def test_group_ids_from_the_file_override_the_prompt(tiny, tmp_path):
    rollouts = grouped_rollouts(prompt_lengths=(4,), size=4)
    for k, r in enumerate(rollouts):
        r.group = ["q", k % 2]  # two groups on one prompt
    back = read_rollouts(write_rollouts(tmp_path / "d_rl.jsonl", rollouts))
    assert [r.group for r in back] == [("q", 0), ("q", 1)] * 2
    trainer = PPOTrainer(tiny, replace(FAST, advantage="rloo"))
    trainer._prepare_rollouts(back, "test")
    assert trainer._groups.tolist() == [0, 1, 0, 1]
    assert "group" not in make_rollouts(1)[0].to_json()  # absent when unset
    with pytest.raises(DataError, match="'group' must be"):
        read_rollouts(_one_line(tmp_path, '{"prompt_token_ids": [1], "completion_token_ids": [2], "reward": 1, '
                                          '"group": {"a": 1}}'))


def _one_line(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text(line + "\n")
    return path


# --- one optimizer for the generator's life -----------------------------------------------------------


def _trainable(trainer: PPOTrainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("advantage", ["gae", "rloo"])
def test_two_updates_through_saved_optimizer_state_equal_one_run_of_both(tiny, tmp_path, advantage):
    """An update restarted from the saved adapter + optimizer.pt continues the same AdamW exactly;
    a fresh AdamW (the old behaviour) lands elsewhere, so the comparison has power."""
    config = replace(FAST, advantage=advantage, per_device_train_batch_size=3, num_mini_batches=2)
    first, second = grouped_rollouts(seed=0), grouped_rollouts(seed=1)

    one = PPOTrainer(tiny, config)
    one.train(first)  # ppo.seed: the LoRA initialisation and this update's minibatch order
    m_one = one.train(second, seed=12)
    continuous = _trainable(one)

    train_generator(tiny, first, tmp_path / "round1", config)
    assert (tmp_path / "round1" / "optimizer.pt").is_file()
    restarted = PPOTrainer(tiny, config, adapter=tmp_path / "round1")
    assert restarted.optimizer_restored
    m_two = restarted.train(second, seed=12)
    resumed = _trainable(restarted)
    assert set(resumed) == set(continuous)
    for name, value in continuous.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=1e-5, msg=name)
    assert m_two["optimizer_steps_total"] == m_one["optimizer_steps_total"] == 2 * m_one["optimizer_steps"]

    fresh = PPOTrainer(tiny, replace(config, reset_optimizer=True), adapter=tmp_path / "round1")
    assert not fresh.optimizer_restored
    fresh.train(second, seed=12)
    moved = _trainable(fresh)
    lora = [n for n in continuous if "lora_B" in n]
    gap = max(float((moved[n] - continuous[n]).abs().max()) for n in lora)
    step = max(float((continuous[n] - _trainable(restarted)[n]).abs().max()) for n in lora)
    assert gap > 1e-4 and step == 0.0  # a fresh AdamW moves the weights somewhere else


def test_optimizer_state_keeps_its_steps_and_takes_the_new_learning_rate(tiny, tmp_path):
    train_generator(tiny, make_rollouts(8), tmp_path / "a", FAST)
    saved = torch.load(tmp_path / "a" / "optimizer.pt", weights_only=True)
    names = {n for n, p in PPOTrainer(tiny, FAST).model.named_parameters() if p.requires_grad}
    assert set(saved["state"]) == names  # keyed by parameter name, every trainable tensor
    steps = {int(v["step"]) for v in saved["state"].values()}
    assert steps == {FAST.num_ppo_epochs * FAST.num_mini_batches}  # 8 rollouts = one rollout batch of 4 x 2
    later = PPOTrainer(tiny, replace(FAST, learning_rate=5e-4), adapter=tmp_path / "a")
    assert {g["lr"] for g in later.optimizer.param_groups} == {5e-4}
    assert later.optimizer_steps_total() == 4


def test_broken_optimizer_state_is_a_clear_error(tiny, tmp_path):
    train_generator(tiny, make_rollouts(8), tmp_path / "a", FAST)
    (tmp_path / "a" / "optimizer.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="optimizer.pt: cannot read the saved optimizer state"):
        PPOTrainer(tiny, FAST, adapter=tmp_path / "a")


# --- served = trained ---------------------------------------------------------------------------------


def _reference_logprobs(model_dir: Path, rollouts: list[Rollout]) -> list[list[float]]:
    """Completion-token log-probs from a plain transformers forward (float64 log-softmax)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for r in rollouts:
            ids = torch.tensor([r.prompt_token_ids + r.completion_token_ids])
            logits = model(ids).logits[0, len(r.prompt_token_ids) - 1:-1].double()
            lp = torch.log_softmax(logits, -1).gather(1, torch.tensor(r.completion_token_ids)[:, None])[:, 0]
            out.append(lp.tolist())
    return out


def test_served_logprobs_equal_to_the_trainers_give_weight_one_and_the_same_update(tiny):
    rollouts = grouped_rollouts()
    served = _reference_logprobs(tiny, rollouts)
    with_served = [replace(r, logprobs=lp) for r, lp in zip(rollouts, served)]
    config = replace(FAST, advantage="rloo", per_device_train_batch_size=6)  # one rollout batch: old = start
    plain, checked = PPOTrainer(tiny, config), PPOTrainer(tiny, config)
    m_plain, m_checked = plain.train(rollouts), checked.train(with_served)
    assert m_checked["served_logprob_mae"] < 1e-5 and m_checked["served_tokens"] == sum(map(len, served))
    assert m_checked["is_weight_mean"] == pytest.approx(1.0, abs=1e-4) and m_checked["is_truncated_frac"] == 0.0
    assert "served_logprob_mae" not in m_plain and m_plain["is_weight_mean"] is None
    a, b = _trainable(plain), _trainable(checked)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)


def test_off_policy_served_logprobs_are_measured_and_truncated(tiny):
    """served = trainer - 0.5 per token: weight e^0.5 (under the cap); - 2: e^2 truncated to the cap 3."""
    rollouts = grouped_rollouts()
    served = _reference_logprobs(tiny, rollouts)
    config = replace(FAST, advantage="rloo", per_device_train_batch_size=12, num_mini_batches=1, num_ppo_epochs=1)
    for shift, weight, truncated in ((0.5, math.exp(0.5), 0.0), (2.0, 3.0, 1.0)):
        shifted = [replace(r, logprobs=[x - shift for x in lp]) for r, lp in zip(rollouts, served)]
        metrics = PPOTrainer(tiny, config).train(shifted)
        assert metrics["served_logprob_mae"] == pytest.approx(shift, abs=1e-4)
        assert metrics["is_weight_mean"] == pytest.approx(weight, rel=1e-4)
        assert metrics["is_truncated_frac"] == truncated
    # one epoch, one minibatch, ratio 1: the weighted policy loss is the plain one times the weight
    base = PPOTrainer(tiny, config).train(rollouts)["history"][0]["policy_loss"]
    half = PPOTrainer(tiny, config).train([replace(r, logprobs=[x - 0.5 for x in lp])
                                           for r, lp in zip(rollouts, served)])["history"][0]["policy_loss"]
    assert half == pytest.approx(base * math.exp(0.5), rel=1e-3, abs=1e-7)
