"""Multi-process training, sweeps and resume: the slow end-to-end paths (marked ``slow``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CONFIG_DIR, TINY_SYNTHETIC, compose_config
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from fgvc_mix.evaluation.checkpoints import evaluate
from fgvc_mix.train import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_train(
    *overrides: str, multirun: bool = False, timeout: int = 300, pythonpath: Path | None = None
) -> subprocess.CompletedProcess:
    flags = ["--multirun"] if multirun else []
    command = [sys.executable, "-m", "fgvc_mix.train", *flags, *TINY_SYNTHETIC, *overrides]
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def test_two_process_ddp_writes_one_run_and_counts_every_test_image_once(tmp_path):
    run_dir = tmp_path / "ddp"
    result = run_train(
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "optim.epochs=1",
        "dataset.options.test_size=37",  # odd: a padding sampler would count 1 image twice
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best-epoch000.ckpt", "last.ckpt"]
    assert len(list((run_dir / "tensorboard").glob("*/events.*"))) >= 1
    assert not list(tmp_path.glob("**/.pl_hydra_rank_*")) and not (REPO / ".pl_hydra_rank_1").exists()
    ddp_metrics = json.loads((run_dir / "metrics.json").read_text())
    single = evaluate(run_dir / "checkpoints" / "last.ckpt", {"num_workers": 0}, accelerator="cpu")
    assert ddp_metrics["test/acc"] == pytest.approx(single["test/acc"], abs=1e-6)
    assert round(ddp_metrics["test/acc"] * 37) == pytest.approx(ddp_metrics["test/acc"] * 37, abs=1e-4)


def test_ddp_ranks_run_the_same_syncing_forwards_in_every_step(tmp_path):
    """SnapMix at prob 0.5 under 2-process DDP: a rank that ran a train-mode (SyncBatchNorm-syncing)
    forward the other skipped would hang a GPU run with trainer.sync_batchnorm=true (issue 15)."""
    counts_dir = tmp_path / "counts"
    result = run_train(
        "mix=snapmix_scratch",  # prob 0.5
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "dataset.options.train_size=96",
        "dataset.batch_size=8",  # 6 steps per epoch on each rank
        "optim.epochs=2",
        "++trainer.limit_val_batches=1",
        "++trainer.limit_test_batches=0",
        "~callbacks.progress_bar",  # the default callbacks (rank 0's label-noise meter among them), and:
        "callbacks.mixed_images.every_n_epochs=1",  # rank 0 draws a grid in both epochs
        "callbacks.mixed_images.num_images=4",
        "callbacks.label_noise.num_pairs=16",
        "+callbacks.counter._target_=helpers.sync_counter.SyncCounter",
        f"+callbacks.counter.out_dir={counts_dir}",
        f"hydra.run.dir={tmp_path / 'run'}",
        pythonpath=Path(__file__).parent,  # helpers.sync_counter, on both ranks
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((counts_dir / f"rank{r}.json").read_text()) for r in (0, 1))
    assert 0 < len(rank0["cams"]) < 12, rank0["cams"]  # prob 0.5 really mixed some of the 12 steps, not all
    assert rank0["cams"] == rank1["cams"]  # the same train-mode CAM forwards (mix decisions) on every rank
    assert rank0["eval_cams"] and not rank1["eval_cams"]  # the grid (and the meter) ran, on rank 0 only...
    assert rank0["syncing"] == rank1["syncing"]  # ...with no train-mode (syncing) BatchNorm forward


def test_multirun_over_mix_and_prob_writes_a_summary(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train(
        "mix=cutmix,snapmix",
        "mix.prob=0.5,1",
        "optim.epochs=1",
        "trainer.accelerator=cpu",
        f"hydra.sweep.dir={sweep_dir}",
        multirun=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert {(r["mix"], r["mix.prob"]) for r in rows} == {
        ("cutmix", "0.5"),
        ("cutmix", "1"),
        ("snapmix", "0.5"),
        ("snapmix", "1"),
    }
    assert (sweep_dir / "summary.png").stat().st_size > 0 and "| job |" in (sweep_dir / "summary.md").read_text()
    # One TensorBoard root, the sweep dir; each job's run named after its overrides ("0/tensorboard/...,mix=cutmix,...")
    runs = {p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.glob("*/tensorboard/*/events.*")}
    assert len(runs) == 4 and {f"{job}/tensorboard" for job in range(4)} == {r.rsplit("/", 1)[0] for r in runs}
    for job in range(4):
        (run,) = (r.rsplit("/", 1)[1] for r in runs if r.startswith(f"{job}/"))
        assert f"mix.prob={rows[job]['mix.prob']}," in run and f"mix={rows[job]['mix']}," in run, run


def test_a_failed_sweep_job_is_reported_and_the_others_kept(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train(
        "mix.prob=1,1.5", "optim.epochs=1", "trainer.accelerator=cpu", f"hydra.sweep.dir={sweep_dir}", multirun=True
    )
    assert result.returncode != 0  # the sweep reports the failure...
    rows = {r["mix.prob"]: r for r in csv.DictReader((sweep_dir / "summary.csv").open())}
    assert rows["1"]["status"] == "completed" and float(rows["1"]["test/acc"]) >= 0
    assert rows["1.5"]["status"] == "failed" and "mix.prob" in rows["1.5"]["error"]  # ...and keeps the rest


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    base = [
        "trainer.accelerator=cpu",
        "trainer.deterministic=true",
        "logger=csv",
        "callbacks.mixed_images.every_n_epochs=100",
        *TINY_SYNTHETIC,
        "optim.epochs=3",
    ]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(compose_config(base, straight))
    train(compose_config([*base, "+trainer.max_steps=3"], interrupted))  # stopped after epoch 1 of 3 (3 batches)
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    train(compose_config([*base, "ckpt_path=last"], interrupted))
    expected = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == expected["global_step"]
    for key, value in expected["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)


def test_slurm_and_submitit_configs_compose(tmp_path):
    cfg = compose_config(["trainer=slurm", "trainer.num_nodes=2"], tmp_path)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.num_nodes == 2
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=4"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.gpus_per_node == 4
    GlobalHydra.instance().clear()
