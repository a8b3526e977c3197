"""The round's RL dataset D_RL: stored rollouts as JSONL, one object per line.

Keys (the generation module writes the same names)::

    {"prompt": "...", "prompt_token_ids": [...], "completion": "...",
     "completion_token_ids": [...], "reward": 0.37, "metadata": {...}, "group": "q17"}

``prompt_token_ids``, ``completion_token_ids`` and ``reward`` are required; ``prompt``,
``completion``, ``metadata``, ``group`` and ``logprobs`` are optional. ``logprobs`` are the
log-probabilities the *serving* engine sampled each completion token with (one per token): the
trainer compares them with its own recomputation (served = trained) and corrects the update
with truncated importance sampling where they differ. ``group`` (a string, number or list
of them) names the rollouts whose rewards are compared by the group-relative advantages
(``ppo.advantage: rloo | grpo``); without it, rollouts with the same prompt tokens form a group.
Every problem is a :class:`DataError` that names the file and line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable

from signal_al.core.errors import DataError
from signal_al.core.io_utils import atomic_write_jsonl

REQUIRED_KEYS = ("prompt_token_ids", "completion_token_ids", "reward")


@dataclass
class Rollout:
    """One stored (prompt, completion, reward) triple; ``line`` is its 1-based line in the file."""

    prompt_token_ids: list[int]
    completion_token_ids: list[int]
    reward: float
    prompt: str = ""
    completion: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    group: Hashable | None = None
    line: int = 0
    logprobs: list[float] | None = None  # the serving engine's log-prob of each completion token

    def group_key(self) -> Hashable:
        """The group this rollout's reward is compared within: its ``group`` id, else its prompt tokens."""
        return ("group", self.group) if self.group is not None else ("prompt", tuple(self.prompt_token_ids))

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "prompt": self.prompt,
            "prompt_token_ids": list(self.prompt_token_ids),
            "completion": self.completion,
            "completion_token_ids": list(self.completion_token_ids),
            "reward": float(self.reward),
        }
        if self.metadata:
            record["metadata"] = self.metadata
        if self.group is not None:
            record["group"] = _to_json_group(self.group)
        if self.logprobs is not None:
            record["logprobs"] = [float(x) for x in self.logprobs]
        return record


def _to_json_group(value: Any) -> Any:
    return [_to_json_group(v) for v in value] if isinstance(value, tuple) else value


def _group_id(value: Any, where: str) -> Hashable | None:
    """A JSON group id made hashable (lists become tuples); objects are refused."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, list):
        return tuple(_group_id(v, where) for v in value)
    raise DataError(f"{where}: 'group' must be a string, a number or a list of them, got {type(value).__name__}")


def _token_ids(value: Any, key: str, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise DataError(f"{where}: '{key}' must be a list of integer token ids")
    if not value:
        raise DataError(f"{where}: '{key}' is empty")
    if min(value) < 0:
        raise DataError(f"{where}: '{key}' has a negative token id {min(value)}")
    return value


def _logprobs(value: Any, completion: list[int], where: str) -> list[float] | None:
    """Served log-probs: one finite number <= 0 per completion token (None when absent)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise DataError(f"{where}: 'logprobs' must be a list of numbers (one log-probability per completion token)")
    if len(value) != len(completion):
        raise DataError(f"{where}: 'logprobs' has {len(value)} values for {len(completion)} completion tokens")
    bad = next((x for x in value if not math.isfinite(x) or x > 1e-3), None)
    if bad is not None:
        raise DataError(f"{where}: 'logprobs' holds {bad}, not a log-probability (finite and <= 0)")
    return [min(float(x), 0.0) for x in value]


def parse_rollout(record: Any, where: str, line: int = 0) -> Rollout:
    """Validate one decoded JSON object; ``where`` prefixes error messages (e.g. ``file:12``)."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)} (a D_RL line needs {', '.join(REQUIRED_KEYS)})")
    reward = record["reward"]
    if isinstance(reward, bool) or not isinstance(reward, (int, float)):
        raise DataError(f"{where}: 'reward' must be a number, got {reward!r}")
    if not math.isfinite(reward):
        raise DataError(f"{where}: reward is {reward} (NaN or infinite rewards cannot be trained on)")
    for key in ("prompt", "completion"):
        if key in record and not isinstance(record[key], str):
            raise DataError(f"{where}: '{key}' must be a string")
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise DataError(f"{where}: 'metadata' must be an object")
    completion = _token_ids(record["completion_token_ids"], "completion_token_ids", where)
    return Rollout(
        prompt_token_ids=_token_ids(record["prompt_token_ids"], "prompt_token_ids", where),
        completion_token_ids=completion,
        reward=float(reward),
        prompt=record.get("prompt", ""),
        completion=record.get("completion", ""),
        metadata=metadata,
        group=_group_id(record.get("group"), where),
        line=line,
        logprobs=_logprobs(record.get("logprobs"), completion, where),
    )


def read_rollouts(path: str | Path) -> list[Rollout]:
    """Read and validate a D_RL JSONL file; blank lines are skipped, an empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: D_RL file not found")
    rollouts: list[Rollout] = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
            rollouts.append(parse_rollout(record, where, line=number))
    if not rollouts:
        raise DataError(f"{path}: D_RL file has no rollouts")
    return rollouts


def check_vocab(rollouts: Iterable[Rollout], vocab_size: int, source: str = "D_RL") -> None:
    """Raise a DataError naming the line of the first token id that the model cannot embed."""
    for r in rollouts:
        for key in ("prompt_token_ids", "completion_token_ids"):
            top = max(getattr(r, key))
            if top >= vocab_size:
                raise DataError(
                    f"{source}:{r.line}: '{key}' has token id {top} outside the model's vocabulary "
                    f"(size {vocab_size}); were these rollouts tokenized for another model?"
                )


def write_rollouts(path: str | Path, rollouts: Iterable[Rollout | dict[str, Any]]) -> Path:
    """Write rollouts as JSONL atomically (fsynced temporary file, then rename); NaN rewards are refused."""
    path = Path(path)
    records = [r.to_json() if isinstance(r, Rollout) else r for r in rollouts]
    for number, record in enumerate(records, start=1):
        reward = record.get("reward") if isinstance(record, dict) else None
        if isinstance(reward, float) and not math.isfinite(reward):
            raise DataError(f"{path}: rollout {number} has reward {reward}; D_RL rewards must be finite")
    atomic_write_jsonl(path, records)
    return path


__all__ = ["Rollout", "check_vocab", "parse_rollout", "read_rollouts", "write_rollouts"]
