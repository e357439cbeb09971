"""A real signal, sent to the training process itself after a chosen step, as a scheduler or ``kill`` would."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAfterStep(pl.Callback):
    """``+callbacks.stop._target_=helpers.sigterm.SignalAfterStep +callbacks.stop.step=4`` (``.name=KILL``: kill -9)."""

    def __init__(self, step: int, name: str = "TERM") -> None:
        self.step, self.signal = step, signal.Signals[f"SIG{name}"]

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)
