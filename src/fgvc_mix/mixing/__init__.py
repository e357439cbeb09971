"""Mixing core: every mixer of ``conf/mix/`` and the pieces they share, as pure tensor code.

No Lightning here: these functions run on any device, never loop over the batch in
Python and never synchronise the host with the device, so the LightningModule (or any
other training loop) can call them inside ``training_step``. The mixer objects wrap
them; the CAM-guided ones hold a ``CamForward``, the one piece that runs the model.
"""

from fgvc_mix.mixing.attentive_cutmix import AttentiveCutMix, attentive_cutmix
from fgvc_mix.mixing.batch import MixedBatch, mixed_cross_entropy, no_mix
from fgvc_mix.mixing.boxes import box_areas, paste, random_boxes, sample_beta
from fgvc_mix.mixing.cam import class_activation_maps
from fgvc_mix.mixing.cam_forward import CamForward
from fgvc_mix.mixing.cutmix import cutmix
from fgvc_mix.mixing.fmix import FMix, fmix
from fgvc_mix.mixing.mixers import CutMix, Mixer, Mixup, NoMix, SnapMix
from fgvc_mix.mixing.mixup import mixup
from fgvc_mix.mixing.resizemix import ResizeMix, resizemix
from fgvc_mix.mixing.saliencymix import SaliencyMix, saliencymix
from fgvc_mix.mixing.snapmix import snapmix, snapmix_weights
from fgvc_mix.mixing.transmix import TransMix, transmix_labels, transmix_weights

__all__ = [
    "AttentiveCutMix",
    "CamForward",
    "CutMix",
    "FMix",
    "MixedBatch",
    "Mixer",
    "Mixup",
    "NoMix",
    "ResizeMix",
    "SaliencyMix",
    "SnapMix",
    "TransMix",
    "attentive_cutmix",
    "box_areas",
    "class_activation_maps",
    "cutmix",
    "fmix",
    "mixed_cross_entropy",
    "mixup",
    "no_mix",
    "paste",
    "random_boxes",
    "resizemix",
    "saliencymix",
    "sample_beta",
    "snapmix",
    "snapmix_weights",
    "transmix_labels",
    "transmix_weights",
]
