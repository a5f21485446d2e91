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
import torch

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


def test_cosine_schedule_falls_from_lr_to_zero_over_the_epochs(synth_data: Path,
                                                                 tmp_path: Path):
    run = tmp_path / "run"
    train(synth_data, run, tiny_config(tmp_path, epochs=3, lr_schedule="cosine"))
    lrs = [json.loads(x)["lr"] for x in (run / METRICS_FILE).read_text().splitlines()]
    # (1 + cos(pi * e / 3)) / 2 of 1e-3 for epochs e = 0, 1, 2
    assert lrs == pytest.approx([1e-3, 7.5e-4, 2.5e-4])
    with pytest.raises(StvizError, match="lr schedule 'step' is unknown"):
        train(synth_data, tmp_path / "other", tiny_config(tmp_path, lr_schedule="step"))


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


def test_train_cli_switches_beyond_the_paper_are_recorded_and_load_back(synth_data: Path,
                                                                        tmp_path: Path):
    run = tmp_path / "run"
    args = ["train", str(synth_data), "--out", str(run), "--epochs", "1", "--batch-size", "8",
            "-t", "4", "--input-size", "64", "--backbone", "resnet18", "--backbone-weights",
            "random", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--quiet",
            "--spatial-pooling", "mask", "--temporal-input", "delta", "--attention-window", "3",
            "--attention-floor", "0.2", "--coords", "--lambda-area", "0.5", "--area-target",
            "0.2", "--lambda-tv-time", "0.01", "--attention-source", "input-change",
            "--classifier-hidden", "12", "--lambda-entropy", "0.05",
            "--attention-temperature", "0.5", "--attention-floor-temperature", "2",
            "--lr-schedule", "cosine"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    model = load_model(run, device="cpu", fast=False, backbone_weights="random")
    net = model.spec.network
    assert (net.spatial_pooling, net.temporal_input, net.attention_window, net.attention_floor,
            net.coords) == ("mask", "delta", 3, 0.2, True)
    assert (net.attention_source, net.classifier_hidden, net.attention_temperature,
            net.attention_floor_temperature) == ("input-change", 12, 0.5, 2.0)
    assert model.spec.provenance["train_config"]["lr_schedule"] == "cosine"
    loss = model.spec.provenance["train_config"]["loss"]
    assert loss == {"tv": 1e-5, "contrast": 1e-4, "unimodal": 1.0, "area": 0.5,
                    "area_target": 0.2, "tv_time": 0.01, "entropy": 0.05}
    record = json.loads((run / METRICS_FILE).read_text().splitlines()[0])
    assert np.isfinite(record["train_area"]) and np.isfinite(record["train_tv_time"])
    with pytest.raises(SystemExit) as bad:  # an even window is refused before any work
        main([*args[:-2], "--attention-window", "2", "--overwrite"])
    assert bad.value.code == 2


def _toy_features(n: int, seed: int) -> tuple:
    """Feature clips (n, T=8, C=8, 4, 4) where only the actor's cell tells the class.

    Channel 0 marks the actor's look, channel 1 the distractors' look. Over the actor's
    three-frame window its cell's channel 2 + label ramps up and stays lit after it (a
    change that persists, like a turn or a new colour); each distractor does the same
    with a random class channel at a time of its own, so pooling everything confuses
    classes."""
    rng = np.random.default_rng(seed)
    t, c, side = 8, 8, 4
    x = rng.normal(0, 0.3, (n, t, c, side, side)).astype(np.float32)
    labels = rng.integers(0, 3, n)
    cells = np.zeros((n, 2), np.int64)
    windows = np.zeros((n, t), bool)
    ramp = np.minimum(np.arange(1, t + 1) / 3, 1.0) * 2  # 2/3, 4/3, 2, 2, ...
    for i in range(n):
        spots = rng.permutation(side * side)[:3]
        (ay, ax), *others = (divmod(int(s), side) for s in spots)
        cells[i] = ay, ax
        x[i, :, 0, ay, ax] += 2
        start = int(rng.integers(1, 5))
        windows[i, start:start + 3] = True
        x[i, start:, 2 + labels[i], ay, ax] += ramp[:t - start]
        for oy, ox in others:
            x[i, :, 1, oy, ox] += 2
            s = int(rng.integers(0, 6))
            x[i, s:, 2 + rng.integers(0, 3), oy, ox] += ramp[:t - s]
    return (torch.from_numpy(x), torch.from_numpy(labels), cells, windows)


# The default model's switches and loss weights (Makefile, LOCALIZING), at toy widths.
LOCALIZING = dict(spatial_pooling="mask", temporal_input="rectified",
                  attention_source="input-change", attention_temperature=0.25,
                  attention_floor=0.2, classifier_hidden=32)
LOCALIZING_LOSS = dict(area=1.0, area_target=0.15, contrast=0.003, entropy=0.6)


def _train_toy_head(loss: dict | None = None, **switches) -> tuple[float, float, float]:
    """Accuracy, mask argmax on the actor's cell, and the temporal AP of the weights
    against the actor's window, on held-out toy clips, after 30 epochs on 240 (a few
    seconds on a CPU)."""
    from stviz.core.losses import LossWeights, total_loss
    from stviz.core.network import AttentionHead, NetworkConfig
    from stviz.evaluate.temporal import temporal_ap

    torch.manual_seed(0)
    x, y, _, _ = _toy_features(240, seed=0)
    cfg = NetworkConfig(num_classes=3, in_channels=8, mask_hidden=(16, 8), reduce_channels=16,
                        lstm_hidden=16, **switches)
    head = AttentionHead(cfg)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    lw = LossWeights(**(loss or {}))
    for _epoch in range(30):
        for s in range(0, 240, 24):
            out = head(x[s:s + 24])
            loss_value = total_loss(out.logits, out.masks, out.weights, y[s:s + 24], lw)["loss"]
            opt.zero_grad()
            loss_value.backward()
            opt.step()
    xt, yt, cells, windows = _toy_features(60, seed=1)
    with torch.no_grad():
        out = head.eval()(xt)
    argmax = out.masks.flatten(2).argmax(-1).numpy()  # (n, T)
    on_actor = float((argmax == (cells[:, 0] * 4 + cells[:, 1])[:, None]).mean())
    weights = out.weights.numpy().astype(float)
    ap = float(np.mean([temporal_ap(w, inside) for w, inside in zip(weights, windows)]))
    return float((out.logits.argmax(1) == yt).float().mean()), on_actor, ap


def test_localizing_head_finds_the_actor_and_ranks_the_window_above_the_paper():
    """The default model's recipe, trained from labels only on toy features: the mask
    lands on the actor's cell far above chance (1/16), and the temporal weights rank
    the actor's window first, where the paper's head ranks the frames after it (where
    its accumulated state is complete) above the window. On the toy any weighting
    classifies, so the weights stay close to uniform; only their ranking is tested."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra threads only contend with the other worker
    try:
        accuracy, on_actor, ap = _train_toy_head(LOCALIZING_LOSS, **LOCALIZING)
        _, _, paper_ap = _train_toy_head()
    finally:
        torch.set_num_threads(threads)
    assert accuracy > 0.8, accuracy
    assert on_actor > 0.6, on_actor
    chance = 3 / 8  # the window holds 3 of 8 frames
    assert ap > max(paper_ap, chance) + 0.1, (ap, paper_ap)


class _RunsCode:
    """Unpickling this object would call os.system: what a crafted state file holds."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_refuses_a_crafted_state_and_runs_nothing(synth_data: Path, tmp_path: Path,
                                                         capsys):
    run = tmp_path / "run"
    train(synth_data, run, tiny_config(tmp_path, epochs=1))
    state = run / "last_state.pt"
    saved = torch.load(state, weights_only=True)  # a real resume state is plain data
    marker = tmp_path / "code-ran"
    torch.save({**saved, "history": _RunsCode(marker)}, state)
    args = ["train", str(synth_data), "--out", str(run), "--resume", "--epochs", "2",
            "--batch-size", "8", "-t", "4", "--input-size", "64", "--backbone", "resnet18",
            "--backbone-weights", "random", "--cache-dir", str(tmp_path / "cache"),
            "--device", "cpu", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "holds objects other than tensors and plain values" in err
    assert not marker.exists()
    epochs = [json.loads(x)["epoch"] for x in (run / METRICS_FILE).read_text().splitlines()]
    assert epochs == [1]  # nothing trained either


def test_an_empty_validation_set_is_announced(synth_data: Path, tmp_path: Path):
    with pytest.warns(UserWarning, match="the validation set is empty"):
        train(synth_data, tmp_path / "run", tiny_config(tmp_path, epochs=1, val_fraction=0.01))
