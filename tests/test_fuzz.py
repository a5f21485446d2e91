"""Fuzzing (issue 13): a few hundred mutated videos, checkpoints and annotation files
through the commands. Whatever the damage, stviz answers with exit 0 or with exit 2 and
one line, never a traceback or a crash. Seeded, so a failure reproduces."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from run_cli import run
from tiny_models import tiny_stviz

from stviz.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from stviz.video import write_video

N_VIDEOS, N_EXPLAINED, N_CHECKPOINTS, N_ANNOTATIONS = 150, 5, 30, 100
ODD_VALUES: list[Any] = ["sixteen", "", -5, 0, 2.5, 1e308, -1e308, None, True, [], {}, [1, "a"],
                         {"x": 1}, "NaN", 10 ** 12]


def mutate_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    """One random kind of damage: flipped bytes, a cut, a zeroed or repeated range,
    inserted junk."""
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for i in rng.integers(0, len(b), rng.integers(1, 20)):
            b[i] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del b[int(rng.integers(0, len(b))):]
    elif kind == 2:
        i = int(rng.integers(0, len(b)))
        b[i:i + int(rng.integers(1, 512))] = bytes(len(b[i:i + 512]))[:len(b[i:i + 512])]
    elif kind == 3:
        i, j = sorted(rng.integers(0, len(b), 2).tolist())
        b[j:j] = b[i:j][:4096]
    else:
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(b)


def mutate_json(obj: Any, rng: np.random.Generator) -> Any:
    """A copy with one value somewhere replaced by an odd one, or one key dropped."""
    obj = copy.deepcopy(obj)
    node = obj
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return obj
        key = keys[int(rng.integers(len(keys)))]
        child = node[key]
        if not (isinstance(child, (dict, list)) and child and rng.random() < 0.7):
            break
        node = child
    if isinstance(node, dict) and rng.random() < 0.2:
        del node[key]
    else:
        node[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    return obj


def check(code: int, err: str, what: str) -> None:
    assert code in (0, 2), f"{what}: exit {code}\n{err}"
    assert "Traceback" not in err, f"{what}:\n{err}"
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"{what}:\n{err}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(8)]
    tiny = tiny_stviz(size=32)
    record = {"id": "clip", "label": 0, "class": "a", "frames": 8, "fps": 8.0, "width": 40,
              "height": 32, "split": "test", "segment": [2, 6],
              "boxes": [[4, 4, 20, 20]] * 8}
    ann = root / "annotations.json"
    ann.write_text(json.dumps({"classes": ["a", "b", "c"], "videos": [record]}))
    return {"mp4": write_video(root / "clip.mp4", frames, 8.0),
            "gif": write_video(root / "clip.gif", frames, 8.0),
            "model": save_checkpoint(tiny.net, tiny.spec, root / "model"),
            "annotations": ann}


def fuzz(n: int, seed: int, make: Callable[[np.random.Generator, int], tuple[list, str]],
         capsys: pytest.CaptureFixture[str]) -> dict[int, int]:
    """Run `n` mutated cases; the exit codes seen, counted."""
    rng = np.random.default_rng(seed)
    codes: dict[int, int] = {}
    for i in range(n):
        args, what = make(rng, i)
        code, _, err = run(capsys, *args)
        check(code, err, what)
        codes[code] = codes.get(code, 0) + 1
    return codes


def test_mutated_videos(base, tmp_path, capsys):
    explained = 0

    def make(rng: np.random.Generator, i: int) -> tuple[list, str]:
        nonlocal explained
        src = base["mp4" if i % 3 else "gif"]
        path = tmp_path / f"v{i}{src.suffix}"
        path.write_bytes(mutate_bytes(src.read_bytes(), rng))
        if explained < N_EXPLAINED and i % (N_VIDEOS // N_EXPLAINED) == 0:
            explained += 1
            return (["explain", path, "--model", base["model"], "--out", tmp_path / f"o{i}",
                     "--device", "cpu", "--format", "json,mp4", "--quiet"], f"explain {path}")
        return ["info", path, "--json"], f"info {path}"

    codes = fuzz(N_VIDEOS, 1, make, capsys)
    assert codes.get(0) and codes.get(2), codes  # both kinds of answer were exercised


def test_mutated_checkpoints(base, tmp_path, capsys):
    config = json.loads((base["model"] / CONFIG_FILE).read_text())
    weights = (base["model"] / WEIGHTS_FILE).read_bytes()

    def make(rng: np.random.Generator, i: int) -> tuple[list, str]:
        ckpt = tmp_path / f"m{i}"
        shutil.copytree(base["model"], ckpt)
        if i % 3:
            (ckpt / CONFIG_FILE).write_text(json.dumps(mutate_json(config, rng)))
        elif i % 2:
            (ckpt / CONFIG_FILE).write_bytes(mutate_bytes(json.dumps(config).encode(), rng))
        else:
            (ckpt / WEIGHTS_FILE).write_bytes(mutate_bytes(weights, rng))
        return (["explain", base["mp4"], "--model", ckpt, "--out", tmp_path / f"o{i}",
                 "--device", "cpu", "--format", "json", "--quiet"], f"checkpoint {ckpt}")

    codes = fuzz(N_CHECKPOINTS, 2, make, capsys)
    assert codes.get(2), codes


def test_mutated_annotations(base, tmp_path, capsys):
    text = base["annotations"].read_text()

    def make(rng: np.random.Generator, i: int) -> tuple[list, str]:
        path = tmp_path / f"a{i}.json"
        if i % 2:
            path.write_text(json.dumps(mutate_json(json.loads(text), rng)))
        else:
            path.write_bytes(mutate_bytes(text.encode(), rng))
        return ["annotations", path, "--json"], f"annotations {path}"

    codes = fuzz(N_ANNOTATIONS, 3, make, capsys)
    assert codes.get(0) and codes.get(2), codes
