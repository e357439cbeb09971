"""The label-noise leaderboard: the paper-regime and step-cost JSON files as one table and one figure.

Three commands, run on an otherwise idle machine (the first two time things):

    python benchmarks/paper_regime.py --preset quick --seeds 3 --json docs/results/leaderboard_quick.json
    python benchmarks/step_overhead.py --json docs/results/step_cost_cpu.json
    python benchmarks/leaderboard.py docs/results/leaderboard_quick.json --step-cost docs/results/step_cost_cpu.json \\
        --markdown docs/leaderboard.md --png docs/leaderboard.png

One row per mixer of the paper-regime run: last-epoch test accuracy (mean and 95% t-interval
over seeds), its paired difference to ``none`` (same seed: same data, initialisation and
batch order), the MAE and Pearson correlation of the mixer's own label weights against the
ground-truth part shares of its own mixes (``mixing.label_noise.mix_shares``; "—" where a
mix has no geometry: ``none`` and Mixup's blend), and the cost of a mixed training step
relative to a plain one (``step_overhead.py``'s row of the mixer's ``conf/mix`` file; a mixer
at ``prob`` < 1 pays it in that share of the steps). Rows are sorted by label MAE. The
figure plots accuracy against label MAE, one point per scored mixer with its intervals as
error bars, and the unscored mixers as horizontal lines.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from paper_regime import t_interval

UNSCORED = "—"


def mix_config(overrides: list[str]) -> str:
    """The ``conf/mix`` file a paper-regime mixer runs (its ``mix=<name>`` override): its step-cost row."""
    return next(o.split("=", 1)[1] for o in overrides if o.startswith("mix="))


def interval(values: list[float | None], digits: int = 3) -> str:
    """``mean ± half-width`` of the 95% t-interval; ``—`` when a seed has no value."""
    if not values or None in values:
        return UNSCORED
    mean, half = t_interval(values)
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if math.isfinite(half) else f"{mean:.{digits}f}"


def mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or None in values else statistics.fmean(values)


def ranked(results: dict[str, dict]) -> list[str]:
    """Mixers by mean label MAE (truest labels first); unscored ones last, in run order."""
    mixers = list(results["protocol"]["mixers"])
    scored = [m for m in mixers if mean_or_none(results[m]["label_mae"]) is not None]
    return sorted(scored, key=lambda m: mean_or_none(results[m]["label_mae"])) + [m for m in mixers if m not in scored]


def table(results: dict[str, dict], step_cost: dict[str, float] | None) -> str:
    """The README's markdown table (see the module docstring)."""
    protocol = results["protocol"]
    header = ["mixer", "test acc", "Δ acc vs none (paired)", "label MAE", "label corr", "step cost (× plain)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for mixer in ranked(results):
        row = results[mixer]
        delta = UNSCORED
        if "none" in results and mixer != "none":
            pairs = zip(row["test_acc"], results["none"]["test_acc"], strict=True)
            delta = interval([a - b for a, b in pairs])
        config = mix_config(protocol["mixers"][mixer])
        cost = f"{step_cost[config]:.2f}" if step_cost and config in step_cost else UNSCORED
        cells = [mixer, interval(row["test_acc"]), delta, interval(row["label_mae"])]
        cells += [interval(row["label_correlation"], 2), cost]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = protocol["seeds"]
    lines.append("")
    lines.append(
        f"{protocol['preset']} preset, {len(seeds)} seeds {seeds}, {protocol['epochs']} epochs; mean ± 95% t-interval "
        f"over seeds; label MAE/corr on {protocol['label_pairs']} test images per seed (pairs with one label left out)."
    )
    return "\n".join(lines)


def figure(results: dict[str, dict], path: Path) -> None:
    """Test accuracy against label MAE, one point per scored mixer (95% intervals as error bars)."""
    fig, ax = plt.subplots(figsize=(8.0, 4.5), layout="constrained")
    line_styles = iter(["--", ":", "-.", (0, (5, 5)), (0, (1, 3))] * 4)
    for mixer in ranked(results):
        row = results[mixer]
        acc, acc_half = t_interval(row["test_acc"])
        if mean_or_none(row["label_mae"]) is None:
            ax.axhline(acc, color="0.4", linestyle=next(line_styles), linewidth=1, label=f"{mixer} (no geometry)")
            continue
        mae, mae_half = t_interval(row["label_mae"])
        ax.errorbar(mae, acc, xerr=_finite(mae_half), yerr=_finite(acc_half), fmt="o", capsize=3, label=mixer)
    ax.set_xlim(left=0.0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    protocol = results["protocol"]
    ax.set_xlabel("label MAE against the ground-truth part shares (lower: truer labels)")
    ax.set_ylabel("test accuracy, last epoch")
    ax.set_title(f"Paper-regime benchmark, {protocol['preset']} preset, {len(protocol['seeds'])} seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finite(half_width: float) -> float:
    """An error bar's half-width; 0 when undefined (one seed)."""
    return half_width if math.isfinite(half_width) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paper_regime", type=Path, help="paper_regime.py --json output")
    parser.add_argument("--step-cost", type=Path, default=None, help="step_overhead.py --json output")
    parser.add_argument("--markdown", type=Path, required=True, help="where the table goes")
    parser.add_argument("--png", type=Path, required=True, help="where the figure goes")
    args = parser.parse_args()
    results = json.loads(args.paper_regime.read_text())
    if "mixers" not in results.get("protocol", {}):
        raise SystemExit(
            f"{args.paper_regime} has no protocol.mixers: it was not written by this paper_regime.py "
            "(rerun benchmarks/paper_regime.py --json ...)"
        )
    step_cost = json.loads(args.step_cost.read_text())["step_cost"] if args.step_cost else None
    text = table(results, step_cost)
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(text + "\n")
    figure(results, args.png)
    print(text)
    print(f"table in {args.markdown}, figure in {args.png}")


if __name__ == "__main__":
    main()
