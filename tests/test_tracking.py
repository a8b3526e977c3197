"""wandb logging (``wandb.mode: offline``): one row per round matching metrics.jsonl, a resumed run
continues the same wandb run, and no secret reaches what wandb writes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from reward_helpers import run_config_file

from signal_al.engine.tracking import REDACTED, _flatten, redact, wandb_run_id

SECRETS = ("hunter2-pass", "sk-SECRET-123", "wandb-SECRET-456", "hf_SECRET789")


def wandb_records(path: Path):
    """Records of a ``.wandb`` transaction log (LevelDB-style log of wandb_internal_pb2.Record)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a wandb transaction log"
    block, pos, chunks = 32768, 7, []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield pb.Record.FromString(chunk)
        elif kind == 2:
            chunks = [chunk]
        elif kind == 3:
            chunks.append(chunk)
        elif kind == 4:
            chunks.append(chunk)
            yield pb.Record.FromString(b"".join(chunks))


def test_redact_hides_keys_tokens_passwords_and_url_credentials() -> None:
    config = {"generator": {"server_url": "https://bob:pw@h:1/v1", "server_args": ["--api-key=abc", "--port", "8"],
                            "max_new_tokens": 64}, "hub": {"hf_token": "hf_x", "token": None}, "seed": 3}
    assert redact(config) == {
        "generator": {"server_url": f"https://{REDACTED}@h:1/v1", "server_args": [f"--api-key={REDACTED}", "--port", "8"],
                      "max_new_tokens": 64}, "hub": {"hf_token": REDACTED, "token": None}, "seed": 3}


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # conftest disables wandb for every other test
    monkeypatch.setenv("WANDB_API_KEY", SECRETS[2])
    monkeypatch.setenv("HF_TOKEN", SECRETS[3])
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_offline_run_logs_one_row_per_round_resumes_the_same_run_and_keeps_secrets_out(
        tmp_path: Path, tiny_classifier_dir: Path, offline_wandb) -> None:
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config
    from signal_al.engine.loop import ActiveLearningRun

    sections = dict(wandb={"enabled": True, "mode": "offline", "project": "signal-al-test"},
                    generator={"server_url": f"http://alice:{SECRETS[0]}@127.0.0.1:8000",
                               "server_args": ["--hf-token", SECRETS[1]]})  # --api-key itself is refused there
    first = load_config(ExperimentConfig, run_config_file(tmp_path, tiny_classifier_dir, "tracked",
                                                          active_learning={"stop_fraction": 0.2}, **sections))
    ActiveLearningRun(first, progress=False, log=lambda _: None).run()
    longer = load_config(ExperimentConfig, run_config_file(tmp_path, tiny_classifier_dir, "tracked", **sections))
    state = ActiveLearningRun(longer, progress=False, log=lambda _: None).run(resume=True)
    run_dir = longer.run_dir
    assert [row["round"] for row in state.metrics] == [0, 1]

    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2  # the first process and the resumed one
    run_id = wandb_run_id(run_dir)
    history: dict[int, dict] = {}
    configs = []
    for folder in offline:
        files = list(folder.glob("*.wandb"))
        assert [f.name for f in files] == [f"run-{run_id}.wandb"]  # the same wandb run both times
        for record in wandb_records(files[0]):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                assert record.run.run_id == run_id and record.run.project == "signal-al-test"
                configs.append({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "history":
                row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                history[int(row["_step"])] = row

    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted(history) == [row["round"] for row in metrics] == [0, 1]
    for row in metrics:
        logged = history[row["round"]]
        for key, value in _flatten(row).items():
            assert logged[key] == pytest.approx(value), key

    assert configs and all(c["seed"] == 1 and c["generator"]["max_new_tokens"] == 64 for c in configs)
    assert configs[-1]["generator"]["server_url"] == f"http://{REDACTED}@127.0.0.1:8000"
    assert configs[-1]["generator"]["server_args"] == ["--hf-token", REDACTED]
    for path in (run_dir / "wandb").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not [s for s in SECRETS if s.encode() in content], path
