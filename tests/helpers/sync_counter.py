"""A callback that counts, per training batch on its rank, the forwards that DDP ranks must agree on.

Under ``trainer.sync_batchnorm=true`` every train-mode BatchNorm forward all-reduces, so ranks must
run the same number of them in each step or they hang. SyncBatchNorm refuses CPU tensors, so a CPU
test counts them instead: ``cams`` are CAM forwards with the model in train mode (the training step's,
or a callback's that left it so), ``syncing`` the train-mode BatchNorm calls (each one a collective
under SyncBatchNorm), ``eval_cams`` CAM forwards in eval mode (the image-grid callback's). Each rank
writes ``rank<N>.json`` into ``out_dir`` when training ends.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytorch_lightning as pl
from torch import nn

from fgvc_mix.mixing import CamForward


class SyncCounter(pl.Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.batch = ""
        self.counts: dict[str, Counter] = {"cams": Counter(), "syncing": Counter(), "eval_cams": Counter()}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Every CAM forward (the step's mixer, the image grid, the label-noise meter) is a CamForward call.
        self.original_call = CamForward.__call__

        def counted(cam_forward, model, images, targets):
            train_mode = model.training and cam_forward.bn == "batch"  # cam_bn=eval switches to eval mode itself
            self.counts["cams" if train_mode else "eval_cams"][self.batch] += 1
            return self.original_call(cam_forward, model, images, targets)

        CamForward.__call__ = counted
        for layer in pl_module.model.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.register_forward_pre_hook(self._count_syncing)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        CamForward.__call__ = self.original_call

    def _count_syncing(self, layer: nn.Module, inputs) -> None:
        if layer.training:
            self.counts["syncing"][self.batch] += 1

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self.batch = f"{trainer.current_epoch}/{batch_idx}"

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.counts))
