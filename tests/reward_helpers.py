"""A tiny finished run folder (random-weight classifier, a few rt-movies rounds) to read rewards from."""

from __future__ import annotations

from pathlib import Path

import yaml


def run_config_file(tmp_path: Path, model_dir: Path, name: str = "tiny", **sections: dict) -> Path:
    data = {
        "name": name, "output_dir": str(tmp_path / "runs"), "seed": 1, "device": "cpu",
        "data": {"task": "rt-movies", "pool_size": 20, "max_test_size": 20},
        "classifier": {"model": str(model_dir), "max_length": 32, "batch_size": 8, "epochs": 1, "min_steps": 2,
                       "max_steps": 2, "eval_batch_size": 64, "learning_rate": 1e-3},
        "active_learning": {"strategy": "entropy", "round_fraction": 0.2, "stop_fraction": 0.4},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def make_run(tmp_path: Path, model_dir: Path, name: str = "tiny", **sections: dict) -> Path:
    """Run a 2-round entropy run on a 20-sentence pool; returns its folder."""
    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config
    from signal_al.engine.loop import ActiveLearningRun

    config = load_config(ExperimentConfig, run_config_file(tmp_path, model_dir, name, **sections))
    ActiveLearningRun(config, progress=False, log=lambda _: None).run()
    return config.run_dir


LABELED = [("a great movie , really fun", 1), ("the plot was boring and slow", 0), ("loved the actors", 1),
           ("an awful film", 0), ("the music was good", 1), ("i hated the ending", 0)]
UNLABELED = ["a funny story", "the film was very sad", "not a good movie", "fast and fun"]


def fake_run(tmp_path: Path, model_dir: Path, name: str = "fake", *, pairs: bool = False, rounds: int = 2,
             **sections: dict) -> Path:
    """A run folder as the loop leaves it (config, state, views, the last round's classifier), written
    directly: no data loading or training. Labeled items are spread over ``rounds`` rounds."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from signal_al.config import ExperimentConfig
    from signal_al.core.config_io import load_config
    from signal_al.core.run_state import Annotation, Item, RunState
    from signal_al.engine.store import RunStore

    config = load_config(ExperimentConfig, run_config_file(tmp_path, model_dir, name, **sections))
    store = RunStore(config.run_dir)
    store.write_config(config)
    items = [Item(id=f"r{i}", text=text, text_pair=f"second {i}" if pairs else None)
             for i, (text, _) in enumerate(LABELED)]
    items += [Item(id=f"u{i}", text=text, text_pair=f"other {i}" if pairs else None)
              for i, text in enumerate(UNLABELED)]
    per_round = -(-len(LABELED) // rounds)
    annotations = [Annotation(f"r{i}", label, i // per_round, "ground_truth") for i, (_, label) in enumerate(LABELED)]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    with torch.no_grad():  # a head whose predictions spread like a trained one's (not all at 1/2)
        model.classifier.weight.normal_(0.0, 3.0)
    checkpoint = store.save_checkpoint(model, rounds - 1)
    metrics = [{"round": r, "n_labeled": sum(a.round <= r for a in annotations), "accuracy": 0.5 + r / 10}
               for r in range(rounds)]
    state = RunState(round=rounds - 1, pool_size=len(items), items=items, annotations=annotations, metrics=metrics,
                     checkpoint=checkpoint)
    store.persist(state, ("negative", "positive"))
    return config.run_dir
