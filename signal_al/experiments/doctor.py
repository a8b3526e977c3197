"""End-to-end checks of the offline models: does the generator write, does the classifier train?

``signal-al assets verify`` runs these on the real corpus so a user knows the set-up works
before launching a long job; the tests run the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from signal_al.data.task import TaskSpec, TextDataset
from signal_al.generation.prompts import apply_chat_template, build_prompt, sample_examples


@dataclass
class GenerationCheck:
    prompt: str
    completion: str
    new_tokens: int
    seconds: float


def check_generator(
    model_dir: str, spec: TaskSpec, pool_texts: Sequence[str], *, num_prompts: int = 2, num_in_context: int = 3,
    max_new_tokens: int = 40, seed: int = 0,
) -> list[GenerationCheck]:
    """Generate one new example for each of ``num_prompts`` in-context prompts (sampling, seeded)."""
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    results = []
    for _ in range(num_prompts):
        prompt = build_prompt(spec, sample_examples(pool_texts, num_in_context, rng))
        inputs = tokenizer(apply_chat_template(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        start = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8,
                                    top_p=0.95, pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        results.append(GenerationCheck(prompt, tokenizer.decode(new_tokens, skip_special_tokens=True).strip(),
                                       int(new_tokens.numel()), time.perf_counter() - start))
    return results


@dataclass
class ClassifierCheck:
    loss_before: float
    loss_after: float
    grad_norm: float
    probs_shape: tuple[int, ...]


def check_classifier(
    model_dir: str, data: TextDataset, num_labels: int, *, steps: int = 3, lr: float = 5e-5, seed: int = 0
) -> ClassifierCheck:
    """A few forward/backward steps of sequence classification on one batch; the loss should drop."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=num_labels)
    batch = tokenizer(data.texts, data.text_pairs, padding=True, truncation=True, max_length=64, return_tensors="pt")
    labels = torch.as_tensor(data.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses, grad_norm = [], 0.0
    for _ in range(steps + 1):
        output = model(**batch, labels=labels)
        losses.append(output.loss.item())
        optimizer.zero_grad()
        output.loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9))
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        probs = model(**batch).logits.softmax(-1)
    return ClassifierCheck(losses[0], losses[-1], grad_norm, tuple(probs.shape))
