"""Building objects from Hydra configs, with the user's mistakes reported as themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from fgvc_mix.errors import UserError


def _config_dir() -> Path:
    """The config tree: ``conf/`` at the top of the checkout, which a built wheel carries as ``fgvc_mix/conf``.

    One source of truth: the wheel's copy is made by the build (``package-dir`` in
    pyproject.toml), never kept in the repository.
    """
    package = Path(__file__).resolve().parents[1]  # src/fgvc_mix (this file is fgvc_mix/training/config.py)
    packaged = package / "conf"
    return packaged if packaged.is_dir() else package.parents[1] / "conf"


CONFIG_DIR = _config_dir()
CONFIG_PATH = str(CONFIG_DIR)
"""For ``@hydra.main(config_path=CONFIG_PATH)``: an absolute path, so every entry point finds the same tree."""

RUN_NAME_LIMIT = 200
"""Characters of a run name: far below a file name's 255, so a long override list still makes a folder."""


def run_name(override_dirname: str) -> str:
    """A TensorBoard run's folder name: the run's overrides (``mix.prob=0.5,seed=1``), ``default`` without any.

    ``${run_name:${hydra:job.override_dirname}}`` in ``conf/logger``. Path separators in values
    become ``_`` (a run is one folder); a name over ``RUN_NAME_LIMIT`` keeps its start plus a
    hash of the whole, so that two long names stay two runs.
    """
    name = override_dirname.replace("/", "_").replace("\\", "_") or "default"
    if len(name) <= RUN_NAME_LIMIT:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: RUN_NAME_LIMIT - len(digest) - 1]}~{digest}"


OmegaConf.register_new_resolver("run_name", run_name, replace=True)


MANDATORY_EXAMPLES = {
    "ckpt_path": "outputs/<date>/<time>/checkpoints/last.ckpt",
    "images": "<image file or folder>",
    "dataset.root": "<dataset folder>",
}
"""Example values of the mandatory (``???``) options, for the command :func:`check_mandatory` suggests."""


def check_mandatory(cfg: DictConfig) -> None:
    """Exit with one line naming every mandatory (``???``) option left unset and the command that sets it.

    Called first by every entry point: otherwise omegaconf raises a traceback at the
    option's first use. The suggested command is the user's own plus the missing options.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if not missing:
        return
    hydra_cfg = HydraConfig.get()
    command = [
        f"python -m fgvc_mix.{hydra_cfg.job.config_name}",
        *hydra_cfg.overrides.task,
        *(f"{key}={MANDATORY_EXAMPLES.get(key, '<value>')}" for key in missing),
    ]
    plural = "s" if len(missing) > 1 else ""
    raise SystemExit(f"Missing mandatory option{plural} {', '.join(missing)}; e.g. {' '.join(command)}")


@contextmanager
def one_line_user_errors() -> Iterator[None]:
    """An entry point's ``UserError`` ends the command with its message alone, not a traceback.

    In a multirun the error is re-raised as it is, so Hydra records the failed job and the
    sweep summary lists it.
    """
    try:
        yield
    except UserError as error:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        raise SystemExit(f"Error: {error}") from None


def build_from_config(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, re-raising a constructor's ``ValueError``/``OSError`` unwrapped.

    Hydra wraps every constructor error in ``InstantiationException`` around a repr of
    the original; a wrong option should read as the one message that names it.
    """
    try:
        return instantiate(config, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, ValueError | OSError):
            raise error.__cause__ from None
        raise


def compose_config(overrides: list[str], output_dir: str | Path, config_name: str = "train") -> DictConfig:
    """The packaged config composed as ``python -m fgvc_mix.<config_name>`` would, outside a Hydra run.

    For tests, notebooks and benchmarks: ``${hydra:runtime.output_dir}`` points at ``output_dir``.
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def milestones(epochs: int, fractions: list[float]) -> list[int]:
    """A step schedule's epochs as fractions of the run: ``${milestones:${..epochs},[0.4,0.75,0.9]}``.

    So that ``optim.epochs`` alone sets the schedule's length; the paper's 80/150/180 of 200
    epochs becomes 8/15/18 of 20.
    """
    return sorted({max(1, round(epochs * fraction)) for fraction in fractions})


OmegaConf.register_new_resolver("milestones", milestones, replace=True)


def check_epoch_key(cfg: DictConfig) -> None:
    """``optim.epochs`` is the one epoch count: the learning-rate schedule spans it, ``trainer.max_epochs`` follows it.

    A run stopped early by ``trainer.max_epochs`` would never reach the end of its schedule
    (a cosine schedule that never decays), so a differing value is a mistake, not an option.
    """
    max_epochs, epochs = cfg.trainer.get("max_epochs"), cfg.optim.epochs
    if max_epochs != epochs:
        raise UserError(
            f"trainer.max_epochs={max_epochs} differs from optim.epochs={epochs}, which also sets the length of the "
            f"learning-rate schedule; set optim.epochs={max_epochs} instead of trainer.max_epochs={max_epochs}"
        )
