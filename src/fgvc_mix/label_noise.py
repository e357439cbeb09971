"""Label-noise meter of a checkpoint: each mixing rule's label weights against the ground truth.

    python -m fgvc_mix.label_noise ckpt_path=outputs/.../checkpoints/last.ckpt [num_pairs=512 seed=0]
    python -m fgvc_mix.label_noise ckpt_path=... dataset.root=/data/CUB_200_2011 truth=parts|box

Scores on the checkpoint's own dataset: the synthetic birds' part masks, or a real dataset's
keypoints (``truth=parts``: CUB, NABirds) or object boxes (``truth=box``: CUB, NABirds, Cars,
Aircraft, Dogs), defined in ``data.truth``; the measurement itself is
``evaluation.label_noise.checkpoint_label_noise``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from fgvc_mix.evaluation.label_noise import checkpoint_label_noise
from fgvc_mix.training.config import CONFIG_PATH, check_mandatory, one_line_user_errors


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="label_noise")
def main(cfg: DictConfig) -> float:
    check_mandatory(cfg)
    # cam_variants=null (or ~cam_variants) scores the exact CAMs alone; ={} would merge into the defaults
    variants = OmegaConf.to_container(cfg.cam_variants, resolve=True) if cfg.get("cam_variants") else {}
    with one_line_user_errors():
        report = checkpoint_label_noise(
            cfg.ckpt_path, cfg.num_pairs, cfg.seed, cfg.beta, variants, cfg.truth, cfg.dataset.root
        )
    truth = cfg.truth or "the dataset's first kind"
    print(f"Label noise of {cfg.ckpt_path} (test split, truth={truth}, SnapMix boxes Beta({cfg.beta}, {cfg.beta}), ")
    print(f"CAMs in eval mode, seed {cfg.seed}):")
    print(report.table())
    return report.mae_ratio


if __name__ == "__main__":
    main()
