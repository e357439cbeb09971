"""Evaluate a checkpoint on its test split: ``python -m fgvc_mix.evaluate ckpt_path=... [tta=flip]``.

The checkpoint alone is enough: it holds the model, mixer and optimiser configs
(the module's hyper-parameters) and the datamodule's settings. ``dataset.root``,
``dataset.batch_size`` and ``dataset.num_workers`` may be overridden, e.g. when the
data moved. Besides top-1, top-5 and mean per-class accuracy, the run writes a report
into its output directory: per-class accuracy (CSV), the confusion matrix (PNG) and
the most-confused class pairs by name (CSV and markdown).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import Tensor
from torch.nn import functional as F

from fgvc_mix.config import CONFIG_PATH
from fgvc_mix.data import FGVCDataModule
from fgvc_mix.module import FGVCModule, classification_metrics

TTA_MODES = ("none", "flip")
CONFUSED_PAIRS = 20  # how many most-confused pairs the report lists


def load_checkpoint(
    ckpt_path: str | Path, dataset_overrides: dict[str, Any] | None = None
) -> tuple[FGVCModule, FGVCDataModule]:
    """The module (in eval mode) and the datamodule stored in ``ckpt_path``; checks they agree on the classes."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path} does not exist; pass the path of a .ckpt written by fgvc_mix.train")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if "datamodule_hyper_parameters" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{path} was not written by fgvc_mix.train: it lacks the module or dataset settings")
    settings = dict(checkpoint["datamodule_hyper_parameters"])
    settings.update({k: v for k, v in (dataset_overrides or {}).items() if v is not None})
    datamodule = FGVCDataModule(**settings)
    module = FGVCModule.load_from_checkpoint(path, map_location="cpu")
    if module.hparams.num_classes != datamodule.hparams.num_classes:
        raise ValueError(
            f"{path} holds a {module.hparams.num_classes}-class model but its dataset settings say "
            f"{datamodule.hparams.num_classes} classes; evaluate it on the dataset it was trained on"
        )
    return module.eval(), datamodule


def select_device(accelerator: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu`` or ``gpu``/``cuda``."""
    if accelerator not in ("auto", "cpu", "gpu", "cuda"):
        raise ValueError(f"accelerator must be auto, cpu or gpu, got {accelerator!r}")
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"accelerator={accelerator} but no CUDA GPU is visible; use accelerator=cpu")
    return torch.device("cuda")


def confusion_counts(targets: Tensor, predictions: Tensor, num_classes: int) -> Tensor:
    """(K, K) counts of (true class, predicted class) pairs in one batch."""
    cells = targets * num_classes + predictions
    return torch.bincount(cells, minlength=num_classes * num_classes).view(num_classes, num_classes)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, images: Tensor, tta: str = "none") -> Tensor:
    """Class probabilities of the prediction logits; ``tta=flip`` averages them with the mirrored image's."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    probabilities = model(images).float().softmax(dim=1)
    if tta == "flip":
        probabilities = (probabilities + model(images.flip(-1)).float().softmax(dim=1)) / 2
    return probabilities


def evaluate(
    ckpt_path: str | Path,
    dataset_overrides: dict[str, Any] | None = None,
    accelerator: str = "auto",
    tta: str = "none",
    output_dir: str | Path | None = None,
) -> dict[str, float]:
    """Test metrics (``test/acc``, ``test/acc_top5``, ``test/acc_macro``, ``test/loss``) of a checkpoint.

    With ``output_dir`` the full report is written there (see :func:`write_report`).
    """
    module, datamodule = load_checkpoint(ckpt_path, dataset_overrides)
    device = select_device(accelerator)
    module.to(device)
    datamodule.setup("test")
    num_classes = module.hparams.num_classes
    metrics = classification_metrics(num_classes, "test/").to(device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum, count = 0.0, 0
    for images, targets in datamodule.test_dataloader():
        images, targets = images.to(device), targets.to(device)
        probabilities = predict_probabilities(module, images, tta)
        metrics.update(probabilities, targets)
        loss_sum += F.nll_loss(probabilities.clamp_min(1e-12).log(), targets, reduction="sum").item()
        count += len(targets)
        confusion += confusion_counts(targets, probabilities.argmax(dim=1), num_classes)
    results = {name: value.item() for name, value in metrics.compute().items()}
    results["test/loss"] = loss_sum / max(count, 1)
    if output_dir is not None:
        class_names = module.hparams.class_names or [str(i) for i in range(num_classes)]
        write_report(Path(output_dir), results, confusion.cpu(), class_names, tta)
    return results


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


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> float:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = evaluate(cfg.ckpt_path, dict(cfg.dataset), cfg.accelerator, cfg.tta, output_dir)
    for name, value in sorted(metrics.items()):
        print(f"  {name:<18} {value:.4f}")
    pairs = (output_dir / "confused_pairs.md").read_text()
    print(f"\nMost-confused class pairs (tta={cfg.tta}):\n{pairs}")
    print(f"Report (per-class accuracy, confusion matrix, confused pairs): {output_dir}")
    return metrics["test/acc"]


if __name__ == "__main__":
    main()
