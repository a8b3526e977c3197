"""Is a model folder whole? Checked before anything loads it, and before a run writes its folder.

A truncated weights file or a half-copied folder otherwise fails deep inside transformers (or
loads as garbage) after a run has written its first state. These checks read only headers and
small JSON files: a safetensors file's length must be what its header says (8 + header + the
largest tensor end), ``config.json`` and the tokenizer's JSON files must parse, and a sharded
checkpoint's index must name shards that are there.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

__all__ = ["WEIGHT_FILES", "check_model", "model_folder_problem", "positions", "safetensors_problem"]

#: Weight files transformers loads from a folder, in the order it looks for them.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_JSON_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "generation_config.json", "model.safetensors.index.json")


def safetensors_problem(path: Path) -> str | None:
    """Why the safetensors file ``path`` is not whole (truncated, damaged header), or None."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{path.name} is {size} bytes, too short for a safetensors header (truncated?)"
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                return f"{path.name} is {size:,} bytes, shorter than its own header says (truncated?)"
            header = json.loads(handle.read(length))
    except (ValueError, UnicodeDecodeError):
        return f"{path.name} has a damaged header"
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"{path.name} is {size:,} bytes, but its header says {expected:,} (truncated?)"
    return None


def model_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a whole model folder (config, weights, tokenizer files), or None."""
    if not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"{folder}: no such model folder"
    if not (folder / "config.json").is_file():
        return f"{folder} is not a model folder (no config.json)"
    for name in _JSON_FILES:
        path = folder / name
        if path.is_file():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                return f"{path} is damaged (not readable JSON: truncated?)"
    present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        return f"{folder} has no weights ({' or '.join(WEIGHT_FILES[::2])})"
    shards = [folder / "model.safetensors"] if "model.safetensors" in present else []
    if "model.safetensors.index.json" in present:
        index = json.loads((folder / "model.safetensors.index.json").read_text(encoding="utf-8"))
        names = sorted(set((index.get("weight_map") or {}).values()))
        missing = [name for name in names if not (folder / name).is_file()]
        if missing:
            return f"{folder} misses the weight shard {missing[0]} named by model.safetensors.index.json"
        shards += [folder / name for name in names]
    for shard in shards:
        problem = safetensors_problem(shard)
        if problem is not None:
            return f"{folder}: {problem}"
    return None


def positions(folder: Path) -> int | None:
    """The longest input the model's position embeddings allow (``max_position_embeddings``), or None."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings") or config.get("n_positions")
    if not isinstance(value, int) or value <= 0:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:  # positions start after the padding index
        value -= int(config.get("pad_token_id") or 1) + 1
    return value


#: Model types whose position ids start at ``pad_token_id + 1`` (RoBERTa's 514 positions hold 512 tokens).
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod"})


def check_model(source: str, setting: str, *, max_length: int | None = None,
                length_setting: str | None = None) -> None:
    """A :class:`~signal_al.core.errors.ConfigError` naming ``setting`` unless the model ``source`` (a resolved
    asset folder, a local folder or a hub name) can be loaded and takes ``max_length`` tokens
    (named ``length_setting``).

    A folder must be whole (:func:`model_folder_problem`); a hub name must be readable offline (its
    config, from the Hugging Face cache). Both are read without loading weights.
    """
    from signal_al.core.errors import ConfigError

    path = Path(source).expanduser()
    local = source.startswith((".", "/", "~")) or path.exists()
    if local:
        problem = model_folder_problem(path)
        if problem is not None:
            raise ConfigError(f"{setting}: {problem}")
        limit = positions(path)
    else:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{setting}: '{source}' is not an offline asset, a model folder, nor a hub model "
                              f"available offline ({first})") from None
        value = getattr(config, "max_position_embeddings", None)
        limit = int(value) if isinstance(value, int) and value > 0 else None
        if limit is not None and getattr(config, "model_type", None) in _OFFSET_POSITIONS:
            limit -= int(getattr(config, "pad_token_id", None) or 1) + 1
    if max_length is not None and limit is not None and max_length > limit:
        raise ConfigError(f"{length_setting}: {max_length} is more than the {limit} positions of {source} "
                          f"(its max_position_embeddings); use at most {limit}")
