"""Videos per second of `stviz localize-eval` per method, and the spatial metrics on
10,000 frames.

Data: a small `stviz synth` test set made on the fly in a temporary folder (--videos
clips of 32 frames at 128x128). Model: synth10-lite0 when installed, else an untrained
model of the same architecture (EfficientNet-Lite0 with its offline ImageNet weights,
random head); the output says which. Each method runs alone into a fresh folder (no
cache), with faithfulness (--steps) and without; videos/s is over the whole run after
the model is loaded (decoding, explaining, metrics, reports).

Spatial metrics: `spatial_metrics` (pointing game, mass in box, both box accuracies)
on 10,000 random 7x7 maps at UCF101-24's 320x240 frame size, and MaxBoxAccV2 (100
thresholds) at work_size 60x80 on the same frames and at full size on 1,000 of them.

    .venv/bin/python benchmarks/bench_eval.py [--methods attention gradcam saliency]
        [--videos 4] [--steps 8] [--device cpu] [--no-localize]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stviz.core.checkpoint import DEFAULT_MODEL, build_network
from stviz.core.device import resolve_device
from stviz.core.model import AttentionModel, load_model
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.datasets.synth import SynthConfig, generate
from stviz.errors import StvizError
from stviz.evaluate.localize import localize_eval
from stviz.evaluate.scoring import DEFAULT_STEPS
from stviz.evaluate.spatial import max_box_acc_v2, spatial_metrics
from stviz.explain import from_stviz

FRAMES, SIZE = 32, 128  # the synthetic clips (stviz synth's defaults)


def default_or_untrained(device: torch.device, classes: list[str]) -> tuple[AttentionModel, str]:
    """(model, what it is): the installed default model, or an untrained stand-in."""
    try:
        return load_model(None, device), f"{DEFAULT_MODEL} (the default model)"
    except StvizError as exc:
        why = str(exc).split(";")[0]
    torch.manual_seed(0)
    spec = ModelSpec(network=NetworkConfig(num_classes=len(classes)), classes=classes)
    model = AttentionModel(build_network(spec).to(device).eval(), spec, device)
    return model.use_inference_backbone(), (
        f"untrained {spec.backbone} model of the default architecture ({why}); times are "
        "the same as a trained one's")


def bench_localize(args: argparse.Namespace, device: torch.device) -> None:
    with tempfile.TemporaryDirectory(prefix="stviz-bench-eval-") as tmp:
        data = Path(tmp) / "data"
        generate(data, 0, args.videos, seed=1, cfg=SynthConfig(frames=FRAMES, size=SIZE))
        classes = json.loads((data / "annotations.json").read_text())["classes"]
        model, what = default_or_untrained(device, classes)
        clf = from_stviz(model)
        print(f"model: {what}")
        print(f"data: {args.videos} synthetic clips, {FRAMES} frames at {SIZE}x{SIZE}; "
              f"T={clf.frames} at {clf.size}x{clf.size}")
        print(f"{'method':16s} {'faithfulness':>14s} {'videos/s':>9s} {'s/video':>8s}")
        for method in args.methods:
            for steps in (args.steps, None):
                out = Path(tmp) / f"out-{method}-{steps}"
                start = time.perf_counter()
                localize_eval(data, out, methods=(method,), model=clf,
                              faithfulness=steps is not None, steps=steps or DEFAULT_STEPS)
                took = time.perf_counter() - start
                mode = f"{steps} steps" if steps else "off"
                print(f"{method:16s} {mode:>14s} {args.videos / took:9.3f} "
                      f"{took / args.videos:8.2f}", flush=True)


def bench_spatial(n: int = 10_000, frame: tuple[int, int] = (240, 320)) -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((n, 7, 7)).astype(np.float32)
    x1, y1 = rng.integers(0, 200, n), rng.integers(0, 140, n)
    boxes = np.stack([x1, y1, x1 + rng.integers(20, 120, n), y1 + rng.integers(20, 100, n)],
                     axis=1)[:, None].astype(np.float64)
    h, w = frame
    rows = []
    start = time.perf_counter()
    spatial_metrics(maps, boxes, frame_size=frame)
    rows.append((f"spatial_metrics, {n} frames at {w}x{h}", time.perf_counter() - start, n))
    start = time.perf_counter()
    max_box_acc_v2(maps, boxes, frame_size=frame, work_size=(60, 80))
    rows.append((f"max_box_acc_v2, {n} frames at work size 80x60", time.perf_counter() - start,
                 n))
    k = n // 10
    start = time.perf_counter()
    max_box_acc_v2(maps[:k], boxes[:k], frame_size=frame)
    rows.append((f"max_box_acc_v2, {k} frames at {w}x{h}", time.perf_counter() - start, k))
    for name, took, frames in rows:
        print(f"{name:48s} {took:7.2f} s  ({1000 * took / frames:.2f} ms/frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["attention", "gradcam", "saliency"])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-localize", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {device}")
    if not args.no_localize:
        bench_localize(args, device)
    bench_spatial()


if __name__ == "__main__":
    main()
