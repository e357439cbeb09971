"""The mistakes a new user makes first, each answered by one message that names the fix."""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from helpers import TINY_SYNTHETIC, compose_config, run_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from fgvc_mix.errors import UserError
from fgvc_mix.evaluation.checkpoints import select_device
from fgvc_mix.mixing import snapmix
from fgvc_mix.train import build
from fgvc_mix.training.config import build_from_config, check_mandatory
from fgvc_mix.training.module import learning_rate


def test_trainer_max_epochs_apart_from_optim_epochs_fails_naming_optim_epochs(tiny_config):
    with pytest.raises(ValueError, match=r"set optim\.epochs=1 instead of trainer\.max_epochs=1"):
        build(tiny_config("trainer.max_epochs=1", "optim.epochs=20"))


@pytest.mark.parametrize("optim", ["adamw", "cosine"])
def test_the_trainer_and_the_cosine_schedule_both_follow_optim_epochs(optim, tiny_config):
    module, _, trainer = build(tiny_config(f"optim={optim}", "optim.epochs=3", "logger=csv", "callbacks=[]"))
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert trainer.max_epochs == scheduler.T_max == 3


def test_the_paper_step_schedule_follows_optim_epochs(tiny_config):
    module, _, trainer = build(tiny_config("optim=paper", "optim.epochs=20", "logger=csv", "callbacks=[]"))
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert trainer.max_epochs == 20 and sorted(scheduler.milestones) == [8, 15, 18]  # 80/150/180 of 200


def test_an_optimizer_without_lr_trains_at_the_optimizers_default_rate(tiny_config):
    module, _, _ = build(tiny_config("optim=adamw", "~optim.optimizer.lr", "logger=csv", "callbacks=[]"))
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {group["name"]: group["lr"] for group in optimizer.param_groups}["head"] == 1e-3  # AdamW's default


def test_an_optimizer_with_no_default_lr_asks_for_optim_optimizer_lr():
    class NoDefault(torch.optim.SGD):
        def __init__(self, params, lr, momentum=0.0):
            super().__init__(params, lr=lr, momentum=momentum)

    with pytest.raises(UserError, match=r"NoDefault has no default learning rate; set optim\.optimizer\.lr"):
        learning_rate(functools.partial(NoDefault, momentum=0.9))


def test_fast_dev_run_builds_with_the_epoch_check(tiny_config):
    _, _, trainer = build(tiny_config("trainer=debug", "optim.epochs=7"))
    assert trainer.fast_dev_run and trainer.max_epochs == 1  # Lightning's own one-batch run


