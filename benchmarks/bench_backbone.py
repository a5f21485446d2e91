"""Frames/s of a backbone and of the whole network on 16-frame clips at 224x224.

Compares eager PyTorch with the inference mode (BatchNorm folded, channels_last),
on the CPU and, when present, on CUDA (fp16 autocast).

    .venv/bin/python benchmarks/bench_backbone.py [--backbone efficientnet_lite0] [--clips 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from stviz.core.backbones import create_backbone, inference_mode
from stviz.core.device import autocast
from stviz.core.network import AttentionHead, NetworkConfig, STAttentionNet


def frames_per_second(fn, n_frames: int, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: allocator, cuDNN autotuning
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n_frames * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default=None, help="backbone weights (default: offline)")
    parser.add_argument("--clips", type=int, default=2, help="16-frame clips per batch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    print(f"{'device':6} {'mode':9} {'backbone f/s':>13} {'network f/s':>12}")
    t = 16
    for device in devices:
        base = create_backbone(args.backbone, args.weights)
        base.module.eval()
        for mode, bb in (("eager", base), ("inference", inference_mode(base))):
            module = bb.module.to(device)
            head = AttentionHead(NetworkConfig(num_classes=10, in_channels=bb.channels)).eval()
            net = STAttentionNet(module, head).to(device).eval()
            frames = torch.randn(args.clips * t, 3, 224, 224, device=device)
            clips = frames.reshape(args.clips, t, 3, 224, 224)

            def run_backbone(m=module, x=frames, d=device) -> None:
                with torch.inference_mode(), autocast(d):
                    m(x)

            def run_network(n=net, x=clips, d=device) -> None:
                with torch.inference_mode(), autocast(d):
                    n(x)

            fb = frames_per_second(run_backbone, len(frames), args.repeats, device)
            fn = frames_per_second(run_network, len(frames), args.repeats, device)
            print(f"{device.type:6} {mode:9} {fb:13.1f} {fn:12.1f}")


if __name__ == "__main__":
    main()
