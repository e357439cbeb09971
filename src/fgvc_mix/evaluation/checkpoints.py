"""Evaluating a checkpoint: load it with its own settings, pick a device, predict, score.

Library code shared by the ``evaluate``, ``predict``, ``export`` and ``label_noise`` entry
points. The checkpoint alone is enough: it holds the model, mixer and optimiser configs
(the module's hyper-parameters) and the datamodule's settings.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, TypeVar

import torch
from hydra.errors import InstantiationException
from torch import Tensor
from torch.nn import functional as F

from fgvc_mix.data import FGVCDataModule
from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.reports import confusion_counts, write_report
from fgvc_mix.models.backbone import architecture_only
from fgvc_mix.training.module import FGVCModule, classification_metrics
from fgvc_mix.training.resume_checks import read_checkpoint

TTA_MODES = ("none", "flip")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
CHECKPOINT_KEYS = {"hyper_parameters", "datamodule_hyper_parameters", "state_dict"}
ANOTHER_VERSION = "If another version of fgvc_mix wrote it, load it with that version, or retrain"
T = TypeVar("T")


def load_checkpoint(
    ckpt_path: str | Path, dataset_overrides: dict[str, Any] | None = None
) -> tuple[FGVCModule, FGVCDataModule]:
    """The module (in eval mode) and the datamodule stored in ``ckpt_path``; checks they agree on the classes.

    A checkpoint another version of fgvc_mix wrote, that this one cannot rebuild, is refused with
    one message naming the file and what does not fit (a missing setting, a setting that no longer
    builds, weights that do not fit the model), not with a traceback from inside the constructor.
    """
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path)  # missing, truncated or corrupt: one message naming the file
    if not checkpoint.keys() >= CHECKPOINT_KEYS:
        raise UserError(f"{path} was not written by fgvc_mix.train: it lacks the module or dataset settings")
    settings = dict(checkpoint["datamodule_hyper_parameters"])
    settings.update({k: v for k, v in (dataset_overrides or {}).items() if v is not None})
    datamodule = _build(path, FGVCDataModule, settings, "dataset settings")
    # Checkpoints from before the channels_last option lack it: they were trained NCHW.
    # The stored weights replace any pretrained ones: build without downloading or reading those.
    with architecture_only():
        hyper_parameters = {"channels_last": False, **checkpoint["hyper_parameters"]}
        module = _build(path, FGVCModule, hyper_parameters, "hyper-parameters")
    _check_weights(path, module.state_dict(), checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)  # what FGVCModule.load_from_checkpoint does, after the checks
    module.load_state_dict(checkpoint["state_dict"])
    if module.hparams.num_classes != datamodule.hparams.num_classes:
        raise UserError(
            f"{path} holds a {module.hparams.num_classes}-class model but its dataset settings say "
            f"{datamodule.hparams.num_classes} classes; evaluate it on the dataset it was trained on"
        )
    return module.eval(), datamodule


def _build(path: Path, cls: type[T], settings: dict[str, Any], what: str) -> T:
    """``cls(**settings)`` from a checkpoint's stored settings (ones this version does not know are dropped)."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    missing = [p.name for p in parameters if p.default is inspect.Parameter.empty and p.name not in settings]
    if missing:
        raise UserError(
            f"{path} cannot be loaded: its {what} lack {', '.join(missing)} ({cls.__name__} needs them). "
            f"{ANOTHER_VERSION}"
        )
    try:
        return cls(**{p.name: settings[p.name] for p in parameters if p.name in settings})
    except (InstantiationException, TypeError, ValueError, OSError) as error:
        raise UserError(
            f"{path} cannot be loaded: its {what} do not build a {cls.__name__} here ({_reason(error)}). "
            f"{ANOTHER_VERSION}"
        ) from None


def _reason(error: Exception) -> str:
    """One line: Hydra's own text (target and cause) without its HYDRA_FULL_ERROR hint, else ``Type: message``."""
    if isinstance(error, InstantiationException):
        return " ".join(str(error).split(", set env var HYDRA_FULL_ERROR")[0].split())
    return f"{type(error).__name__}: {error}"


def _check_weights(path: Path, expected: dict[str, Tensor], stored: dict[str, Tensor], shown: int = 5) -> None:
    """Raise naming the keys (the first ``shown`` of each kind) where ``stored`` does not fit ``expected``."""
    missing = [key for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    reshaped = [
        f"{key} {tuple(stored[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in stored and stored[key].shape != expected[key].shape
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:shown])}" + (" ..." if len(keys) > shown else "")
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("stored vs model shape", reshaped))
        if keys
    ]
    if problems:
        raise UserError(
            f"{path} cannot be loaded: its weights do not fit the model its hyper-parameters build here "
            f"({'; '.join(problems)}). {ANOTHER_VERSION}"
        )


def check_class_names(ckpt_path: str | Path, trained: list[str] | None, datamodule: FGVCDataModule) -> None:
    """Refuse data whose classes differ from the checkpoint's: labels would be scored against the wrong names.

    A user's own folder (``dataset=folder``) may have changed since training, or ``dataset.root`` point elsewhere.
    """
    found = datamodule.class_names
    if trained and list(trained) != list(found):
        label = next((i for i, (a, b) in enumerate(zip(trained, found, strict=False)) if a != b), None)
        if label is None:
            differs = f"{len(trained)} classes in the checkpoint, {len(found)} in the data"
        else:
            differs = f"class {label} is {trained[label]!r} in the checkpoint but {found[label]!r} in the data"
        hp = datamodule.hparams
        raise UserError(
            f"the classes of {ckpt_path} differ from those of dataset={hp.name} at {hp.root} ({differs}); "
            "evaluate it on the data it was trained on (dataset.root=<that folder>)"
        )


def select_device(accelerator: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu`` or ``gpu``/``cuda``."""
    if accelerator not in ACCELERATORS:
        raise UserError(
            f"accelerator={accelerator!r} is not known; choose accelerator=auto (a GPU when there is one), "
            "accelerator=cpu or accelerator=gpu"
        )
    if accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"accelerator={accelerator} but no CUDA GPU is visible; use accelerator=cpu")
    return torch.device("cuda")


def check_tta(tta: str) -> None:
    """Refuse an unknown ``tta`` before the checkpoint is loaded, not at the first batch."""
    if tta not in TTA_MODES:
        raise UserError(
            f"tta={tta!r} is not known; choose tta=none (the image as it is) or tta=flip "
            "(average with the mirrored image's prediction)"
        )


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, images: Tensor, tta: str = "none") -> Tensor:
    """Class probabilities of the prediction logits; ``tta=flip`` averages them with the mirrored image's."""
    check_tta(tta)
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
    check_tta(tta)
    device = select_device(accelerator)
    module, datamodule = load_checkpoint(ckpt_path, dataset_overrides)
    module.to(device)
    datamodule.setup("test")
    check_class_names(ckpt_path, module.hparams.class_names, datamodule)
    num_classes = module.hparams.num_classes
    metrics = classification_metrics(num_classes, "test/").to(device)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    loss_sum, count = 0.0, 0
    for batch in datamodule.test_dataloader():
        images, targets = datamodule.to_device(batch, device)  # decodes here with dataset.decode=gpu
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
