"""Backbones that return a spatial feature map, and the CAM-ready classifier built on them."""

from fgvc_mix.models.classifier import FGVCClassifier, build_classifier

__all__ = ["FGVCClassifier", "build_classifier"]
