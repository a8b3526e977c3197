"""signal_al.classifier.inference.predict: one pass, sorted dynamic batches, results in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signal_al.classifier.inference import ClassifierOutputs, predict

TEXTS = [
    "great movie",
    "the plot was very slow and the ending was bad",
    "fun",
    "i loved the music but hated the actors",
    "boring film",
    "it is not a good story and not a fun one but the music is great",
    "sad",
]


def one_by_one(model, tokenizer, texts, pairs=None):
    """Reference: each text alone, no padding; pooled output and softmax of the logits."""
    probs, embs = [], []
    with torch.no_grad():
        for i, text in enumerate(texts):
            enc = tokenizer(text, pairs[i] if pairs else None, return_tensors="pt")
            out = model(**enc, output_hidden_states=False)
            pooled = model.bert(**enc).pooler_output
            probs.append(torch.softmax(out.logits, -1)[0].numpy())
            embs.append(pooled[0].numpy())
    return np.array(probs), np.array(embs)


@pytest.mark.parametrize("batch_size", [1, 3, 128])
def test_matches_unbatched_forward_in_input_order(tiny_bert, batch_size):
    model, tokenizer = tiny_bert
    out = predict(model, tokenizer, TEXTS, batch_size=batch_size)
    assert isinstance(out, ClassifierOutputs)
    assert out.probs.dtype == np.float32 and out.embeddings.dtype == np.float32
    assert out.probs.shape == (len(TEXTS), 3) and out.embeddings.shape == (len(TEXTS), 32)
    want_p, want_e = one_by_one(model, tokenizer, TEXTS)
    np.testing.assert_allclose(out.probs, want_p, atol=1e-5)
    np.testing.assert_allclose(out.embeddings, want_e, atol=1e-5)
    np.testing.assert_allclose(out.probs.sum(1), 1.0, atol=1e-6)


def test_text_pairs(tiny_bert):
    model, tokenizer = tiny_bert
    pairs = list(reversed(TEXTS))
    out = predict(model, tokenizer, TEXTS, pairs, batch_size=2)
    want_p, want_e = one_by_one(model, tokenizer, TEXTS, pairs)
    np.testing.assert_allclose(out.probs, want_p, atol=1e-5)
    np.testing.assert_allclose(out.embeddings, want_e, atol=1e-5)
    single = predict(model, tokenizer, TEXTS, batch_size=2)
    assert not np.allclose(out.probs, single.probs)


def test_truncation_and_no_gradients(tiny_bert):
    model, tokenizer = tiny_bert
    model.train()
    out = predict(model, tokenizer, ["the movie was " * 50], max_length=16)
    assert not model.training  # left in eval mode: dropout off
    enc = tokenizer("the movie was " * 50, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        want = model.bert(**enc).pooler_output[0].numpy()
    np.testing.assert_allclose(out.embeddings[0], want, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_empty_input_and_bad_arguments(tiny_bert):
    model, tokenizer = tiny_bert
    out = predict(model, tokenizer, [])
    assert out.probs.shape == (0, 3) and out.embeddings.shape == (0, 32)
    with pytest.raises(ValueError, match="text_pairs"):
        predict(model, tokenizer, ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="texts"):
        predict(model, tokenizer, ["a", None])
    with pytest.raises(ValueError, match="batch_size"):
        predict(model, tokenizer, ["a"], batch_size=0)
    with pytest.raises(ValueError, match="model"):
        predict(torch.nn.Linear(2, 2), tokenizer, ["a"])
