"""Learning signal on the real offline generator (SmolLM2-135M-Instruct, CPU)."""

from __future__ import annotations


import pytest
import torch

from helpers import ready_asset
from signal_al.trainers.ppo_config import PPOConfig
from signal_al.trainers.ppo_trainer import train_generator
from signal_al.trainers.rollouts import Rollout

PRAISE = ["I loved this movie, it was wonderful.", "A delightful film with a great cast.",
          "Beautiful, moving and funny.", "One of the best films of the year.",
          "The acting is superb and the story is charming.", "A joyful, brilliant ride."]
SCORN = ["I hated this movie, it was awful.", "A boring film with a terrible cast.",
         "Ugly, dull and painfully slow.", "One of the worst films of the year.",
         "The acting is wooden and the story is a mess.", "A tedious, dreadful slog."]


def _rollouts(tokenizer) -> list[Rollout]:
    rollouts = []
    for i, (good, bad) in enumerate(zip(PRAISE, SCORN)):
        prompt = f"Movie review #{i}:"  # short raw prompts keep the CPU update fast
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for text, reward in ((good, 1.0), (bad, -1.0)):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            rollouts.append(Rollout(prompt_token_ids=prompt_ids, completion_token_ids=ids, reward=reward,
                                    prompt=prompt, completion=text, line=len(rollouts) + 1))
    return rollouts


@torch.no_grad()
def _mean_logprob(model, rollouts: list[Rollout]) -> float:
    values = []
    for r in rollouts:
        ids = torch.tensor([r.prompt_token_ids + r.completion_token_ids])
        logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
        start = len(r.prompt_token_ids) - 1
        targets = ids[0, start + 1:]
        values.append(logprobs[start:].gather(-1, targets[:, None]).mean().item())
    return sum(values) / len(values)


@pytest.fixture
def one_thread():
    """Other jobs share the 2 cores: one intra-op thread is much faster than two fighting ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("advantage", ["gae", "rloo", "grpo"])
def test_rewarded_responses_gain_and_penalised_lose_log_probability(tmp_path, one_thread, advantage):
    """Each prompt has a praised (+1) and a scorned (-1) response: a group of two for rloo/grpo."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ready_asset("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rollouts = _rollouts(tokenizer)
    config = PPOConfig(learning_rate=2e-4, per_device_train_batch_size=4, num_mini_batches=3, num_ppo_epochs=2,
                       kl_coef=0.05, lora_r=8, lora_alpha=16, advantage=advantage)
    out = tmp_path / "adapter"
    metrics = train_generator(folder, rollouts, out, config, cpu=True)
    assert metrics["optimizer_steps"] == 6

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    good = [r for r in rollouts if r.reward > 0]
    bad = [r for r in rollouts if r.reward < 0]
    before = _mean_logprob(base, good), _mean_logprob(base, bad)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    after = _mean_logprob(model, good), _mean_logprob(model, bad)
    assert after[0] > before[0], (before, after)
    assert after[1] < before[1], (before, after)
