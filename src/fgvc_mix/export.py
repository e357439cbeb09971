"""Export a checkpoint for deployment: ``python -m fgvc_mix.export ckpt_path=... format=torchscript|onnx``.

The exported model is the classifier in eval mode: normalised (B, 3, image_size,
image_size) images in, the prediction logits out (the sum of the prediction heads;
no auxiliary head). A JSON file next to it records the class names and the input
pipeline (resize, crop, mean, std) the model expects.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.checkpoints import load_checkpoint
from fgvc_mix.training.config import CONFIG_PATH, check_mandatory, one_line_user_errors

FORMATS = {"torchscript": ".pt", "onnx": ".onnx"}


def check_format(format: str) -> None:
    """Fail before anything is read or written when the export cannot run (an unknown format, ONNX without onnx)."""
    if format not in FORMATS:
        raise UserError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    if format == "onnx":
        try:
            import onnx  # noqa: F401  (torch.onnx needs it to write the file)
        except ImportError:
            raise ImportError("format=onnx needs the onnx package: pip install 'fgvc_mix[onnx]'") from None


def export(ckpt_path: str | Path, format: str = "torchscript", output: str | Path | None = None) -> Path:
    """Write the deployable model (and ``<output>.json``) and return its path.

    ``output`` defaults to the checkpoint's name with the format's suffix, in the
    checkpoint's folder.
    """
    check_format(format)
    module, datamodule = load_checkpoint(ckpt_path)
    model: nn.Module = module.model.eval()
    hp = datamodule.hparams
    path = Path(output) if output else Path(ckpt_path).with_suffix(FORMATS[format])
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, hp.image_size, hp.image_size)
    with torch.no_grad():
        if format == "torchscript":
            torch.jit.trace(model, example).save(str(path))
        else:
            export_onnx(model, example, path)
    metadata = {
        "format": format,
        "input": "float32 (B, 3, image_size, image_size), RGB in [0, 1] then normalised by mean and std",
        "output": "prediction logits (B, num_classes)",
        "image_size": hp.image_size,
        "resize_size": hp.resize_size,
        "resize": hp.resize,  # square: warp to resize_size^2; shorter: shorter side to resize_size
        "mean": list(hp.mean),
        "std": list(hp.std),
        "class_names": module.hparams.class_names,
    }
    path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """ONNX with a dynamic batch dimension; needs the ``onnx`` package (:func:`check_format`)."""
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["images"],
        output_names=["logits"],
        dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    check_mandatory(cfg)
    with one_line_user_errors():
        path = export(cfg.ckpt_path, cfg.format, cfg.output)
    print(f"Exported {cfg.format} model: {path}")
    print(f"Input pipeline and class names: {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