def test_offline_pretrained_weights_fail_with_one_message_naming_the_options(tiny_config, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    hub = tmp_path / "hub"  # an empty torchvision cache, so the download is attempted
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setattr(torch.hub, "urlopen", no_network)
    with pytest.raises(OSError) as raised:
        build(tiny_config("model=resnet18", "trainer=debug"))
    message = str(raised.value)
    assert "model.pretrained=false" in message and "model.weights_path=<file>" in message
    assert str(hub / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "name resolution" in message and raised.value.__cause__ is None


def test_predict_without_images_prints_one_line_with_a_command_and_fails(tmp_path):
    command = [sys.executable, "-m", "fgvc_mix.predict", "ckpt_path=run/last.ckpt", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Missing mandatory option images; e.g. python -m fgvc_mix.predict ckpt_path=run/last.ckpt "
        "images=<image file or folder>"  # the user's overrides (hydra.* ones aside) and the missing one
    ]


@pytest.mark.parametrize(
    ("config_name", "overrides", "missing"),
    [
        ("evaluate", ["tta=flip"], "ckpt_path"),
        ("export", ["format=onnx"], "ckpt_path"),
        ("label_noise", [], "ckpt_path"),
        ("predict", [], "ckpt_path, images"),
        ("train", ["dataset=cub"], "dataset.root"),
    ],
)
def test_each_entry_point_names_its_missing_options(config_name, overrides, missing, tmp_path, monkeypatch):
    main = importlib.import_module(f"fgvc_mix.{config_name}").main
    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", [config_name, *overrides, f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as raised:
        main()  # the entry point itself, as python -m fgvc_mix.<config_name> runs it
    message = str(raised.value.code)
    assert message.startswith(f"Missing mandatory option{'s' if ',' in missing else ''} {missing}; ")
    assert f"e.g. python -m fgvc_mix.{config_name} {' '.join(overrides)}".rstrip() in message
    assert all(f"{key}=<" in message or f"{key}=outputs/" in message for key in missing.split(", "))
    assert "\n" not in message


def test_a_complete_config_passes_the_mandatory_check(tiny_config):
    cfg = tiny_config()
    with open_dict(cfg):
        del cfg["hydra"]
    check_mandatory(cfg)  # the demo needs no option


def test_narrow_pretrained_resnet_without_weights_fails_naming_model_weights_path(tmp_path):
    cfg = compose_config(["model=resnet18", "+model.backbone_options.width=16"], tmp_path)
    with pytest.raises(ValueError, match=r"model\.weights_path to weights of this width"):
        build_from_config(cfg.model, num_classes=cfg.dataset.num_classes)


def test_onnx_export_without_onnx_names_the_extra_and_writes_nothing(tmp_path):
    blocked, cwd = tmp_path / "blocked", tmp_path / "cwd"
    blocked.mkdir()
    cwd.mkdir()
    (blocked / "onnx.py").write_text("raise ImportError('No module named onnx')\n")  # onnx not installed
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(blocked)}
    command = [sys.executable, "-m", "fgvc_mix.export", f"ckpt_path={ckpt}", "format=onnx"]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    assert "format=onnx needs the onnx package: pip install 'fgvc_mix[onnx]'" in result.stderr
    assert list(cwd.iterdir()) == [] and not ckpt.parent.exists()  # no run folder, no output folder


ONE_LINE_ERRORS = [
    (["fgvc_mix.train", "trainer.max_epochs=1"], "Error: trainer.max_epochs=1 differs from optim.epochs=20"),
    (["fgvc_mix.evaluate", "ckpt_path=missing.ckpt"], "Error: ckpt_path=missing.ckpt does not exist"),
    (["fgvc_mix.label_noise", "ckpt_path=missing.ckpt"], "Error: ckpt_path=missing.ckpt does not exist"),
    (["fgvc_mix.pretrain", "model.name=vgg16"], "Error: model.name='vgg16': pretraining supports ['resnet101'"),
    (["fgvc_mix.synthetic_export", "out", "0"], "Error: n=0: the test split has 800 images"),
    (["fgvc_mix.synthetic_export", "out", "dataset.nmu_classes=8"], "Error: Could not override 'dataset.nmu_"),
    # checked before the checkpoint is loaded (with a real one the old code failed at the first batch)
    (["fgvc_mix.evaluate", "ckpt_path=missing.ckpt", "tta=flop"], "Error: tta='flop' is not known; choose"),
    (["fgvc_mix.train", "dataset.image_size=8"], "Error: SyntheticFGVC: dataset.image_size=8 is too small"),
    (["fgvc_mix.train", "dataset.resize=warp"], "Error: dataset.resize='warp' is not known; choose 'shorter'"),
    (["fgvc_mix.train", "dataset.val_source=bogus"], "Error: dataset.val_source must be one of"),
    (["fgvc_mix.predict", "ckpt_path=missing.ckpt", "images=nowhere"], "Error: images=nowhere does not exist"),
    (["fgvc_mix.predict", "ckpt_path=missing.ckpt", "images=.", "top_k=0"], "Error: top_k=0: ask for at least"),
    (["fgvc_mix.export", "ckpt_path=missing.ckpt", "format=tflite"], "Error: format must be one of"),
    # refused when the module is built: after the (tiny) data, before any training step
    (["fgvc_mix.train", *TINY_SYNTHETIC, "mix=transmix"], "Error: mix=transmix re-weights labels by a vision"),
    (["fgvc_mix.train", *TINY_SYNTHETIC, "mix=resizemix", "+mix.cam_bn=eval"], "Error: mix.cam_bn configures"),
    (["fgvc_mix.train", *TINY_SYNTHETIC, "nonfinite_loss=explode"], "Error: nonfinite_loss must be one of"),
]
"""A command (``python -m <command>``) and the start of the one line it must print."""


@pytest.fixture(scope="module")
def one_line_error_runs(request, tmp_path_factory):
    """``{command: Future of its CompletedProcess}`` for the commands of ONE_LINE_ERRORS that the session runs, all
    started at once, one per core: each keeps one core busy (single-threaded Python imports, about 8 s), so on
    two idle cores the 16 take about half the time they take one after another."""
    test_name = "test_an_error_the_user_can_fix_prints_one_line_without_a_traceback"
    selected = [item.callspec.params["command"] for item in request.session.items if item.originalname == test_name]

    def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return run_module(command[0].removeprefix("fgvc_mix."), *command[1:], cwd=cwd)

    folders = [tmp_path_factory.mktemp("user_error") for _ in selected]  # an empty folder each, as tmp_path was
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        yield {tuple(command): pool.submit(run, command, cwd) for command, cwd in zip(selected, folders, strict=True)}


@pytest.mark.parametrize(("command", "message"), ONE_LINE_ERRORS)
def test_an_error_the_user_can_fix_prints_one_line_without_a_traceback(one_line_error_runs, command, message):
    result = one_line_error_runs[tuple(command)].result()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.num_classes=99"], r"dataset\.num_classes=99 is not supported; choose 2 <= num_classes <= 36"),
        (["dataset.options.train_size=0"], r"dataset\.options\.train_size=0; set dataset\.options\.train_size to 1"),
        (["dataset.options.seed=-1"], r"dataset\.options\.seed=-1; set it to 0 or more"),
        (["+dataset.options.num_distractors=-1"], r"dataset\.options\.num_distractors=-1; set it to 0 or more"),
        (["+dataset.options.part_scale=2"], r"dataset\.options\.part_scale=2; set it in \[0\.5, 1\.25\]"),
        (["+dataset.options.noise=-1"], r"dataset\.options\.noise=-1; set it to 0 or more"),
        (["mix=snapmix", "mix.prob=2"], r"mix\.prob must be in \[0, 1\]"),
        (["mix=snapmix", "mix.beta=0"], r"mix\.beta must be > 0"),
        (["mix=attentive_cutmix", "mix.grid=0"], r"mix\.grid must be >= 1"),
        (["mix=fmix", "mix.decay_power=0"], r"mix\.decay_power must be > 0"),
        (["mix=resizemix", "mix.scope=[0.5,0.1]"], r"mix\.scope must be \[low, high\]"),
        (["model.name=nonet"], r"model\.name='nonet' is not a known backbone"),
        (["model=resnet18", "model.pretrained=false", "+model.backbone_options.width=0"], r"width must be >= 1"),
    ],
)
def test_a_bad_dataset_mixer_or_model_option_is_a_user_error_naming_it(tiny_config, overrides, message):
    with pytest.raises(UserError, match=message):  # a plain ValueError would print a traceback from train
        build(tiny_config(*overrides))


def test_the_snapmix_function_refuses_an_unknown_same_label_rule_as_a_user_error():
    images, targets, cams = torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), torch.full((2, 8, 8), 1 / 64)
    with pytest.raises(UserError, match="same_label must be one of"):
        snapmix(images, targets, cams, same_label="max")


@pytest.mark.parametrize("accelerator", ["tpu", "gpu"])
def test_a_bad_or_unavailable_evaluate_accelerator_is_a_user_error_naming_it(accelerator, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=rf"accelerator='?{accelerator}'? .*accelerator=cpu"):
        select_device(accelerator)


def test_a_user_error_in_a_multirun_job_is_raised_for_hydra_to_record(monkeypatch):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from fgvc_mix.training.config import one_line_user_errors

    class Multirun:
        mode = RunMode.MULTIRUN

    monkeypatch.setattr(HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(HydraConfig, "get", staticmethod(lambda: Multirun()))
    with pytest.raises(UserError, match="wrong option"), one_line_user_errors():
        raise UserError("wrong option")
