"""Run options refused before anything starts: each used to train silently or end in a traceback.

``optim.epochs=0`` reported an untrained model as completed, ``label_smoothing=2`` trained,
``trainer.devices=99`` started 98 extra training processes on a 2-core machine, ``seed=abc`` and
``dataset.batch_size=0`` ended in tracebacks.
"""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig

from fgvc_mix.errors import UserError

GPU_ACCELERATORS = ("gpu", "cuda")


def check_run_options(cfg: DictConfig) -> None:
    """Every check below, on a composed training config."""
    _check_count("optim.epochs", cfg.optim.epochs, "train at least one epoch, e.g. optim.epochs=20")
    for key in ("batch_size", "eval_batch_size"):
        if cfg.dataset.get(key) is not None:
            _check_count(f"dataset.{key}", cfg.dataset[key], f"set dataset.{key}=16 or another count of images")
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise UserError(f"seed={cfg.seed!r} is not a whole number; set e.g. seed=0")
    smoothing = cfg.label_smoothing
    if isinstance(smoothing, bool) or not isinstance(smoothing, int | float) or not 0 <= smoothing < 1:
        raise UserError(f"label_smoothing={smoothing!r} must be in [0, 1); 0 turns it off, the usual value is 0.1")
    check_devices(cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("devices", 1))


def _check_count(key: str, value: object, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key}={value!r} must be a whole number of at least 1; {fix}")


def available_devices(accelerator: str) -> tuple[int, str]:
    """How many devices ``accelerator`` has here, and their name: GPUs, or CPU cores for ``cpu``."""
    if accelerator in GPU_ACCELERATORS or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.cuda.device_count(), "GPUs"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores, "CPU cores"


def check_devices(accelerator: str, devices: object) -> None:
    """Refuse more devices than the machine has before Lightning starts a process for each.

    ``devices`` as Lightning takes it: a count, ``-1``/``auto`` (all), or a list or ``"0,2"`` of indices.
    """
    if devices in ("auto", -1, "-1") or accelerator not in ("auto", "cpu", *GPU_ACCELERATORS):
        return
    text = str(devices).strip()
    if isinstance(devices, int) and not isinstance(devices, bool):
        wanted = devices
    elif text.isdigit():
        wanted = int(text)
    else:
        return  # indices: Lightning names the ones that do not exist
    have, what = available_devices(accelerator)
    if wanted < 1 or wanted > have:
        raise UserError(
            f"trainer.devices={devices} but this machine has {have} {what} for trainer.accelerator={accelerator}; "
            f"set trainer.devices to 1..{have} (one training process each), or trainer.devices=auto"
        )
