"""On a CUDA GPU: training steps with mixed precision, every explanation method (against
the CPU, on a stviz model and on a Hugging Face video transformer), attention rollout on
torchvision's MViT and Swin3D against the CPU, `stviz compare` with every method, and
`localize-eval` sharded over the GPUs with torchrun. All are marked `cuda` and skip
without a GPU; `benchmarks/gpu_check.sh` runs them with the GPU benchmark on a machine
that has one.
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
from tiny_models import (
    HF_FRAMES,
    HF_SIZE,
    MVIT_FRAMES,
    MVIT_SIZE,
    T,
    tiny_checkpoint,
    tiny_hf,
    tiny_mvit,
    tiny_stviz,
    tiny_swin3d,
    torchvision_classifier,
)

from stviz.cli import main
from stviz.core.model import AttentionModel, load_model
from stviz.datasets.synth import SynthConfig, generate
from stviz.explain import as_classifier, get_method, load_classifier
from stviz.explain.base import load_methods
from stviz.train import METRICS_FILE, TrainConfig, train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs a CUDA GPU; run benchmarks/gpu_check.sh on a GPU machine"),
]

METHODS = sorted(m for m in load_methods() if m != "attention-rollout")  # stviz models
TINY_NET = {"mask_hidden": (8, 4), "reduce_channels": 8, "lstm_hidden": 8}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, 16, 4, seed=5, cfg=SynthConfig(frames=8, size=64), workers=1)
    return out


@pytest.fixture(scope="module")
def checkpoint(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny checkpoint that knows the synthetic classes."""
    return tiny_checkpoint(data, tmp_path_factory.mktemp("m") / "tiny")


@pytest.mark.parametrize("finetune", [False, True], ids=["frozen-backbone", "finetune"])
def test_mixed_precision_training_steps(data: Path, tmp_path: Path, finetune: bool) -> None:
    cfg = TrainConfig(epochs=2, batch_size=8, frames=4, input_size=64, backbone="resnet18",
                      backbone_weights="random", network=dict(TINY_NET), device="cuda",
                      amp=True, finetune_backbone=finetune, cache_dir=str(tmp_path / "cache"),
                      lr=1e-3)
    train(data, tmp_path / "run", cfg)
    records = [json.loads(x) for x in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in records)
    model = load_model(tmp_path / "run", device="cuda", fast=False, backbone_weights="random")
    params = list(model.net.parameters())
    assert all(p.is_cuda and torch.isfinite(p).all() for p in params)


def _on(model: AttentionModel, device: str) -> AttentionModel:
    return AttentionModel(model.net.to(device), model.spec, torch.device(device))


@pytest.mark.parametrize("name", METHODS)
def test_every_method_on_cuda_agrees_with_the_cpu(name: str) -> None:
    """float32 on the GPU gives the CPU's maps (up to TF32 and summation order); with
    mixed precision (the default on CUDA) the maps stay finite and of the same shape."""
    params = {"ig": {"steps": 8}, "smoothgrad": {"samples": 4}}.get(name, {})
    method = get_method(name, **params)
    torch.manual_seed(1)
    x = torch.randn(1, T, 3, 96, 96)
    cpu = method.attribute(as_classifier(tiny_stviz(size=96)), x, 1)
    gpu_clf = as_classifier(_on(tiny_stviz(size=96), "cuda"))
    assert gpu_clf.amp  # mixed precision is the default on CUDA
    mixed = method.attribute(gpu_clf, x, 1)
    assert mixed.spatial.is_cuda and mixed.spatial.shape == cpu.spatial.shape
    assert torch.isfinite(mixed.spatial).all() and torch.isfinite(mixed.temporal).all()
    gpu_clf.amp = False
    full = method.attribute(gpu_clf, x, 1)
    if name == "smoothgrad":  # the GPU draws other noise than the CPU: the seed repeats it
        again = method.attribute(gpu_clf, x, 1)
        torch.testing.assert_close(full.spatial, again.spatial, rtol=0, atol=0)
        return
    for ours, ref in ((full.spatial, cpu.spatial), (full.temporal, cpu.temporal)):
        cos = _cosine(ours, ref)
        assert cos > 0.999, f"{name}: cosine {cos:.4f} between the GPU's and the CPU's maps"


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.cpu().flatten(), b.flatten(), dim=0))


@pytest.mark.parametrize("name", ["attention-rollout", "gradcam"])
def test_transformer_methods_on_cuda_agree_with_the_cpu(tmp_path: Path, name: str) -> None:
    pytest.importorskip("transformers")
    tiny_hf("videomae", tmp_path / "videomae")
    torch.manual_seed(2)
    x = torch.randn(1, HF_FRAMES, 3, HF_SIZE, HF_SIZE)
    method = get_method(name)
    target = None if name == "attention-rollout" else 1
    cpu = method.attribute(load_classifier(tmp_path / "videomae", device="cpu"), x, target)
    gpu_clf = load_classifier(tmp_path / "videomae", device="cuda")
    mixed = method.attribute(gpu_clf, x, target)
    assert mixed.spatial.is_cuda and torch.isfinite(mixed.spatial).all()
    gpu_clf.amp = False
    full = method.attribute(gpu_clf, x, target)
    assert _cosine(full.spatial, cpu.spatial) > 0.999, name


@pytest.mark.parametrize("build", [tiny_mvit, tiny_swin3d])
def test_torchvision_rollout_on_cuda_agrees_with_the_cpu(build) -> None:
    """MViT's pooled and Swin3D's windowed attention, recomputed and rolled out on the GPU
    (the recomputation's check against the module's output passes there too)."""
    torch.manual_seed(2)
    x = torch.randn(1, MVIT_FRAMES, 3, MVIT_SIZE, MVIT_SIZE)
    method = get_method("attention-rollout", discard=0.5)
    cpu = method.attribute(torchvision_classifier(build(), MVIT_FRAMES, MVIT_SIZE), x)
    gpu = method.attribute(torchvision_classifier(build(), MVIT_FRAMES, MVIT_SIZE, "cuda"), x)
    assert gpu.spatial.is_cuda and _cosine(gpu.spatial, cpu.spatial) > 0.999


def test_compare_every_method_on_cuda(data: Path, checkpoint: Path, tmp_path: Path) -> None:
    video = sorted((data / "videos").glob("test_*.mp4"))[0]
    out = tmp_path / "cmp"
    baselines = ",".join(m for m in METHODS if m != "attention")
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(video), "-b", baselines, "-p", "ig.steps=8", "--model",
              str(checkpoint), "--device", "cuda", "--out", str(out), "--quiet"])
    assert exit_info.value.code == 0
    summary = json.loads((out / "compare.json").read_text())
    assert sorted(summary["methods"]) == METHODS
    for name, result in summary["methods"].items():
        assert np.isfinite(result["temporal"]).all(), name


def test_localize_eval_sharded_over_the_gpus_with_torchrun(data: Path, checkpoint: Path,
                                                           tmp_path: Path) -> None:
    gpus = torch.cuda.device_count()
    out = tmp_path / "loc"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus),
           "--master_port", "29541", "-m", "stviz", "localize-eval", str(data),
           "--model", str(checkpoint), "--methods", "attention,gradcam", "--out", str(out),
           "--device", "cuda", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_videos"] == 4 and not report["skipped_videos"]
    assert len(list((out / "cache").glob("*/*.npz"))) == 8  # the ranks wrote every entry
    for name in ("attention", "gradcam"):
        values = report["methods"][name]
        assert all(v is None or np.isfinite(v) for v in values.values()), name
