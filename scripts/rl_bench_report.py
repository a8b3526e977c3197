"""Tables and the learning-curve plot of ``results/rl-bench/`` from its committed raw records.

Every folder under ``ROOT/runs/`` is one ``scripts/bench_rl.py --out`` record (``config.json``,
``metrics.jsonl``, ``summary.json``). This writes ``ROOT/results.md`` (one row per run and
evaluation point, the goal each reward kind is held to, and the mean over seeds with a 95 %
t interval) and ``ROOT/signal_curve.png`` (the SIGnAL reward's held-out gain every evaluation
point, per seed, with its interval, beside the mean words on both sides), so the page
regenerates from the repo. Runs are seeds of one experiment when every ``SETTING_KEYS`` value
agrees; each experiment gets its own table and mean. Folders under ``ROOT/confirm/`` are
``rl_bench_transfer.py --pools heldout-fresh`` records of final adapters: they add the
confirmatory endpoint (each adapter on fresh held-out prompts; the SIGnAL adapters' t interval
over seeds and inverse-variance pooled gain, against the null adapters'):

    python scripts/rl_bench_report.py results/rl-bench
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

#: The positive control's size goal alone (the controls table judges it apart from the time limit).
CLASSPROB_SIZE_GOAL = "gain >= +0.15 in mean probability, z >= 3, in each seed"
#: What each reward kind must show at its last evaluation (issue 27's goals).
GOALS = {"classprob": f"{CLASSPROB_SIZE_GOAL}, <= 15 min a seed",
         "shuffled": "|z| < 2 in each seed", "length": "gain > 0, z >= 3",
         "signal": "+25 % at z >= 3 in every seed, distinct-2 >= 0.85, off-distribution share <= the base's"}


def load(root: Path) -> list[dict]:
    runs = []
    for folder in sorted((root / "runs").iterdir()):
        if not (folder / "metrics.jsonl").is_file():
            continue
        config = json.loads((folder / "config.json").read_text())
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
        runs.append({"name": folder.name, "config": config, "rows": rows, "wall_s": summary.get("wall_s")})
    return runs


def passed(kind: str, row: dict, wall_s: float | None) -> bool | None:
    z, gain = row.get("paired_z"), row.get("gain")
    if z is None or gain is None:
        return None
    if kind == "classprob":
        return gain >= 0.15 and z >= 3 and (wall_s is None or wall_s <= 900)
    if kind == "shuffled":
        return abs(z) < 2
    if kind == "length":
        return gain > 0 and z >= 3
    return (row.get("gain_pct") or 0) >= 25 and z >= 3 and (row.get("distinct2_trained") or 0) >= 0.85 and (
        row.get("offdist_trained") or 0) <= (row.get("offdist_base") or 0)


#: The settings that make runs seeds of one experiment: a mean is only taken within one of these.
SETTING_KEYS = ("reward", "iterations", "learning_rate", "kl_coef", "advantage", "epochs", "minibatches",
                "prompts", "samples", "backend", "heldout", "lora_layers", "reset_optimizer")


def setting(config: dict) -> tuple:
    """A run's experiment: its config without the seed (and without where it ran)."""
    return tuple(str(config.get(key)) for key in SETTING_KEYS)


def fmt(value, spec: str = ".3f") -> str:
    """A table cell: ``-`` where there was nothing to measure."""
    from signal_al.experiments.rl_bench import format_stat

    return format_stat(value, spec, missing="-")


def t_interval(values: list[float]) -> tuple[float, float, float]:
    from scipy.stats import t

    a = np.asarray(values, dtype=np.float64)
    half = t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else float("nan")
    return float(a.mean()), float(a.mean() - half), float(a.mean() + half)


def welch_interval(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """mean(a) - mean(b), its 95 % Welch interval, and the difference 80 % power detects at these seed counts.

    The detectable difference is (t(0.975) + t(0.80)) x the standard error, both t at the
    Welch-Satterthwaite degrees of freedom: what a two-sided 5 % test finds four times in five.
    """
    from scipy.stats import t

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1))
    diff = float(x.mean() - y.mean())
    half = t.ppf(0.975, df) * se
    return diff, diff - half, diff + half, float((t.ppf(0.975, df) + t.ppf(0.80, df)) * se)


