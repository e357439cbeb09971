"""Sweep summary: one table and one plot for a Hydra multirun.

Each job writes ``metrics.json`` (test metrics, or ``status: failed`` with the error)
into its own directory; for a job that failed before writing it, the callback records
the error Hydra caught. ``SweepSummary`` (a Hydra callback) rebuilds the summary after
every job and prints it when the sweep ends, the failed jobs named under the table, so
the other jobs' results are kept and shown even when the sweep stops on an error:

    <multirun dir>/summary.csv, summary.md, summary.png

``python -m fgvc_mix.sweep <multirun dir>`` rebuilds it by hand (e.g. after a SLURM sweep). This is the
library half (``train`` writes job results, Hydra calls the callback); ``sweep.py`` is only the command line.
"""

from __future__ import annotations

import atexit
import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

RESULT_FILE = "metrics.json"
METRIC_COLUMNS = ("test/acc", "test/acc_top5", "test/acc_macro")


def write_job_result(output_dir: str | Path, metrics: dict[str, float] | None, error: BaseException | None = None):
    """Record one run's outcome where the sweep summary will find it."""
    result: dict[str, Any] = {"status": "failed" if error else "completed", **(metrics or {})}
    if error is not None:
        result["error"] = f"{type(error).__name__}: {error}"
    Path(output_dir, RESULT_FILE).write_text(json.dumps(result, indent=2))


def _job_overrides(job_dir: Path) -> dict[str, str]:
    path = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(path.read_text()) if path.is_file() else []
    return dict(item.split("=", 1) for item in overrides or [] if "=" in item)


def collect_results(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job directory: its overrides, status and test metrics (missing result = failed)."""
    rows = []
    for job_dir in sorted(
        (p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    ):
        result_path = job_dir / RESULT_FILE
        result = (
            json.loads(result_path.read_text()) if result_path.is_file() else {"status": "failed", "error": "no result"}
        )
        rows.append({"job": int(job_dir.name), **_job_overrides(job_dir), **result})
    return rows


def _swept_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Override keys whose value differs between jobs (what the sweep varies)."""
    keys = {k for row in rows for k in row if k not in {"job", "status", "error", *METRIC_COLUMNS} and "/" not in k}
    return sorted(k for k in keys if len({str(row.get(k)) for row in rows}) > 1)


def _aggregate(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Mean ± std of test/acc over seeds for each setting of the other swept keys."""
    settings = [k for k in keys if k != "seed"]
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        if row["status"] == "completed" and "test/acc" in row:
            groups.setdefault(tuple(str(row.get(k)) for k in settings), []).append(float(row["test/acc"]))
    return [
        {
            **dict(zip(settings, setting, strict=True)),
            "runs": len(values),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        }
        for setting, values in sorted(groups.items())
    ]


def write_summary(sweep_dir: str | Path) -> Path | None:
    """Write summary.csv / summary.md / summary.png into ``sweep_dir``; returns the CSV path."""
    sweep_dir = Path(sweep_dir)
    rows = collect_results(sweep_dir)
    if not rows:
        return None
    keys = _swept_keys(rows)
    columns = ["job", *keys, "status", *METRIC_COLUMNS, "error"]
    with (sweep_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    groups = _aggregate(rows, keys)
    lines = ["| " + " | ".join(columns[:-1]) + " |", "|" + "---|" * (len(columns) - 1)]
    for row in rows:
        cells = [_format(row.get(c, "")) for c in columns[:-1]]
        lines.append("| " + " | ".join(cells) + " |")
    if groups and "seed" in keys:
        setting_keys = [k for k in keys if k != "seed"]
        lines += [
            "",
            "| " + " | ".join([*setting_keys, "runs", "test/acc mean ± std"]) + " |",
            "|" + "---|" * (len(setting_keys) + 2),
        ]
        for group in groups:
            cells = [group[k] for k in setting_keys] + [str(group["runs"]), f"{group['mean']:.4f} ± {group['std']:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    _plot(groups, [k for k in keys if k != "seed"], sweep_dir / "summary.png")
    return sweep_dir / "summary.csv"


def _format(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _plot(groups: list[dict[str, Any]], keys: list[str], path: Path) -> None:
    """test/acc against the first swept key, one line per value of the second (error bars over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    x_key = keys[0] if keys else None
    series_key = keys[1] if len(keys) > 1 else None
    series: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        series.setdefault(group.get(series_key, "") if series_key else "", []).append(group)
    for name, members in sorted(series.items()):
        xs = [group.get(x_key, "all") for group in members]
        numeric = all(_is_number(x) for x in xs)
        order = sorted(range(len(xs)), key=lambda i: float(xs[i]) if numeric else str(xs[i]))
        positions = [float(xs[i]) if numeric else str(xs[i]) for i in order]
        axis.errorbar(
            positions,
            [members[i]["mean"] for i in order],
            yerr=[members[i]["std"] for i in order],
            marker="o",
            capsize=3,
            label=f"{series_key}={name}" if series_key else None,
        )
    axis.set_xlabel(x_key or "run")
    axis.set_ylabel("test/acc")
    if series_key:
        axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _is_number(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


class SweepSummary(Callback):
    """Hydra callback: refresh the sweep summary after each job and print it when the sweep ends.

    When a job fails, Hydra's sweeper re-raises its error after the batch of jobs and never calls
    ``on_multirun_end``; the summary is then printed when the process exits (after Hydra's error).
    """

    def __init__(self) -> None:
        self._unreported: str | None = None  # the sweep directory until on_multirun_end prints its summary

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._unreported = str(config.hydra.sweep.dir)
        atexit.register(self._print_unreported)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        job_dir = Path(config.hydra.runtime.output_dir)
        if job_return.status == JobStatus.FAILED and not (job_dir / RESULT_FILE).is_file():
            # the error Hydra caught (the public ``return_value`` re-raises it)
            write_job_result(job_dir, None, job_return._return_value)
        write_summary(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        atexit.unregister(self._print_unreported)
        self._unreported = None
        print_summary(config.hydra.sweep.dir)

    def _print_unreported(self) -> None:
        if self._unreported is not None and Path(self._unreported).is_dir():
            print_summary(self._unreported)


def failed_jobs(rows: list[dict[str, Any]]) -> list[str]:
    """One line per job that did not complete: its number, its swept settings and its error."""
    keys = _swept_keys(rows)
    lines = []
    for row in rows:
        if row["status"] != "completed":
            setting = ", ".join(f"{key}={row[key]}" for key in keys if key in row)
            error = " ".join(str(row.get("error", "no result")).split())
            lines.append(f"  job {row['job']}{f' ({setting})' if setting else ''}: {error}")
    return lines


def print_summary(sweep_dir: str | Path) -> None:
    """Rebuild the summary and print its table, the failed jobs and its absolute path
    (``hydra.sweep.dir`` is relative)."""
    path = write_summary(sweep_dir)
    if path is None:
        print(f"No job directories in {Path(sweep_dir).resolve()}")
        return
    markdown = path.with_suffix(".md").resolve()
    rows = collect_results(sweep_dir)
    failed = failed_jobs(rows)
    failures = f"{len(failed)} of {len(rows)} jobs failed:\n" + "\n".join(failed) + "\n\n" if failed else ""
    print(f"\n{markdown.read_text()}\n{failures}Sweep summary: {markdown} (and summary.csv, summary.png beside it)")
