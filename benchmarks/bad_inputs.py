"""A sweep of bad inputs through the `stviz` executable, one process per run, as a
demanding user or a security reviewer would try them (issue 13).

Every run must end in exit 0, or exit 2 with one `error:` line; a traceback or a crash
(a signal, such as exit 139) is a failure. Prints each run and the totals: inputs
tried, clean errors, successes, tracebacks, crashes, other exits.

    python benchmarks/bad_inputs.py [--keep DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from stviz.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, build_network, save_checkpoint
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.datasets.synth import SynthConfig, generate
from stviz.video import write_video


def tiny_model(out: Path, classes: list[str]) -> Path:
    """A random stviz checkpoint: ResNet-18 backbone at 64 px, T=4, a tiny head."""
    torch.manual_seed(0)
    net = NetworkConfig(num_classes=len(classes), in_channels=512, mask_hidden=(8, 4),
                        reduce_channels=8, lstm_hidden=6)
    spec = ModelSpec(network=net, backbone="resnet18", backbone_weights="random", input_size=64,
                     frames=4, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     classes=classes)
    return save_checkpoint(build_network(spec).eval(), spec, out)


def noisy(n: int, w: int = 80, h: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def model_variant(good: Path, dest: Path, config: dict | None = None,
                  config_text: str | None = None, weights: bytes | None = None) -> Path:
    dest.mkdir(parents=True)
    cfg = json.loads((good / CONFIG_FILE).read_text())
    text = config_text if config_text is not None else json.dumps({**cfg, **(config or {})})
    (dest / CONFIG_FILE).write_text(text)
    (dest / WEIGHTS_FILE).write_bytes(weights if weights is not None
                                      else (good / WEIGHTS_FILE).read_bytes())
    return dest


def nan_weights(good: Path, n: int = 21) -> bytes:
    data = bytearray((good / WEIGHTS_FILE).read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    for p in np.random.default_rng(0).choice((len(data) - start) // 4, n, replace=False):
        data[start + 4 * p:start + 4 * p + 4] = b"\xff\xff\xff\x7f"
    return bytes(data)


def annotation_file(path: Path, boxes: list) -> Path:
    record = {"id": "clip", "label": 0, "class": "a", "frames": 12, "fps": 8.0, "width": 80,
              "height": 64, "segment": [2, 10], "boxes": boxes}
    path.write_text(json.dumps({"classes": ["a", "b", "c"], "videos": [record]}))
    return path


def build_cases(root: Path) -> list[tuple[str, list[str]]]:
    """(name, stviz arguments) of every run, after writing the inputs under `root`."""
    v = root / "videos"
    v.mkdir()
    clip = write_video(v / "clip.mp4", noisy(12), 8.0)
    full = write_video(v / "full.mp4", noisy(60, seed=1), 10.0)  # faststart: index first
    data = full.read_bytes()
    (v / "cut30.mp4").write_bytes(data[:int(len(data) * 0.3)])
    (v / "cut60.mp4").write_bytes(data[:int(len(data) * 0.6)])
    write_video(v / "px2.mp4", noisy(6, 2, 2), 6.0)
    write_video(v / "px1.gif", noisy(6, 1, 1), 6.0)
    write_video(v / "one.mp4", noisy(1), 8.0)
    (v / "empty.mp4").write_bytes(b"")
    (v / "random.mp4").write_bytes(np.random.default_rng(2).bytes(5000))
    (v / "text.mp4").write_text("not a video\n")
    bad_name = Path(os.fsdecode(bytes(v) + b"/clip\xff.mp4"))
    bad_name.write_bytes(clip.read_bytes())
    (v / "folder.mp4").mkdir()

    m = root / "models"
    good = tiny_model(m / "good", ["a", "b", "c"])
    nan = model_variant(good, m / "nan", weights=nan_weights(good))
    variants = {
        "frames 'sixteen'": {"frames": "sixteen"}, "input_size -5": {"input_size": -5},
        "frames 10**12": {"frames": 10 ** 12}, "classes not a list": {"classes": "abc"},
        "std 0": {"std": [0.5, 0, 0.5]}, "no network": {"network": None},
    }
    bad_configs = {name: model_variant(good, m / f"cfg{i}", config=c)
                   for i, (name, c) in enumerate(variants.items())}
    bad_configs["config not JSON"] = model_variant(good, m / "nojson", config_text="{oops")
    bad_configs["weights cut short"] = model_variant(
        good, m / "cutw", weights=(good / WEIGHTS_FILE).read_bytes()[:1000])
    (m / "empty").mkdir()

    a = root / "ann"
    a.mkdir()
    inside = [10, 10, 30, 30]
    some_off = annotation_file(a / "some_off.json", [[-1e9, -1e9, 1e9, 1e9], *[inside] * 11])
    most_off = annotation_file(a / "most_off.json", [[500, 500, 600, 600]] * 8 + [inside] * 4)
    (a / "broken.json").write_text('{"classes": ["a"], "videos": [{"id": ')
    wrong = annotation_file(a / "wrong_types.json", [inside] * 12)
    wrong.write_text(wrong.read_text().replace('"frames": 12', '"frames": "twelve"'))

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {root / 'PWNED'}",))

    import pickle

    (a / "evil.pkl").write_bytes(pickle.dumps({"labels": RunsCode()}))

    out = root / "out"
    out.mkdir()
    a_file = out / "a_file"
    a_file.write_text("mine")
    taken = out / "taken"
    taken.mkdir()
    (taken / "explanation.json").write_text("{}")

    syn = root / "synth"
    generate(syn, 0, 2, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    syn_model = tiny_model(m / "synth", json.loads((syn / "annotations.json").read_text())
                           ["classes"])
    run = root / "run"
    run.mkdir()
    torch.save({"head": RunsCode()}, run / "last_state.pt")

    model = ["--model", str(good), "--device", "cpu"]
    cases: list[tuple[str, list[str]]] = []

    def o(name: str) -> list[str]:
        return ["--out", str(out / name.replace(" ", "_"))]

    for name, path in (("missing file", v / "missing.mp4"), ("empty file", v / "empty.mp4"),
                       ("random bytes", v / "random.mp4"), ("text file", v / "text.mp4"),
                       ("folder as video", v / "folder.mp4"),
                       ("name not UTF-8", bad_name), ("faststart cut at 30%", v / "cut30.mp4"),
                       ("faststart cut at 60%", v / "cut60.mp4"), ("2x2 px", v / "px2.mp4"),
                       ("1x1 px gif", v / "px1.gif"), ("one frame", v / "one.mp4")):
        cases.append((f"info: {name}", ["info", str(path)]))
        cases.append((f"explain: {name}", ["explain", str(path), *model, *o(f"e {name}")]))
        cases.append((f"compare: {name}", ["compare", str(path), *model, *o(f"c {name}")]))
    cases.append(("explain: NaN weights", ["explain", str(clip), "--model", str(nan),
                                           *o("nan")]))
    cases.append(("compare: NaN weights", ["compare", str(clip), "--model", str(nan),
                                           *o("nanc")]))
    cases.append(("localize-eval: NaN weights", [
        "localize-eval", str(syn), "--model", str(model_variant(
            syn_model, m / "synth-nan", weights=nan_weights(syn_model))),
        "--methods", "attention", "--no-faithfulness", "--device", "cpu", *o("nanl")]))
    for name, path in bad_configs.items():
        cases.append((f"explain: config {name}", ["explain", str(clip), "--model", str(path),
                                                  *o(f"cfg {name}")]))
    cases.append(("explain: empty model folder", ["explain", str(clip), "--model",
                                                  str(m / "empty")]))
    cases.append(("models: bad configs on the path", ["models"]))
    cases.append(("explain: --out is a file", ["explain", str(clip), *model, "--out",
                                               str(a_file)]))
    cases.append(("explain: --out inside a file", ["explain", str(clip), *model, "--out",
                                                   str(a_file / "sub")]))
    cases.append(("explain: --out holds another run's file", ["explain", str(clip), *model,
                                                              "--out", str(taken)]))
    cases.append(("localize-eval: --out inside a file", [
        "localize-eval", str(syn), "--model", str(syn_model), "--out", str(a_file / "x")]))
    cases.append(("explain: -t 0", ["explain", str(clip), *model, "-t", "0"]))
    cases.append(("explain: -t 10**12", ["explain", str(clip), *model, "-t", str(10 ** 12)]))
    for name, path in (("some boxes off-frame", some_off), ("most boxes off-frame", most_off),
                       ("broken JSON", a / "broken.json"), ("wrong types", wrong),
                       ("pickle that runs code", a / "evil.pkl")):
        cases.append((f"annotations: {name}", ["annotations", str(path)]))
        cases.append((f"explain --annotations: {name}", [
            "explain", str(clip), *model, "--annotations", str(path), "--format", "json",
            *o(f"a {name}")]))
    cases.append(("train --resume: crafted last_state.pt", [
        "train", str(syn), "--out", str(run), "--resume", "-t", "4", "--input-size", "64",
        "--backbone", "resnet18", "--backbone-weights", "random", "--device", "cpu",
        "--cache-dir", str(root / "cache")]))
    cases.append(("train: missing data set", ["train", str(root / "nope"), "--out",
                                              str(out / "t")]))
    return cases


def classify(code: int, err: str) -> str:
    if code < 0 or code >= 128:
        return "crash"
    if "Traceback" in err:
        return "traceback"
    if code == 0:
        return "ok"
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    return "clean error" if code == 2 and len(errors) == 1 else "other"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="Build the inputs here, keep them.")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="stviz-bad-"))
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "STVIZ_MODELS": str(root / "models"), "OMP_NUM_THREADS": "1"}
    try:
        cases = build_cases(root)

        def one(case: tuple[str, list[str]]) -> tuple[str, int, str]:
            done = subprocess.run([sys.executable, "-m", "stviz", *case[1]], env=env,
                                  capture_output=True, text=True, errors="replace",
                                  timeout=600)
            return case[0], done.returncode, done.stderr

        totals: dict[str, int] = {}
        with ThreadPoolExecutor(args.workers) as pool:
            for name, code, err in pool.map(one, cases):
                kind = classify(code, err)
                totals[kind] = totals.get(kind, 0) + 1
                last = err.strip().splitlines()[-1] if err.strip() else ""
                print(f"{kind:12s} exit {code:3d}  {name}: {last[:150]}")
        ran_code = (root / "PWNED").exists()
        print(f"\ninputs tried {len(cases)} · clean errors {totals.get('clean error', 0)} · "
              f"ok {totals.get('ok', 0)} · tracebacks {totals.get('traceback', 0)} · crashes "
              f"{totals.get('crash', 0)} · other {totals.get('other', 0)} · code executed "
              f"{'YES' if ran_code else 'no'}")
        bad = totals.get("traceback", 0) + totals.get("crash", 0) + totals.get("other", 0)
        return 1 if bad or ran_code else 0
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
