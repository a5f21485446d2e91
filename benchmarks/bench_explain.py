"""Seconds per 16-frame clip of every explanation method, and `stviz explain` end to end.

The model is the default one (synth10-lite0) when it is installed; otherwise a freshly
built, untrained model of the same architecture (EfficientNet-Lite0 with its offline
ImageNet weights, random head), saved to a temporary checkpoint for the end-to-end runs.
The output says which. Method times are the best of --repeats on one clip at 224x224
(attention also against plain inference); the end-to-end times are the wall time of
`stviz explain` as a user runs it (a new process: imports, model loading, decoding,
explaining, rendering every frame, writing) on a 10-second 340x256 video at 25 fps, in
default mode and with --dense. `--dense-methods` adds the rate of dense explanation
(windows of T frames every T/2, in-process, decoding included, no rendering) in video
frames per second, the GPU benchmark's figure.

With --transformer the model is instead a video transformer with random weights, saved
and loaded as users load theirs: `videomae` (ViT-Base-sized, 16 frames at 224x224, 1568
tokens, saved with save_pretrained; needs stviz[transformers]), or torchvision's
`mvit_v2_s` or `swin3d_t` (16 frames at 224x224, a state dict loaded with --arch); it
times Grad-CAM and attention rollout (by default) against one forward pass, and on CUDA
each method's peak GPU memory.

    .venv/bin/python benchmarks/bench_explain.py [--methods attention gradcam] [--repeats 3]
        [--device cpu] [--video-seconds 10] [--no-e2e] [--transformer videomae]
        [--dense-methods attention gradcam]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stviz.core.checkpoint import DEFAULT_MODEL, build_network, save_checkpoint
from stviz.core.device import resolve_device
from stviz.core.model import AttentionModel, load_model
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.errors import StvizError
from stviz.explain import (
    METHODS,
    VideoClassifier,
    from_stviz,
    get_method,
    load_classifier,
)
from stviz.video import write_video

VIDEO_SIZE, VIDEO_FPS = (340, 256), 25.0


def seconds(fn, repeats: int) -> float:
    """Best of `repeats` wall times after one warm-up (the best is the least noisy)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def default_or_untrained(device: torch.device, frames: int) -> tuple[AttentionModel, str]:
    """(model, what it is): the installed default model, or an untrained stand-in."""
    try:
        return load_model(None, device), f"{DEFAULT_MODEL} (the default model)"
    except StvizError as exc:
        why = str(exc).split(";")[0]
    torch.manual_seed(0)
    spec = ModelSpec(network=NetworkConfig(num_classes=10), frames=frames,
                     classes=[f"class{i}" for i in range(10)])
    model = AttentionModel(build_network(spec).to(device).eval(), spec, device)
    return model, (f"untrained {spec.backbone} model of the default architecture ({why}); "
                   "times are the same as a trained one's")


def test_video(path: Path, duration: float) -> Path:
    """A `duration`-second 340x256 video of a square crossing a textured background."""
    w, h = VIDEO_SIZE
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    n = round(duration * VIDEO_FPS)
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:background.shape[0], :background.shape[1]] = background
        x = int((w - 60) * i / max(n - 1, 1))
        f[100:160, x:x + 60] = (230, 40, 40)
        frames.append(f)
    return write_video(path, frames, VIDEO_FPS)


def dense_rate(model: AttentionModel, video: Path, method: str) -> tuple[int, float]:
    """(video frames, seconds) of a dense explanation of every frame, after a warm-up."""
    from stviz.explain import explain_video

    explain_video(model, video, method, dense=True)
    start = time.perf_counter()
    expl = explain_video(model, video, method, dense=True)
    return len(expl.frame_indices), time.perf_counter() - start


def end_to_end(args: list[str]) -> float:
    """Wall time of one `stviz explain` process; its error, if any, is shown and raised."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stviz", "explain", *args, "--quiet"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"stviz explain failed:\n{done.stderr}")
    return wall


def transformer(kind: str, device: torch.device) -> tuple[VideoClassifier, str]:
    """A video transformer with random weights, loaded from disk as users load theirs."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "videomae":
            import transformers

            config = transformers.VideoMAEConfig(num_labels=400)  # ViT-Base, 16 frames at 224
            transformers.VideoMAEForVideoClassification(config).save_pretrained(tmp)
            blocks = config.num_hidden_layers
            return load_classifier(tmp, device=device), f"VideoMAE ViT-Base, {blocks} blocks"
        from torchvision.models import video

        path = Path(tmp) / f"{kind}.pth"
        torch.save(getattr(video, kind)(num_classes=400).state_dict(), path)
        return load_classifier(path, kind, device=device, frames=16), f"torchvision {kind}"


