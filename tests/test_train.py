"""Training, resuming, 2-process DDP, and `stviz evaluate`, on tiny synthetic data.

A random ResNet-18 at 64x64 keeps feature extraction to a fraction of a second per
clip; the assertions are about the pipeline, not about accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stviz.cli import main
from stviz.core.model import load_model
from stviz.datasets.synth import SynthConfig, generate
from stviz.errors import StvizError
from stviz.train import METRICS_FILE, TrainConfig, train

TINY_NET = {"mask_hidden": (8, 4), "reduce_channels": 8, "lstm_hidden": 8}


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, 20, 10, seed=3, cfg=SynthConfig(frames=8, size=64), workers=1)
    return out


def tiny_config(tmp: Path, **overrides) -> TrainConfig:
    cfg = {"epochs": 2, "batch_size": 8, "frames": 4, "input_size": 64, "backbone": "resnet18",
           "backbone_weights": "random", "network": dict(TINY_NET), "device": "cpu",
           "cache_dir": str(tmp / "cache"), "lr": 1e-3}
    cfg.update(overrides)
    return TrainConfig(**cfg)


def test_train_writes_metrics_and_a_loadable_checkpoint(synth_data: Path, tmp_path: Path):
    result = train(synth_data, tmp_path / "run", tiny_config(tmp_path))
    lines = (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("train_loss", "train_ce", "train_tv", "train_contrast", "train_unimodal",
                "train_accuracy", "val_accuracy", "val_loss", "lr"):
        assert all(np.isfinite(r[key]) for r in records), key
    model = load_model(tmp_path / "run", device="cpu", fast=False,
                       backbone_weights="random")
    assert model.classes == json.loads((synth_data / "annotations.json").read_text())["classes"]
    assert model.spec.metrics["epoch"] == result.best_epoch
    assert model.spec.provenance  # the data and the command that made it


def test_features_are_cached_across_runs(synth_data: Path, tmp_path: Path):
    train(synth_data, tmp_path / "a", tiny_config(tmp_path, epochs=1))
    cached = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(cached) == 20
    stamps = [p.stat().st_mtime_ns for p in cached]
    train(synth_data, tmp_path / "b", tiny_config(tmp_path, epochs=1))
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read, not recomputed


def test_resume_continues_and_refuses_to_clobber(synth_data: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(synth_data, run, tiny_config(tmp_path, epochs=1))
    with pytest.raises(StvizError, match="--resume"):
        train(synth_data, run, tiny_config(tmp_path, epochs=2))
    train(synth_data, run, tiny_config(tmp_path, epochs=3), resume=True)
    epochs = [json.loads(x)["epoch"] for x in (run / METRICS_FILE).read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_two_process_ddp_with_gloo(synth_data: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29517", "-m", "stviz", "train", str(synth_data),
           "--out", str(tmp_path / "ddp"), "--epochs", "2", "--batch-size", "8", "-t", "4",
           "--input-size", "64", "--backbone", "resnet18", "--backbone-weights", "random",
           "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(x) for x in (tmp_path / "ddp" / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 20  # each rank did a share


def test_evaluate_cli_writes_report(synth_data: Path, tmp_path: Path, capsys):
    train(synth_data, tmp_path / "run", tiny_config(tmp_path, epochs=1))
    out = tmp_path / "eval"
    args = ["evaluate", str(synth_data), "--model", str(tmp_path / "run"), "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["n_videos"] == 10
    assert sum(map(sum, report["confusion"])) == 10
    acc = np.trace(np.array(report["confusion"])) / 10
    assert report["accuracy"] == pytest.approx(acc)
    assert set(report["per_class_accuracy"]) == set(report["classes"])
    assert 0 <= report["attention_mass_in_segment"] <= 1
    assert 0 <= report["mask_argmax_in_box"] <= 1
    assert (out / "confusion.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as again:  # never overwrite silently
        main(args)
    assert again.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
