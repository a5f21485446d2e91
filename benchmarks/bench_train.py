"""The three costs of `make model`: synthesis, feature extraction, an epoch on cached features.

- clips/s of `stviz synth` at the default size (32 frames, 128x128), on all cores;
- frames/s of frozen-backbone feature extraction (decode + resize + folded backbone);
- seconds per training epoch of the default head on cached features.

    .venv/bin/python benchmarks/bench_train.py [--clips 200] [--train-clips 1600]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from stviz.datasets.synth import SynthConfig, generate

# Synth workers are spawned processes that re-import this module: torch is imported in
# main(), after synthesis, so that they start as light as `stviz synth`'s do.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clips to synthesize")
    parser.add_argument("--extract", type=int, default=40, help="clips to extract features of")
    parser.add_argument("--train-clips", type=int, default=1600,
                        help="clips per epoch in the epoch timing (features are random)")
    parser.add_argument("--frames", type=int, default=16, help="T")
    parser.add_argument("--batch-size", type=int, default=30)
    args = parser.parse_args()
    import torch

    from stviz.core.backbones import create_backbone, inference_mode
    from stviz.core.losses import LossWeights, total_loss
    from stviz.core.network import AttentionHead, NetworkConfig
    from stviz.datasets.feature_cache import FeatureCache

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        start = time.perf_counter()
        generate(data, args.clips, 0, seed=0, cfg=SynthConfig())
        took = time.perf_counter() - start
        print(f"synth:    {args.clips / took:7.1f} clips/s  ({args.clips} clips in {took:.1f} s)")

        backbone = inference_mode(create_backbone("efficientnet_lite0"), 224)
        cache = FeatureCache(Path(tmp) / "cache", backbone, 224, args.frames)
        videos = sorted((data / "videos").glob("*.mp4"))[: args.extract]
        start = time.perf_counter()
        feats = cache.compute(videos)
        took = time.perf_counter() - start
        n = len(videos) * args.frames
        print(f"features: {n / took:7.1f} frames/s ({n} frames at 224x224 in {took:.1f} s)")

    shape = feats[0].shape  # (T, C, h, w)
    x_all = torch.randn(args.train_clips, *shape).half()
    y_all = torch.randint(0, 10, (args.train_clips,))
    head = AttentionHead(NetworkConfig(num_classes=10, in_channels=shape[1]))
    opt = torch.optim.Adam(head.parameters(), lr=1e-4, weight_decay=1e-4)
    head.train()
    start = time.perf_counter()
    for s in range(0, args.train_clips, args.batch_size):
        x = x_all[s:s + args.batch_size].float()
        out = head(x)
        loss = total_loss(out.logits, out.masks, out.weights, y_all[s:s + args.batch_size],
                          LossWeights())["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    took = time.perf_counter() - start
    params = sum(p.numel() for p in head.parameters())
    print(f"epoch:    {took:7.1f} s for {args.train_clips} clips on cached features "
          f"(head {params / 1e6:.2f} M parameters, batch {args.batch_size}, "
          f"{args.train_clips / took:.0f} clips/s)")


if __name__ == "__main__":
    main()
