"""Evaluation reports: confusion counts and matrix figure, per-class accuracy, most-confused pairs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CONFUSED_PAIRS = 20  # how many most-confused pairs the report lists


def confusion_counts(targets: Tensor, predictions: Tensor, num_classes: int) -> Tensor:
    """(K, K) counts of (true class, predicted class) pairs in one batch."""
    cells = targets * num_classes + predictions
    return torch.bincount(cells, minlength=num_classes * num_classes).view(num_classes, num_classes)


def most_confused_pairs(confusion: Tensor, class_names: list[str], top: int = CONFUSED_PAIRS) -> list[dict[str, Any]]:
    """Off-diagonal (true, predicted) cells with the most images, largest first; empty cells are left out."""
    off_diagonal = confusion.clone()
    off_diagonal.fill_diagonal_(0)
    counts, indices = off_diagonal.flatten().topk(min(top, off_diagonal.numel()))
    support = confusion.sum(dim=1)
    pairs = []
    for value, index in zip(counts.tolist(), indices.tolist(), strict=True):
        if value == 0:
            break
        true, predicted = divmod(index, confusion.shape[1])
        pairs.append(
            {
                "true": class_names[true],
                "predicted": class_names[predicted],
                "count": value,
                "share_of_true": value / max(int(support[true]), 1),
            }
        )
    return pairs


def confusion_matrix_figure(confusion: Tensor, class_names: list[str]):
    """Row-normalised confusion matrix; class names on the axes only when there are few enough to read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = confusion.float() / confusion.sum(dim=1, keepdim=True).clamp_min(1)
    size = min(4 + 0.25 * len(class_names), 24)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(rows.numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    if len(class_names) <= 40:
        ticks = range(len(class_names))
        axes.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        axes.set_yticks(ticks, class_names, fontsize=7)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    figure.tight_layout()
    return figure


def plot_confusion_matrix(confusion: Tensor, class_names: list[str], path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = confusion_matrix_figure(confusion, class_names)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(
    output_dir: Path, metrics: dict[str, float], confusion: Tensor, class_names: list[str], tta: str
) -> None:
    """``metrics.json``, ``per_class_accuracy.csv``, ``confusion_matrix.png``, ``confused_pairs.{csv,md}``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps({**metrics, "tta": tta}, indent=2) + "\n")
    support = confusion.sum(dim=1)
    with open(output_dir / "per_class_accuracy.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["class", "support", "accuracy"])
        for index, name in enumerate(class_names):
            correct, total = int(confusion[index, index]), int(support[index])
            writer.writerow([name, total, f"{correct / total:.4f}" if total else ""])
    plot_confusion_matrix(confusion, class_names, output_dir / "confusion_matrix.png")
    pairs = most_confused_pairs(confusion, class_names)
    with open(output_dir / "confused_pairs.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["true", "predicted", "count", "share_of_true"])
        writer.writeheader()
        writer.writerows(pairs)
    lines = ["| true class | predicted as | images | share of true class |", "|---|---|---:|---:|"]
    lines += [f"| {p['true']} | {p['predicted']} | {p['count']} | {p['share_of_true']:.1%} |" for p in pairs]
    (output_dir / "confused_pairs.md").write_text("\n".join(lines) + "\n")
