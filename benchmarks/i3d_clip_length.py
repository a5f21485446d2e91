"""Why `i3d-kinetics400` samples 32 frames: top-1, confidence and seconds per clip length.

For each shipped real clip (examples/real/, with the label a person gives it in
SOURCES.md) and each clip length, the I3D's top-1 class, its probability, the
probability of the true label, and the seconds of one inference and of one Grad-CAM
on this machine. The model was trained on 64-frame clips at 25 fps; fewer frames
cover the same video more sparsely and cost proportionally less.

    .venv/bin/python benchmarks/i3d_clip_length.py [--frames 16,32,64] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from stviz.explain import get_method
from stviz.explain.classifier import from_i3d
from stviz.explain.pipeline import sample_clip

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "real"
LABELS = {"arm_wrestling.mp4": "arm wrestling", "cleaning_pool.mp4": "cleaning pool",
          "shooting_basketball.mp4": "shooting basketball", "cricket_shot.gif": "playing cricket"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="16,32,64")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print("| clip | frames | top-1 | p(top-1) | p(label) | inference s | Grad-CAM s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    gradcam = get_method("gradcam")
    for t in (int(v) for v in args.frames.split(",")):
        clf = from_i3d(frames=t, device=args.device)
        for video, label in LABELS.items():
            x = sample_clip(clf, EXAMPLES / video, warn_short=False).x
            clf.predict(x)  # warm-up
            start = time.perf_counter()
            probs = clf.predict(x)[0].softmax(-1)
            infer = time.perf_counter() - start
            top = int(probs.argmax())
            start = time.perf_counter()
            gradcam.attribute(clf, x, top)
            cam = time.perf_counter() - start
            truth = clf.classes.index(label)
            mark = "" if top == truth else " (wrong)"
            print(f"| {video} | {t} | {clf.classes[top]}{mark} | {probs[top]:.3f} | "
                  f"{probs[truth]:.3f} | {infer:.2f} | {cam:.2f} |")


if __name__ == "__main__":
    main()
