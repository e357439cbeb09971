"""Evaluate a checkpoint on its test split: ``python -m fgvc_mix.evaluate ckpt_path=... [tta=flip]``.

``dataset.root``, ``dataset.batch_size`` and ``dataset.num_workers`` may be overridden,
e.g. when the data moved. Besides top-1, top-5 and mean per-class accuracy, the run
writes a report into its output directory: per-class accuracy (CSV), the confusion
matrix (PNG) and the most-confused class pairs by name (CSV and markdown).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fgvc_mix.evaluation.checkpoints import evaluate
from fgvc_mix.training.config import CONFIG_PATH, check_mandatory, one_line_user_errors


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> float:
    check_mandatory(cfg)
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    with one_line_user_errors():
        metrics = evaluate(cfg.ckpt_path, dict(cfg.dataset), cfg.accelerator, cfg.tta, output_dir)
    for name, value in sorted(metrics.items()):
        print(f"  {name:<18} {value:.4f}")
    pairs = (output_dir / "confused_pairs.md").read_text()
    print(f"\nMost-confused class pairs (tta={cfg.tta}):\n{pairs}")
    print(f"Report (per-class accuracy, confusion matrix, confused pairs): {output_dir}")
    return metrics["test/acc"]


if __name__ == "__main__":
    main()
