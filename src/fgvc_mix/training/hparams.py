"""The run's HParams entry in TensorBoard: a short list of columns that leads with what the run varies.

TensorBoard's HParams tab sorts columns itself (those flagged ``differs`` first, then by name) and
ticks only the first ``HPARAMS_TICKED``, so logging the whole config hid the overrides behind
``dataset/...``. The full config stays in ``<output dir>/.hydra/config.yaml`` and the checkpoint.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams

SUMMARY_METRICS = ("val/acc", "test/acc", "test/acc_top5", "test/acc_macro")
EXPERIMENT_GROUPS = ("experiment", "dataset", "model", "mix", "optim")
"""Config groups that describe an experiment (their chosen options are HParams columns); the others say how it runs."""
HPARAMS_TICKED = 5
"""TensorBoard's HParams tab ticks (shows) its first five columns; the others are listed, unticked, on its left."""


def experiment_params(cfg: DictConfig, pretrained_backbone: bool) -> tuple[dict[str, Any], list[str]]:
    """The HParams columns, and the names among them that this run varies.

    Columns: every key set on the command line (Hydra's task overrides, ``mix.prob`` as ``mix/prob``, a
    group as its option) but the paths that ``hydra.job.config.override_dirname.exclude_keys`` also keeps out
    of the run name; ``seed``; the chosen experiment/dataset/model/mix/optim options. The rest of the config
    is in ``<output dir>/.hydra/config.yaml`` and the checkpoint. Varied: the overrides and ``seed``.
    ``optim/backbone_lr_scale`` shows the scale applied: 1.0 for a backbone trained from scratch.
    """
    hydra_cfg = HydraConfig.get()
    choices = hydra_cfg.runtime.choices
    not_varied = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    params: dict[str, Any] = {}
    for override in hydra_cfg.overrides.task:
        key = override.split("=", 1)[0].lstrip("+")
        if override.startswith("~") or key in not_varied:  # a deleted key has no value to show
            continue
        value = choices[key] if key in choices else OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
        _flatten(key.replace(".", "/"), value, params)
    params.setdefault("seed", cfg.seed)
    varied = list(params)
    for group in EXPERIMENT_GROUPS:
        if choices.get(group) is not None:
            params.setdefault(group, choices[group])
    if "optim/backbone_lr_scale" in params and not pretrained_backbone:
        params["optim/backbone_lr_scale"] = 1.0  # FGVCModule.configure_optimizers scales only pretrained weights
    return params, varied


def _flatten(name: str, value: Any, params: dict[str, Any]) -> None:
    """``params[name/key/...] = leaf`` for every leaf (the first value of a name wins); Hydra's
    ``_target_``/``_partial_`` left out; a list or ``None`` as text, the types HParams shows."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not str(key).startswith("_"):
                _flatten(f"{name}/{key}", item, params)
    else:
        params.setdefault(name, value if isinstance(value, bool | int | float | str) else str(value))


@rank_zero_only
def declare_hparams(logger: TensorBoardLogger, params: dict[str, Any], varied: list[str]) -> None:
    """Write the HParams tab's entry for this run: ``params`` as columns, ``SUMMARY_METRICS`` as metric columns.

    TensorBoard orders the columns itself: those flagged ``differs`` first, each part by name, and ticks the
    first ``HPARAMS_TICKED``; the order of ``params`` is lost. So ``varied`` (the overrides and the seed) is
    flagged, and these lead. The tab reads each metric column from the run's own scalar of that name.
    Lightning's ``log_hyperparams(params, metrics)`` would also log every metric's given value at step 0:
    a fake point (0.0) on the Scalars charts that smoothing drags the real curve towards.
    """
    writer = logger.experiment.file_writer
    experiment, start, end = hparams(params, dict.fromkeys(SUMMARY_METRICS, 0.0))  # metric values unused: names
    value = experiment.value[0]
    content = HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = info.name in varied
    value.metadata.plugin_data.content = content.SerializeToString()
    for summary in (experiment, start, end):
        writer.add_summary(summary)