def bench_transformer(kind: str, methods: list[str], repeats: int, device: torch.device
                      ) -> None:
    """Seconds per clip of `methods` on a video transformer, and each against inference."""
    clf, what = transformer(kind, device)
    x = torch.randn(1, clf.frames, 3, clf.size, clf.size, device=device)
    clf.layer_info()  # the one-off probe is not part of any method's time
    plain = seconds(lambda: clf.predict(x), repeats)
    print(f"model: {what} (random weights), Grad-CAM layer {clf.layer_info().name} "
          f"(grid {clf.layer_info().frames}x{clf.grid[0]}x{clf.grid[1]})")
    print(f"seconds per {clf.frames}-frame clip at {clf.size}x{clf.size}:")
    print(f"  {'inference':18} {plain:8.3f} s")
    for name in methods:
        method = get_method(name)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        s = seconds(lambda m=method: m.attribute(clf, x, 0), repeats)
        peak = (f"  peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
                if device.type == "cuda" else "")
        print(f"  {name:18} {s:8.3f} s  ({s / plain:.2f}x inference){peak}  "
              f"{method.params()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--no-e2e", action="store_true", help="Skip the end-to-end runs.")
    parser.add_argument("--transformer", choices=("videomae", "mvit_v2_s", "swin3d_t"),
                        help="Time this video transformer instead (default methods: gradcam, "
                             "attention-rollout).")
    parser.add_argument("--dense-methods", nargs="*", default=[],
                        help="Methods whose dense explanation rate (frames/s) to measure.")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.transformer:
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch "
              f"{torch.__version__}, threads {torch.get_num_threads()}, device {device}")
        methods = args.methods if args.methods != list(METHODS) else ["gradcam",
                                                                       "attention-rollout"]
        bench_transformer(args.transformer, methods, args.repeats, device)
        return
    model, what = default_or_untrained(device, args.frames)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}")
    print(f"model: {what}")
    clf = from_stviz(model.use_inference_backbone())
    x = torch.randn(1, args.frames, 3, model.spec.input_size, model.spec.input_size,
                    device=device)
    clf.layer_info()  # the one-off probe is not part of any method's time
    plain = seconds(lambda: clf.predict(x), args.repeats)
    print(f"seconds per {args.frames}-frame clip at {model.spec.input_size}x"
          f"{model.spec.input_size}:")
    print(f"  {'inference':16} {plain:8.3f} s")
    for name in args.methods:
        method = get_method(name)
        s = seconds(lambda m=method: m.attribute(clf, x, 0), 1 if name != "attention" else
                    args.repeats)
        extra = f"  ({s / plain:.2f}x inference)" if name == "attention" else ""
        print(f"  {name:16} {s:8.3f} s{extra}  {method.params()}", flush=True)
    if args.no_e2e and not args.dense_methods:
        return

    with tempfile.TemporaryDirectory() as tmp:
        video = test_video(Path(tmp) / "bench.mp4", args.video_seconds)
        if args.dense_methods:
            print(f"dense explanation of a {args.video_seconds:g} s video (windows of "
                  f"{args.frames} frames every {args.frames // 2}; decoding included):")
        for name in args.dense_methods:
            n, s = dense_rate(model, video, name)
            print(f"  {name:16} {n / s:8.1f} frames/s  ({n} frames in {s:.2f} s)", flush=True)
        if args.no_e2e:
            return
        model_args = ["--device", args.device]
        if model.path is None:  # the untrained stand-in: a checkpoint the CLI can load
            save_checkpoint(model.net, model.spec, Path(tmp) / "untrained")
            model_args += ["--model", str(Path(tmp) / "untrained")]
        w, h = VIDEO_SIZE
        print(f"stviz explain, end to end on a {args.video_seconds:g} s {w}x{h} video at "
              f"{VIDEO_FPS:g} fps ({round(args.video_seconds * VIDEO_FPS)} frames; default "
              "outputs: overlay.mp4, temporal.png, keyframes.png, explanation.json/.npz):")
        for label, extra in (("default", []), ("--dense", ["--dense"])):
            wall = end_to_end([str(video), *model_args, *extra, "--out",
                               str(Path(tmp) / label.strip("-"))])
            print(f"  {label:16} {wall:8.2f} s", flush=True)


if __name__ == "__main__":
    main()
