"""Bad input, table-driven: every case exits 2 with one line that names the problem, no traceback,
and leaves every file that existed before exactly as it was.

Cases cover config values (``--set`` and YAML), data files, run folders, reports and command-line
arguments. They run in-process through :func:`signal_al.cli.main` and stop before any model loads,
so the whole table takes seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml

from signal_al.cli import main
from signal_al.config import ActiveLearningConfig, ExperimentConfig
from signal_al.config_io import to_dict
from signal_al.data.pools import Annotation, Item
from signal_al.run_store import RunState

Setup = Callable[[Path], None]


@dataclass
class Case:
    id: str
    argv: list[str]  # "{tmp}" is the case's folder (also the current folder)
    expect: str  # a part of the error line (after "signal-al: error: "), "{tmp}" formatted too
    setup: Setup | None = None


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
    ("active_learning.annotator=robot", "active_learning.annotator: must be one of"),
    ("active_learning.strategy=", "active_learning.strategy: must not be empty"),
    ("reward.k=0", "reward.k: must be positive"),
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
    Case("config.yaml with a bad value", ["resume", "runs/r"], "runs/r/config.yaml: reward.k: must be positive",
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
                                                 "--num-generations", "0"], "expected a positive integer"),
    Case("train-generator without --rl-data", ["train-generator", "--out", "y"], "the following arguments are "
         "required: --rl-data"),
    Case("assets verify --prompts 0", ["assets", "verify", "--prompts", "0"], "expected a positive integer"),
    Case("unknown command", ["bogus"], "invalid choice: 'bogus'"),
    Case("unknown flag", ["run", "--bogus"], "unrecognized arguments: --bogus"),
    Case("--set without a value", ["config", "show", "--set"], "argument --set/-s: expected one argument"),
]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    if case.setup is not None:
        case.setup(tmp_path)
    before = _snapshot(tmp_path)
    try:
        code = main([arg.replace("{tmp}", str(tmp_path)) for arg in case.argv])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("signal-al: error: "), err
    assert case.expect.replace("{tmp}", str(tmp_path)) in lines[0], err
    after = _snapshot(tmp_path)
    changed = [name for name, data in before.items() if after.get(name) != data]
    assert not changed, f"files changed or removed: {changed}"


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
           "kl": 0.00966, "dropped_fraction": 0.45, "distinct_2": 1.0, "seconds": {"select": 84.0}}
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
    assert "| random (1) |" in capsys.readouterr().out
    assert (tmp_path / "grid" / "results.csv").is_file() and (tmp_path / "grid" / "accuracy.png").is_file()


def test_a_failing_report_leaves_the_previous_one_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import signal_al.evaluation.report as report

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
    from signal_al.errors import UserError
    from signal_al.run_store import RunStore

    config = run_config(tmp_path)
    store = RunStore(config.run_dir)
    store.write_config(config)
    store.check_new(config)
    other = run_config(tmp_path, seed_size=3)
    with pytest.raises(UserError, match="no state.json, but the folder holds files a new run would overwrite"):
        store.check_new(other)
