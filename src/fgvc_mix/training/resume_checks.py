"""Checkpoints read with their faults named, and resumes that would change what the run trains refused.

A truncated ``last.ckpt`` used to end in torch's ``PytorchStreamReader failed ... central directory``,
which names no file; resuming a 16-class checkpoint with 8 classes in a 33-line size mismatch; and
``mix=cutmix`` resuming a SnapMix run was accepted, so the run's saved settings said CutMix for an
epoch trained with SnapMix. All are refused here before Lightning loads anything, so nothing is written.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from fgvc_mix.errors import MissingFileError, UserError
from fgvc_mix.training.preemption import checkpoint_path

RESUME_KEYWORDS = ("last", "hpc", "best", "registry")
"""``ckpt_path`` values Lightning resolves itself (``last``: this run's ``checkpoints/last.ckpt``)."""
MEANING = ("num_classes", "model", "mix", "label_smoothing")
"""Module settings a resumed run must keep: they change what the weights mean or how they are trained."""
INIT_ONLY = ("pretrained", "weights_path")
"""Model settings that only choose the initial weights, which the checkpoint's replace."""
SHOWN = 3


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` on the CPU; a missing, truncated or corrupt file is a :class:`UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"ckpt_path={path} does not exist; pass the path of a .ckpt written by fgvc_mix.train")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as error:
        # torch's first sentence ("PytorchStreamReader failed reading zip archive: ..."), not its advice
        reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{path} cannot be read as a checkpoint ({reason}): the file is truncated or corrupt. Use another "
            "checkpoint (e.g. checkpoints/best-*.ckpt of the same run) or train again"
        ) from None
    if not isinstance(checkpoint, dict):
        raise UserError(f"{path} is not a checkpoint written by fgvc_mix.train (it holds {type(checkpoint).__name__})")
    return checkpoint


def resume_path(ckpt_path: str | Path | None, output_dir: str | Path) -> Path | None:
    """The file a resume reads: ``ckpt_path`` itself, ``last`` as this run's last.ckpt, ``None`` when there is none."""
    if ckpt_path is None or (str(ckpt_path) in RESUME_KEYWORDS and str(ckpt_path) != "last"):
        return None
    if str(ckpt_path) == "last":
        last = checkpoint_path(output_dir)
        return last if last.is_file() else None  # Lightning warns and trains from the start
    return Path(ckpt_path)


def check_resume(ckpt_path: str | Path | None, hparams: dict[str, Any], output_dir: str | Path) -> None:
    """Refuse a resume whose checkpoint cannot be read or was trained with other :data:`MEANING` settings."""
    path = resume_path(ckpt_path, output_dir)
    if path is None:
        return
    stored = read_checkpoint(path).get("hyper_parameters")
    if not isinstance(stored, dict):
        raise UserError(f"ckpt_path={path} was not written by fgvc_mix.train: it lacks the module settings")
    changes = [
        change
        for key in MEANING
        if key in stored and key in hparams
        for change in _differences(key, _comparable(key, stored[key]), _comparable(key, hparams[key]))
    ]
    if changes:
        more = f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
        raise UserError(
            f"ckpt_path={path} was trained with other settings: {'; '.join(changes[:SHOWN])}{more}. A resumed run "
            "keeps them: drop those overrides. To train on from these weights with new settings, start a new run"
        )


def _comparable(key: str, value: Any) -> Any:
    if key == "model" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in INIT_ONLY}
    return value


def _differences(name: str, stored: Any, now: Any) -> list[str]:
    """``name=<checkpoint's> ...`` for every leaf that differs; another ``_target_`` alone when the class differs."""
    if isinstance(stored, dict) and isinstance(now, dict) and stored.get("_target_") != now.get("_target_"):
        return _differences(f"{name}._target_", stored.get("_target_"), now.get("_target_"))
    if isinstance(stored, dict) and isinstance(now, dict):
        return [
            change
            for key in sorted(set(stored) | set(now), key=str)
            for change in _differences(f"{name}.{key}", stored.get(key), now.get(key))
        ]
    return [] if stored == now else [f"{name}={stored} in the checkpoint, {now} in this run"]