def evals_by_iteration(runs: list[dict], key: str) -> dict[int, list[float]]:
    """``key`` at each evaluation point, one value per run, for the points every run reached."""
    points: dict[int, list[float]] = {}
    for run in runs:
        for row in run["rows"]:
            if row["kind"] == "eval" and row.get(key) is not None:
                points.setdefault(row["iteration"], []).append(row[key])
    return {it: values for it, values in sorted(points.items()) if len(values) == len(runs)}


def curve_table(mine: list[dict]) -> list[str]:
    """The mean over seeds at every evaluation point, with its 95 % t interval (runs with several points)."""
    gains = evals_by_iteration(mine, "gain")
    if len(mine) < 2 or len(gains) < 2:
        return []
    pct, z = evals_by_iteration(mine, "gain_pct"), evals_by_iteration(mine, "paired_z")
    kl, words = evals_by_iteration(mine, "kl"), evals_by_iteration(mine, "words_trained")
    lines = [f"\nOver the {len(mine)} seeds at each evaluation point (mean, 95 % t interval over seeds):", "",
             "| iteration | gain [95 % CI] | gain % [95 % CI] | mean z | mean KL | mean words (adapter) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for it, values in gains.items():
        g, p = t_interval(values), t_interval(pct[it]) if it in pct else (np.nan,) * 3
        lines.append(f"| {it} | {g[0]:+.4f} [{g[1]:+.4f}, {g[2]:+.4f}] | {p[0]:+.1f} [{p[1]:+.1f}, {p[2]:+.1f}] | "
                     f"{fmt(float(np.mean(z[it])) if it in z else None, '+.2f')} | "
                     f"{fmt(float(np.mean(kl[it])) if it in kl else None)} | "
                     f"{fmt(float(np.mean(words[it])) if it in words else None, '.1f')} |")
    return lines


def null_comparison(runs: list[dict]) -> list[str]:
    """Each SIGnAL experiment against the null (shuffled) one of the same settings, over seeds.

    One seed's z cannot test learning: a policy trained on rewards that carry no information
    drifts, and the drift moves the held-out reward (results/rl-bench/README.md). The test is the
    SIGnAL seeds' gain against the null seeds' gain at the same evaluation point.
    """
    lines: list[str] = []
    for group in sorted({setting(r["config"]) for r in runs if r["config"]["reward"] == "signal"}):
        null_key = ("shuffled",) + group[1:]
        signal = [r for r in runs if setting(r["config"]) == group]
        null = [r for r in runs if setting(r["config"]) == null_key]
        if len(signal) < 2 or len(null) < 2:
            continue
        s_gain, n_gain = evals_by_iteration(signal, "gain"), evals_by_iteration(null, "gain")
        common = [it for it in s_gain if it in n_gain]
        if not common:
            continue
        c = signal[0]["config"]
        lines += [f"## SIGnAL against the null, {c['iterations']} iterations, lr {c['learning_rate']:g}", "",
                  f"Held-out gain in the SIGnAL reward, {len(signal)} `signal` seeds against {len(null)} `shuffled` "
                  "seeds (the same settings). The difference of the means, its 95 % Welch interval, and the smallest "
                  "difference these seed counts detect with 80 % power.", "",
                  "| iteration | signal mean gain | null mean gain | difference [95 % CI] | detectable at 80 % power |",
                  "| --- | --- | --- | --- | --- |"]
        for it in common:
            diff, lo, hi, mde = welch_interval(s_gain[it], n_gain[it])
            lines.append(f"| {it} | {np.mean(s_gain[it]):+.4f} | {np.mean(n_gain[it]):+.4f} | "
                         f"{diff:+.4f} [{lo:+.4f}, {hi:+.4f}] | {mde:.4f} |")
        lines.append("")
    return lines


def controls_table(runs: list[dict]) -> list[str]:
    """The positive and the null control side by side at the positive control's last evaluation point.

    For every ``classprob`` experiment with several seeds: those seeds' last evaluation, and every
    ``shuffled`` run of the same settings but at least as many iterations, at that same iteration
    (a longer null run is the same run up to there). The size goal is judged without the time
    limit here; the time is the table's own column.
    """
    lines: list[str] = []
    others = [i for i, key in enumerate(SETTING_KEYS) if key not in ("reward", "iterations")]
    for group in sorted({setting(r["config"]) for r in runs if r["config"]["reward"] == "classprob"}):
        positive = [r for r in runs if setting(r["config"]) == group]
        point = int(positive[0]["config"]["iterations"])

        def at_point(run: dict) -> dict | None:
            return next((row for row in run["rows"] if row["kind"] == "eval" and row["iteration"] == point), None)

        null = [r for r in runs if r["config"]["reward"] == "shuffled" and int(r["config"]["iterations"]) >= point
                and all(setting(r["config"])[i] == group[i] for i in others) and at_point(r) is not None]
        if len(positive) < 2 or not null:
            continue
        c = positive[0]["config"]
        lines += [f"## The two controls at iteration {point}, lr {c['learning_rate']:g}, beta {c['kl_coef']:g}, "
                  f"{c['epochs']} epoch(s)", "",
                  f"Each run's held-out evaluation at iteration {point} (a longer null run: its evaluation there). "
                  f"Positive control (`classprob`): {CLASSPROB_SIZE_GOAL} "
                  f"(the time is the last column); null (`shuffled`, scored by the real SIGnAL reward): "
                  f"{GOALS['shuffled']}.", "",
                  "| run | control | gain [95 % CI] | z | pairs | KL | words base -> trained | wall s (whole run) | goal |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        verdicts: dict[str, list[bool]] = {"classprob": [], "shuffled": []}
        for run in positive + null:
            kind, row = run["config"]["reward"], at_point(run)
            if row is None:
                continue
            ok = passed(kind, row, None)
            if ok is not None:
                verdicts[kind].append(ok)
            lines.append(f"| {run['name']} | {'positive' if kind == 'classprob' else 'null'} | "
                         f"{fmt(row.get('gain'), '+.4f')} [{fmt(row.get('gain_lo'), '+.4f')}, "
                         f"{fmt(row.get('gain_hi'), '+.4f')}] | {fmt(row.get('paired_z'), '.2f')} | "
                         f"{row.get('paired_n')} | {fmt(row.get('kl'))} | {fmt(row.get('words_base'), '.1f')} -> "
                         f"{fmt(row.get('words_trained'), '.1f')} | {fmt(run['wall_s'], '.0f')} | "
                         f"{'' if ok is None else ('met' if ok else 'missed')} |")
        lines += ["", f"Positive control: size goal met in {sum(verdicts['classprob'])} of "
                  f"{len(verdicts['classprob'])} seeds; null: |z| < 2 in {sum(verdicts['shuffled'])} of "
                  f"{len(verdicts['shuffled'])} seeds.", ""]
    return lines


#: The two-sided 95 % normal quantile (the pooled intervals).
Z95 = 1.959964
#: Where the confirmatory evaluations live (``rl_bench_transfer.py --pools heldout-fresh``, one folder per adapter).
CONFIRM_DIR = "confirm"


def load_confirm(root: Path) -> list[dict]:
    """The ``heldout-fresh`` rows under ``ROOT/confirm/*/transfer.jsonl``, each with its folder's name as ``run``."""
    rows = []
    folder = root / CONFIRM_DIR
    for path in sorted(folder.glob("*/transfer.jsonl")) if folder.is_dir() else []:
        for line in path.read_text().splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("pool") == "heldout-fresh":
                rows.append({**row, "run": path.parent.name})
    return rows


def pooled(rows: list[dict]) -> tuple[float, float] | None:
    """Inverse-variance pooled gain of independent evaluations and its standard error (fixed effect).

    Each evaluation's standard error is its gain over its clustered z. This answers "did these
    adapters gain?", not "does a new seed gain?" (that is the t interval over seeds).

    >>> mean, se = pooled([{"gain": 0.1, "paired_z": 2.0}, {"gain": 0.0, "paired_z": None}, {"gain": 0.3, "paired_z": 3.0}])
    >>> round(mean, 4), round(se, 4)  # standard errors 0.05 and 0.1: weights 400 and 100
    (0.14, 0.0447)
    """
    usable = [(r["gain"], r["gain"] / r["paired_z"]) for r in rows if r.get("paired_z") and r.get("gain") is not None]
    if not usable:
        return None
    weights = np.array([1.0 / se ** 2 for _, se in usable])
    gains = np.array([g for g, _ in usable])
    return float(weights @ gains / weights.sum()), float(1.0 / math.sqrt(weights.sum()))


def confirm_table(rows: list[dict]) -> list[str]:
    """The confirmatory endpoint: each adapter against the base on fresh held-out prompts, then over seeds."""
    if not rows:
        return []
    lines = ["## Confirmatory endpoint: fresh held-out prompts (fixed before its runs; README.md)", "",
             "Each adapter against the base model on new prompts of the held-out pool at a seed no run used "
             "(`rl_bench_transfer.py --pools heldout-fresh`), scored by the SIGnAL reward (a null adapter: the real, "
             "unpermuted one). Goal for a SIGnAL adapter: +25 % at z >= 3; for a null one: |z| < 2.", "",
             "| adapter | trained on | base | adapter | gain [95 % CI] | gain % | z | pairs | words base -> adapter | "
             "length-matched gain [95 % CI] | distinct-2 | off-dist. base -> adapter | goal |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        kind = r["reward"]
        z, pct = r.get("paired_z"), r.get("gain_pct")
        ok = None if z is None else (abs(z) < 2 if kind == "shuffled" else (pct or 0) >= 25 and z >= 3)
        lines.append(f"| {r['run']} | {kind} | {fmt(r.get('reward_base'), '.4f')} | {fmt(r.get('reward_adapter'), '.4f')} | "
                     f"{fmt(r.get('gain'), '+.4f')} [{fmt(r.get('gain_lo'), '+.4f')}, {fmt(r.get('gain_hi'), '+.4f')}] | "
                     f"{fmt(pct, '+.1f')} | {fmt(z, '.2f')} | {r.get('paired_n')} | {fmt(r.get('words_base'), '.1f')} -> "
                     f"{fmt(r.get('words_trained'), '.1f')} | {fmt(r.get('length_matched_gain'), '+.4f')} "
                     f"[{fmt(r.get('length_matched_lo'), '+.4f')}, {fmt(r.get('length_matched_hi'), '+.4f')}] | "
                     f"{fmt(r.get('distinct2_trained'))} | {fmt(r.get('offdist_base'))} -> {fmt(r.get('offdist_trained'))} | "
                     f"{'' if ok is None else ('met' if ok else 'missed')} |")
    lines.append("")
    signal = [r for r in rows if r["reward"] == "signal" and r.get("gain") is not None]
    null = [r for r in rows if r["reward"] == "shuffled" and r.get("gain") is not None]
    if len(signal) > 1:
        mean, lo, hi = t_interval([r["gain"] for r in signal])
        lines.append(f"- SIGnAL adapters, mean over {len(signal)} seeds (does a new seed gain?): {mean:+.4f}, 95 % t "
                     f"interval over seeds [{lo:+.4f}, {hi:+.4f}].")
    for label, group in (("SIGnAL", signal), ("null", null)):
        found = pooled(group)
        if found and len(group) > 1:
            mean, se = found
            lines.append(f"- {label} adapters, inverse-variance pooled (did these adapters gain?): {mean:+.4f} "
                         f"[{mean - Z95 * se:+.4f}, {mean + Z95 * se:+.4f}], z {mean / se:.2f}.")
    both = pooled(signal), pooled(null)
    if both[0] and both[1]:
        (a, a_se), (b, b_se) = both
        se = math.hypot(a_se, b_se)
        lines.append(f"- SIGnAL pooled minus null pooled ({len(signal)} against {len(null)} adapter(s)): {a - b:+.4f} "
                     f"[{a - b - Z95 * se:+.4f}, {a - b + Z95 * se:+.4f}], z {(a - b) / se:.2f}.")
    return lines + [""]


def markdown(runs: list[dict], confirm: list[dict] | None = None) -> str:
    lines = ["# RL bench results (regenerated by `python scripts/rl_bench_report.py results/rl-bench`)", ""]
    order = ["classprob", "shuffled", "length", "signal"]
    groups = sorted({setting(r["config"]) for r in runs}, key=lambda key: (order.index(key[0]), key[1:]))
    for group in groups:
        mine = [r for r in runs if setting(r["config"]) == group]
        c, kind = mine[0]["config"], group[0]
        lines += [f"## `--reward {kind}`, lr {c['learning_rate']:g}, beta {c['kl_coef']:g}, {c['epochs']} epoch(s), "
                  f"{c['iterations']} iterations", "",
                  f"{c['iterations']} iterations of {c['prompts']} prompts x {c['samples']} samples, lr "
                  f"{c['learning_rate']:g}, beta {c['kl_coef']:g}, {c['advantage']}, {c['epochs']} epoch(s) x "
                  f"{c['minibatches']} minibatches, backend {c['backend']}, {c['heldout']} held-out samples "
                  f"({c['heldout_per_prompt']} per prompt). Goal: {GOALS[kind]}.", "",
                  "| run | iter. | base | trained | gain [95 % CI] | gain % [95 % CI] | z | pairs | KL | words base -> "
                  "trained | length-matched gain | SIGnAL score gain % (z) | distinct-2 | off-dist. base -> trained | "
                  "served gap | wall s | goal |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        finals = []
        for run in mine:
            evals = [row for row in run["rows"] if row["kind"] == "eval"]
            served = [row["served_logprob_mae"] for row in run["rows"] if row.get("served_logprob_mae") is not None]
            signal = "" if kind == "signal" else "signal_"  # a signal run's own gain is the SIGnAL score's
            for row in evals:
                last = row is evals[-1]
                ok = passed(kind, row, run["wall_s"]) if last else None
                lines.append(
                    f"| {run['name']} | {row['iteration']} | {fmt(row.get('reward_base'), '.4f')} | "
                    f"{fmt(row.get('reward_adapter'), '.4f')} | {fmt(row.get('gain'), '+.4f')} "
                    f"[{fmt(row.get('gain_lo'), '+.4f')}, {fmt(row.get('gain_hi'), '+.4f')}] | "
                    f"{fmt(row.get('gain_pct'), '+.1f')} [{fmt(row.get('gain_lo_pct'), '+.1f')}, "
                    f"{fmt(row.get('gain_hi_pct'), '+.1f')}] | {fmt(row.get('paired_z'), '.2f')} | "
                    f"{row.get('paired_n')} | {fmt(row.get('kl'))} | {fmt(row.get('words_base'), '.1f')} -> "
                    f"{fmt(row.get('words_trained'), '.1f')} | {fmt(row.get('length_matched_gain'), '+.4f')} | "
                    f"{fmt(row.get(signal + 'gain_pct'), '+.1f')} ({fmt(row.get(signal + 'paired_z'), '+.2f')}) | "
                    f"{fmt(row.get('distinct2_trained'))} | {fmt(row.get('offdist_base'))} -> "
                    f"{fmt(row.get('offdist_trained'))} | {fmt(max(served) if served else None, '.1e')} | "
                    f"{fmt(run['wall_s'], '.0f') if last else ''} | "
                    f"{'' if ok is None else ('met' if ok else 'missed')} |")
            if evals:
                finals.append(evals[-1])
        if len(finals) > 1:
            for key, label in (("gain", "gain"), ("gain_pct", "gain %"), ("paired_z", "z"),
                               ("length_matched_gain", "length-matched gain")):
                values = [f[key] for f in finals if f.get(key) is not None]
                if len(values) > 1:
                    mean, lo, hi = t_interval(values)
                    lines.append(f"\nMean {label} over {len(values)} seeds: {mean:+.4f}, 95 % t interval over seeds "
                                 f"[{lo:+.4f}, {hi:+.4f}].")
        lines += curve_table(mine)
        lines.append("")
    lines += controls_table(runs)
    lines += null_comparison(runs)
    lines += confirm_table(confirm or [])
    return "\n".join(lines) + "\n"


#: Iterations the training-reward panel averages over (one iteration's mean is of ~45 samples).
TRAIN_WINDOW = 5


def _values(evals: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else row[key] for row in evals], dtype=float)


def plot(runs: list[dict], out: Path) -> Path | None:
    """Held-out gain, length and KL of every ``signal`` run at each evaluation point, and the reward of its training
    samples; the null runs in grey."""
    signal = [r for r in runs if r["config"]["reward"] == "signal"]
    if not signal:
        return None
    iterations = {r["config"]["iterations"] for r in signal}
    null = [r for r in runs if r["config"]["reward"] == "shuffled" and r["config"]["iterations"] in iterations]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (gain_ax, train_ax, words_ax, kl_ax) = plt.subplots(1, 4, figsize=(20, 4.4))
    markers = ["o", "s", "^", "D", "v"]
    for k, run in enumerate(signal + null):
        is_null = k >= len(signal)
        evals = [row for row in run["rows"] if row["kind"] == "eval"]
        x = _values(evals, "iteration") + (k % 5 - 2) * 0.35
        y, lo, hi = _values(evals, "gain_pct"), _values(evals, "gain_lo_pct"), _values(evals, "gain_hi_pct")
        color = "0.6" if is_null else f"C{k}"
        label = f"{run['name']}" + (" (null)" if is_null else "")
        gain_ax.errorbar(x, y, yerr=[y - lo, hi - y], marker=markers[k % 5], capsize=3, color=color,
                         linestyle="--" if is_null else "-", label=label)
        if not is_null:
            base = np.abs(_values(evals, "reward_base"))
            gain_ax.plot(x, _values(evals, "length_matched_gain") / base * 100, linestyle=":", marker=markers[k % 5],
                         markerfacecolor="none", color=color, label=f"{run['name']}, within length bins")
            words_ax.axhline(evals[0].get("words_base") or np.nan, color=color, linestyle="--", linewidth=1)
        words_ax.plot(x, _values(evals, "words_trained"), marker=markers[k % 5], color=color,
                      linestyle="--" if is_null else "-", label=label)
        kl_ax.plot(x, _values(evals, "kl"), marker=markers[k % 5], color=color, linestyle="--" if is_null else "-",
                   label=label)
        iterations_rows = [row for row in run["rows"] if row["kind"] == "iteration"]
        means = _values(iterations_rows, "reward_mean")  # the null's mean is the real SIGnAL mean: shuffling keeps it
        window = min(TRAIN_WINDOW, len(means))
        if window:
            rolling = np.convolve(np.nan_to_num(means), np.ones(window) / window, mode="valid")
            train_ax.plot(_values(iterations_rows, "iteration")[window - 1:], rolling, color=color,
                          linestyle="--" if is_null else "-", label=label)
    gain_ax.axhline(0, color="black", linewidth=0.8)
    gain_ax.axhline(25, color="grey", linestyle="--", linewidth=0.8, label="goal +25 %")
    gain_ax.set(xlabel="iteration", ylabel="held-out gain over the base model (%)",
                title="SIGnAL reward: paired gain, 95 % interval")
    words_ax.set(xlabel="iteration", ylabel="mean words of kept held-out text",
                 title="length (dashed lines: the base model)")
    kl_ax.set(xlabel="iteration", ylabel="KL(adapter || base), nats per text", title="how far the policy moved")
    train_ax.set(xlabel="iteration", ylabel=f"mean SIGnAL reward, {TRAIN_WINDOW}-iteration rolling mean",
                 title="training prompts: the iterations' own samples")
    for ax in (gain_ax, train_ax, words_ax, kl_ax):
        ax.legend(fontsize=7)
    fig.suptitle(f"{len(signal)} signal seed(s), {len(null)} null seed(s) (shuffled rewards, grey)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="results/rl-bench (its runs/ holds the raw records).")
    args = parser.parse_args(argv)
    if not (args.root / "runs").is_dir():
        parser.error(f"{args.root}: no runs/ folder of bench_rl.py records")
    runs = load(args.root)
    (args.root / "results.md").write_text(markdown(runs, load_confirm(args.root)))
    picture = plot(runs, args.root / "signal_curve.png")
    print(f"wrote {args.root / 'results.md'}" + (f" and {picture}" if picture else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
