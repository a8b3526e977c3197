"""Shared fixtures: tiny random-weight models with locally built tokenizers (nothing downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402

#: Words the tiny tokenizers know; anything else becomes [UNK].
WORDS = (
    "the a movie film was is great good bad awful boring fun plot actors story ending music "
    "loved hated slow fast funny sad and but not very really it this i write new review example "
    "sentence positive negative news sports tweet product"
).split()


@pytest.fixture(scope="session", autouse=True)
def _annotators_in_a_temp_cache(tmp_path_factory):
    """Tests train throwaway model annotators; they go to a temporary cache instead of the user's
    (``$SIGNAL_AL_CACHE`` or ~/.cache/signal-al), whose corpora, downloads, models and vLLM server
    environments are linked in so that nothing is fetched, unpacked or built twice. Subprocesses
    inherit it through the environment."""
    from signal_al.assets.registry import CACHE_ENV, cache_dir

    shared = cache_dir(None)
    cache = tmp_path_factory.mktemp("signal-al-cache")
    for name in ("corpora", "downloads", "models", "venvs"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        (cache / name).symlink_to(shared / name, target_is_directory=True)
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(cache)
    yield cache
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """(model, tokenizer): a 2-layer, hidden-32 BertForSequenceClassification with 3 labels."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_causal_lm():
    """(model, tokenizer): a 2-layer, hidden-32 Qwen2ForCausalLM with a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<pad>", "<unk>", "<eos>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS, ".", ":"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>"
    )
    config = Qwen2Config(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
        tie_word_embeddings=True, pad_token_id=vocab["<pad>"], eos_token_id=vocab["<eos>"],
        bos_token_id=None,
    )
    torch.manual_seed(0)
    return Qwen2ForCausalLM(config), tokenizer


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory):
    """A 2-layer random BERT with MiniLM's real vocabulary, saved as a model folder."""
    import torch
    from helpers import ready_asset
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_classifier")
    tokenizer = BertTokenizerFast.from_pretrained(ready_asset("minilm-l6"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_generator_dir(tmp_path_factory: pytest.TempPathFactory, tiny_causal_lm):
    """The tiny causal LM saved as a model folder (what backends and PPO load by path)."""
    model, tokenizer = tiny_causal_lm
    folder = tmp_path_factory.mktemp("tiny_generator")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
