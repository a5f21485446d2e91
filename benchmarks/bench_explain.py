"""Seconds per clip of every explanation method, and attention's cost over plain inference.

An EfficientNet-Lite0 stviz model (offline ImageNet backbone, random head, folded
inference backbone) on 16-frame clips at 224x224, on the CPU unless --device says.

    .venv/bin/python benchmarks/bench_explain.py [--methods attention gradcam] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from stviz.core.checkpoint import build_network
from stviz.core.device import resolve_device
from stviz.core.model import AttentionModel
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.explain import METHODS, from_stviz, get_method


def seconds(fn, repeats: int) -> float:
    """Best of `repeats` wall times after one warm-up (the best is the least noisy)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    spec = ModelSpec(network=NetworkConfig(num_classes=10), frames=args.frames,
                     classes=[f"class{i}" for i in range(10)])
    model = AttentionModel(build_network(spec).to(device).eval(), spec, device)
    clf = from_stviz(model.use_inference_backbone())
    x = torch.randn(1, args.frames, 3, spec.input_size, spec.input_size, device=device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}")
    clf.layer_info()  # the one-off probe is not part of any method's time
    plain = seconds(lambda: clf.predict(x), args.repeats)
    print(f"{'inference':16} {plain:8.3f} s")
    for name in args.methods:
        method = get_method(name)
        s = seconds(lambda m=method: m.attribute(clf, x, 0), 1 if name != "attention" else
                    args.repeats)
        extra = f"  ({s / plain:.2f}x inference)" if name == "attention" else ""
        print(f"{name:16} {s:8.3f} s{extra}  {method.params()}", flush=True)


if __name__ == "__main__":
    main()
