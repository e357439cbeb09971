"""The mixers the config tree offers, read from ``conf/mix/`` so that a new mixer is one YAML away.

The benchmarks' rows (``benchmarks/step_overhead.py``, ``benchmarks/paper_regime.py``) and the
tests' parametrisations list ``conf/mix/*.yaml`` through these functions instead of naming the
mixers by hand: a mixer YAML added to ``conf/mix/`` is trained, timed and ranked without editing
them. The exceptions are data here, each with its reason.
"""

from __future__ import annotations

from pathlib import Path

from fgvc_mix.training.config import CONFIG_DIR

NEEDS_TRANSFORMER: dict[str, str] = {
    "transmix": "re-weights labels by a class-token vision transformer's attention; a CNN cannot run it",
}
"""Mix options that only a vision transformer can train: left out where a CNN (ResNet, the tests' CNN) trains."""

PROB_VARIANTS: dict[str, str] = {
    "snapmix_scratch": "snapmix at prob 0.5: the same step as the snapmix row, mixed in half the batches",
}
"""Mix options that repeat another one at a different ``prob``: trained, but not a benchmark row of their own."""


def mix_options(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Every ``mix=<name>`` the tree offers: the YAMLs directly in ``<config_dir>/mix`` (shared nodes sit below)."""
    return sorted(path.stem for path in (Path(config_dir) / "mix").glob("*.yaml"))


def cnn_mix_options(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The mix options a CNN trains with: all but ``NEEDS_TRANSFORMER``."""
    return [name for name in mix_options(config_dir) if name not in NEEDS_TRANSFORMER]


def benchmark_mix_options(config_dir: Path = CONFIG_DIR) -> list[str]:
    """The rows of the ResNet benchmarks: the CNN mix options but the ``PROB_VARIANTS``."""
    return [name for name in cnn_mix_options(config_dir) if name not in PROB_VARIANTS]
