"""CamPartShareMeter: its charts share the global-step x axis of every other chart; its JSON stays per epoch."""

from __future__ import annotations

import csv
import json

from fgvc_mix.train import train


def test_cam_part_share_meter_logs_at_the_global_step_before_fine_tuning_and_after_every_epoch(tiny_config, tmp_path):
    history = tmp_path / "cam.json"
    meter = "+callbacks.cam_part_share={_target_:fgvc_mix.evaluation.cam_quality.CamPartShareMeter,num_images:8,"
    meter += f"json_path:{history}}}"
    # 48 training images in batches of 16: 3 optimizer steps per epoch, so steps and epochs differ
    train(tiny_config("optim.epochs=2", "logger=csv", "callbacks=[]", meter, "+trainer.enable_progress_bar=false"))
    records = json.loads(history.read_text())
    assert [r["epoch"] for r in records] == [0, 1, 2]  # the JSON stays per epoch (benchmarks/paper_regime.py)
    assert all(0.0 < r["area"] < 0.2 and 0.0 <= r["target"] <= 1.0 for r in records)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    logged = [row for row in rows if row["cam/part_share"]]
    assert [int(row["step"]) for row in logged] == [0, 3, 6]  # before fine-tuning, then after each epoch's 3 steps
    assert all(row["cam/part_share_agnostic"] and row["cam/part_share_ratio"] for row in logged)
