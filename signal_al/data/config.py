"""The ``data`` config section: which task, its pools and splits."""

from __future__ import annotations

from dataclasses import dataclass

from signal_al.core.config_io import check, field


@dataclass
class DataConfig:
    task: str = field(
        "rt-movies",
        help="Built-in offline task (rt-movies, vader-sources), hub task (sst2, ag_news, qnli) "
        "or a path to a local CSV/JSONL/Parquet file.",
    )
    text_column: str = field("text", help="Local files: column holding the text.")
    text_pair_column: str | None = field(None, help="Local files: second text column for pair tasks.")
    label_column: str = field("label", help="Local files: column holding the label (name or integer id).")
    label_names: list[str] | None = field(
        None, help="Local files: the label set in id order; default is the sorted distinct labels."
    )
    test_file: str | None = field(None, help="Local files: a separate test file with the same columns.")
    test_fraction: float = field(0.2, help="Held-out test share when the corpus has no test split.")
    max_test_size: int | None = field(None, help="Evaluate on a seeded random subset of at most this many test rows.")
    pool_fraction: float | None = field(
        0.01, help="Real pool = this fraction of the train split (paper: 0.001 or 0.01)."
    )
    pool_size: int | None = field(None, help="Real pool = this many train rows (overrides pool_fraction).")
    split_seed: int = field(0, help="Seed of the train/test split (fixed so every run seed sees the same test rows).")
    stratify: bool = field(True, help="Keep label proportions when subsampling the pool and splitting test.")
    instruction: str | None = field(None, help="Override the task's generation instruction text.")

    def __post_init__(self) -> None:
        check(0.0 < self.test_fraction < 1.0, "data.test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        if self.pool_fraction is not None:
            check(0.0 < self.pool_fraction <= 1.0, "data.pool_fraction", f"must be in (0, 1], got {self.pool_fraction}")
        if self.pool_size is not None:
            check(self.pool_size > 0, "data.pool_size", f"must be positive, got {self.pool_size}")
        if self.max_test_size is not None:
            check(self.max_test_size > 0, "data.max_test_size", f"must be positive, got {self.max_test_size}")
        check(bool(self.task.strip()), "data.task", "must not be empty")
        check(0 <= self.split_seed <= 2**31 - 1, "data.split_seed",
              f"must be in [0, 2147483647], got {self.split_seed}")
        for key in ("text_column", "label_column"):
            check(bool(getattr(self, key).strip()), f"data.{key}", "must not be empty")
        check(self.label_column != self.text_column, "data.label_column",
              f"must differ from data.text_column (both are '{self.text_column}': every text would be its own class)")
        if self.text_pair_column is not None:
            check(bool(self.text_pair_column.strip()), "data.text_pair_column", "must not be empty (or null)")
            check(self.text_pair_column != self.text_column, "data.text_pair_column",
                  "must differ from data.text_column")
            check(self.text_pair_column != self.label_column, "data.label_column",
                  f"must differ from data.text_pair_column (both are '{self.label_column}')")
        if self.label_names is not None:
            names = [str(name).strip() for name in self.label_names]
            check(len(names) >= 2, "data.label_names", f"must name at least two labels, got {self.label_names}")
            check(all(names), "data.label_names", f"must not hold an empty name, got {self.label_names}")
            duplicates = sorted({name for name in names if names.count(name) > 1})
            check(not duplicates, "data.label_names", f"names {', '.join(duplicates)} more than once")
        if self.test_file is not None:
            check(bool(self.test_file.strip()), "data.test_file", "must not be empty (or null)")
