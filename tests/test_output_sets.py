"""Two `stviz explain` runs on different videos into one --out, at the same time, many
times: the folder always holds one run's complete set, never a mix (issue 13, item 6)."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from tiny_models import T, tiny_stviz

from stviz.core.checkpoint import save_checkpoint
from stviz.render.outputs import FILES
from stviz.video import probe, uniform_indices, write_video

ROUNDS_OVERWRITE, ROUNDS_FRESH = 4, 2
LENGTHS = {"short": 12, "long": 20}


def explain_into(video: str, model: str, out: str, overwrite: bool) -> int:
    """`stviz explain` in a worker process; its exit code."""
    import torch

    from stviz.cli import main

    torch.set_num_threads(1)  # two workers share the cores

    args = ["explain", video, "--model", model, "--out", out, "--device", "cpu", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(args + (["--overwrite"] if overwrite else []))
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


def assert_one_complete_set(out: Path) -> str:
    """The folder holds exactly the default set of one run; which video it explains."""
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(n for fmt in ("mp4", "png", "json") for n in FILES["explain"][fmt])
    assert names == expected, names  # no other run's extra file, no leftover temporary
    summary = json.loads((out / "explanation.json").read_text())
    stem = Path(summary["video"]).stem
    n = LENGTHS[stem]
    assert summary["video_frames"] == n
    arrays = np.load(out / "explanation.npz")
    assert arrays["frame_indices"].tolist() == uniform_indices(n, T).tolist()
    assert probe(out / "overlay.mp4").frames == n
    return stem


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    root = tmp_path_factory.mktemp("sets")
    videos = {}
    for stem, n in LENGTHS.items():
        frames = [np.full((48, 64, 3), 20 * i % 256, np.uint8) for i in range(n)]
        videos[stem] = str(write_video(root / f"{stem}.mp4", frames, 8.0))
    tiny = tiny_stviz()
    return videos, str(save_checkpoint(tiny.net, tiny.spec, root / "model"))


def test_two_runs_into_one_folder_leave_one_runs_complete_set(inputs, tmp_path):
    videos, model = inputs
    winners = set()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        shared = tmp_path / "shared"
        for _ in range(ROUNDS_OVERWRITE):
            codes = pool.starmap(explain_into, [(v, model, str(shared), True)
                                                for v in videos.values()])
            assert codes == [0, 0]
            winners.add(assert_one_complete_set(shared))
        for i in range(ROUNDS_FRESH):
            fresh = tmp_path / f"fresh{i}"
            codes = pool.starmap(explain_into, [(v, model, str(fresh), False)
                                                for v in videos.values()])
            assert sorted(codes) == [0, 2]  # the second to finish is refused, whole
            winner = assert_one_complete_set(fresh)
            assert codes[list(videos).index(winner)] == 0
    assert winners <= set(LENGTHS)
