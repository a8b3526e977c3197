"""A run's closing summary in plain words: what its numbers show and what they do not.

A pure function of the run's metrics rows and its same-seed baselines' rows, so the demo ends
with sentences a newcomer can check against the tables above them.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["plain_summary"]


def _pct(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else f"{100 * value:{spec}} %"


def plain_summary(rows: Sequence[dict[str, Any]], baselines: Sequence[dict[str, Any]] = (),
                  reference: tuple[str, float, float] | None = None, test_rows: int | None = None) -> list[str]:
    """Sentences about one run (``rows``: its metrics.jsonl) against its baselines' rows.

    ``reference``: (method, acquired %, accuracy) of the pool-based reference, when known.

    >>> rows = [{"round": 0, "n_labeled": 20, "acquired_pct": 10.0, "accuracy": 0.6, "n_synthetic": 0},
    ...         {"round": 1, "n_labeled": 80, "acquired_pct": 40.0, "accuracy": 0.7, "n_synthetic": 10,
    ...          "n_synthetic_selected": 10, "heldout_reward_base": 0.25, "heldout_reward_adapter": 0.28,
    ...          "heldout_gain": 0.03, "heldout_gain_lo": -0.0075, "heldout_gain_hi": 0.0675, "kl_new_base": 0.05}]
    >>> print("\\n".join(plain_summary(rows)))
    The classifier learned: test accuracy went from 60.0 % with 20 labels to 70.0 % with 80.
    The generator's texts were chosen for labeling: 10 of the 60 labels of round 1 (17 %).
    The generator's update, measured on held-out prompts against the base model: its SIGnAL reward (shaped as in training, so a gated text counts as a penalty) went from 0.25 to 0.28 in round 1, a gain of +0.03 (95 % interval [-0.0075, +0.068]); the interval includes 0, so this run cannot tell a gain from noise. KL(new || base) ended at 0.050.
    One seed: single rounds swing by a few points, so this shows the machinery working, not that SIGnAL beats the baselines; results/ measures that over seeds with intervals.
    """
    lines: list[str] = []
    if not rows:
        return lines
    first, last = rows[0], rows[-1]
    change = "learned" if last["accuracy"] > first["accuracy"] else "did not improve"
    lines.append(f"The classifier {change}: test accuracy went from {_pct(first['accuracy'])} with "
                 f"{first['n_labeled']} labels to {_pct(last['accuracy'])} with {last['n_labeled']}.")
    picked = []
    previous = first["n_labeled"]
    for row in rows[1:]:
        if row.get("n_synthetic_selected") is not None:
            budget = row["n_labeled"] - previous
            picked.append(f"{row['n_synthetic_selected']} of the {budget} labels of round {row['round']} "
                          f"({100 * row['n_synthetic_selected'] / max(budget, 1):.0f} %)")
        previous = row["n_labeled"]
    if picked:
        lines.append("The generator's texts were chosen for labeling: " + "; ".join(picked) + ".")
    full = [b for b in baselines if abs(b["acquired_pct"] - 100.0) < 1e-6]
    if full:
        best = max(full, key=lambda b: b["accuracy"])
        lines.append(f"{best['strategy']} with the whole pool labeled (100 %) reached {_pct(best['accuracy'])}.")
    if reference is not None:
        method, at, value = reference
        beyond = [r for r in rows if r["acquired_pct"] > 100.0 + 1e-6]
        if beyond:
            r = beyond[-1]
            diff = r["accuracy"] - value
            lines.append(f"Past the pool, at {r['acquired_pct']:g} % ({r['n_synthetic']} of {r['n_labeled']} labels "
                         f"synthetic), this run scored {_pct(r['accuracy'])}, {100 * diff:+.1f} points against the "
                         f"pool-based reference ({method} at {at:g} %: {_pct(value)}).")
    gains = [r for r in rows if r.get("heldout_gain") is not None]
    if gains:  # in reward units: late rounds' rewards sit near 0, where a percentage of the base explodes
        g = gains[-1]
        lo, hi = g.get("heldout_gain_lo"), g.get("heldout_gain_hi")
        text = (f"The generator's update, measured on held-out prompts against the base model: its SIGnAL reward "
                f"(shaped as in training, so a gated text counts as a penalty) went from {g['heldout_reward_base']:.2g} to {g['heldout_reward_adapter']:.2g} in round "
                f"{g['round']}, a gain of {g['heldout_gain']:+.2g}")
        if lo is not None and hi is not None:
            verdict = ("the interval includes 0, so this run cannot tell a gain from noise" if lo <= 0 <= hi else
                       "above 0: the update raised the reward on prompts it never trained on" if lo > 0 else
                       "below 0: the update lowered the reward on held-out prompts")
            text += f" (95 % interval [{lo:+.2g}, {hi:+.2g}]); {verdict}"
        kl = g.get("kl_new_base")
        lines.append(text + (f". KL(new || base) ended at {kl:.3f}." if kl is not None else "."))
    served = [r["served_logprob_mae"] for r in rows if r.get("served_logprob_mae") is not None]
    if served:
        lines.append(f"Served = trained: the generator's log-probs differ from the trainer's by at most "
                     f"{max(served):.1e} per token on average (bf16 serving against fp32 training gives about 3e-2; "
                     "the update corrects it with truncated importance weights).")
    caveat = "One seed"
    if test_rows:
        caveat += f" and {test_rows} test rows"
    lines.append(caveat + ": single rounds swing by a few points, so this shows the machinery working, not that "
                 "SIGnAL beats the baselines; results/ measures that over seeds with intervals.")
    return lines
