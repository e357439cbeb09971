"""Evaluating a checkpoint: load it with its own settings, pick a device, predict, score.

Library code shared by the ``evaluate``, ``predict``, ``export`` and ``label_noise`` entry
points. The checkpoint alone is enough: it holds the model, mixer and optimiser configs
(the module's hyper-parameters) and the datamodule's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.module import FGVCModule, classification_metrics
from fgvc_mix.reports import confusion_counts, write_report

TTA_MODES = ("none", "flip")


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
