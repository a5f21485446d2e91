"""Bad input of every kind found in issue 13: each gives exit 2 and one line on stderr (or
a sensible result), never a traceback or a crash, and leaves nothing of its own in --out.

One test per item of the issue; the fuzz test and the concurrency test live in
test_fuzz.py and test_output_sets.py."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from run_cli import run
from safetensors.torch import load_file, save_file
from tiny_models import tiny_checkpoint, tiny_stviz

from stviz.core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint
from stviz.datasets.annotations import load_annotations
from stviz.datasets.synth import SynthConfig, generate
from stviz.render import outputs
from stviz.video import probe, write_video

CLASSES = ["a", "b", "c"]


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines()  # warnings and progress bars aside
             if not line.startswith("warning:") and "━" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def assert_nothing_in(out: Path) -> None:
    """No file of the failed run (hidden temporaries included) in `out`."""
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def noisy_frames(n: int, w: int = 80, h: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Frames that do not compress away, so a cut file loses most of them."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tiny = tiny_stviz(classes=CLASSES)
    return save_checkpoint(tiny.net, tiny.spec, tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", noisy_frames(12), 8.0)


def explain(capsys, video: Path, model: Path, out: Path, *extra: object):
    return run(capsys, "explain", video, "--model", model, "--out", out, "--device", "cpu",
               "--format", "json", *extra)


# 1. code execution on resume: tests/test_train.py::test_resume_refuses_a_crafted_state


def test_2_a_name_that_is_not_utf8_is_one_line(video, model, tmp_path, capsys):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/clip\xff.mp4"))
    bad.write_bytes(video.read_bytes())
    for command in (["info", bad], ["explain", bad, "--model", model, "--out", tmp_path / "o"],
                    ["compare", bad, "--model", model, "--out", tmp_path / "o"]):
        code, _, err = run(capsys, *command)
        assert_one_line_error(code, err, "not valid UTF-8", "clip\\xff.mp4")
    assert_nothing_in(tmp_path / "o")
    code, _, err = explain(capsys, video, model, Path(os.fsdecode(bytes(tmp_path) + b"/o\xfe")))
    assert_one_line_error(code, err, "not valid UTF-8")


def test_3_a_truncated_faststart_mp4_samples_only_frames_that_decode(model, tmp_path, capsys):
    full = write_video(tmp_path / "full.mp4", noisy_frames(60), 10.0)  # index at the front
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:int(len(data) * 0.3)])
    with av.open(str(cut)) as container:
        decodable = 0
        with pytest.raises(av.FFmpegError):
            for _ in container.decode(video=0):
                decodable += 1
    assert 0 < decodable < 60
    code, out, err = run(capsys, "info", cut, "--json")
    assert code == 0 and "truncated" in err
    assert json.loads(out)["frames"] == decodable
    code, _, err = explain(capsys, cut, model, tmp_path / "e")
    assert code == 0, err
    summary = json.loads((tmp_path / "e" / "explanation.json").read_text())
    assert summary["video_frames"] == decodable
    assert max(summary["peak_frames"]) < decodable
    indices = np.load(tmp_path / "e" / "explanation.npz")["frame_indices"]
    assert len(set(indices.tolist())) == len(indices) and indices.max() < decodable
    code, _, err = run(capsys, "compare", cut, "--model", model, "--out", tmp_path / "c",
                       "--device", "cpu")
    assert code == 0, err
    assert probe(tmp_path / "c" / "compare.mp4").frames == decodable


def test_4_tiny_videos_render(model, tmp_path, capsys):
    clip = write_video(tmp_path / "tiny.gif", noisy_frames(6, 2, 2), 6.0)
    code, _, err = run(capsys, "explain", clip, "--model", model, "--out", tmp_path / "o",
                       "--device", "cpu")
    assert code == 0, err
    assert probe(tmp_path / "o" / "overlay.mp4").frames == 6
    code, _, err = run(capsys, "compare", clip, "--model", model, "--out", tmp_path / "c",
                       "--device", "cpu", "--format", "mp4")
    assert code == 0, err


@pytest.mark.parametrize("size", [(1, 1), (3, 40), (40, 3), (30, 30)])
def test_4_a_panel_fits_any_frame_size(size):
    from stviz.explain.explanation import Explanation
    from stviz.render.overlay import OverlayPainter

    w, h = size
    expl = Explanation("v.mp4", [0, 2, 4], [0, 0.2, 0.4], np.random.rand(3, 2, 2),
                       [0.1, 0.5, 0.2], CLASSES, [0.2, 0.5, 0.3], 1, 1, "attention",
                       video_frames=5, fps=10, width=w, height=h)
    painter = OverlayPainter(expl, (w, h), title="attention")
    for index in range(5):
        panel = painter.paint(index, np.zeros((h, w, 3), np.uint8))
        assert panel.shape[1] == w and panel.shape[0] > h


def test_5_a_failed_run_leaves_nothing(video, model, tmp_path, capsys, monkeypatch):
    from stviz.errors import StvizError

    def broken(*_args, **_kwargs):
        raise StvizError("the encoder broke")

    monkeypatch.setattr(outputs, "render_overlay", broken)
    out = tmp_path / "new"
    code, _, err = run(capsys, "explain", video, "--model", model, "--out", out,
                       "--device", "cpu")
    assert_one_line_error(code, err, "the encoder broke")
    assert not out.exists()  # created by the run, so removed with it
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "explain", video, "--model", model, "--out", kept,
                       "--device", "cpu")
    assert code == 2
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


def test_6_a_run_never_mixes_its_files_with_another_runs(video, model, tmp_path, capsys):
    other = write_video(tmp_path / "other.mp4", noisy_frames(20, seed=1), 8.0)
    out = tmp_path / "o"
    assert explain(capsys, video, model, out, "--format", "json,png")[0] == 0
    # Another video, another format, no --overwrite: refused, the first set untouched.
    code, _, err = run(capsys, "explain", other, "--model", model, "--out", out,
                       "--device", "cpu", "--format", "mp4")
    assert_one_line_error(code, err, "file exists", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        outputs.FILES["explain"]["json"] + outputs.FILES["explain"]["png"])
    # With --overwrite the second run's set replaces the whole first set.
    code, _, err = run(capsys, "explain", other, "--model", model, "--out", out,
                       "--device", "cpu", "--format", "mp4", "--overwrite")
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == ["overlay.mp4"]
    assert probe(out / "overlay.mp4").frames == 20


def corrupt_weights(src: Path, dest: Path, n: int = 21) -> Path:
    """A copy of checkpoint `src` with `n` float32 weights' bytes flipped to NaN in place,
    inside an otherwise valid safetensors file."""
    dest.mkdir()
    (dest / CONFIG_FILE).write_bytes((src / CONFIG_FILE).read_bytes())
    data = bytearray((src / WEIGHTS_FILE).read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    start = 8 + header
    positions = np.random.default_rng(0).choice((len(data) - start) // 4, n, replace=False)
    for p in positions:
        data[start + 4 * p:start + 4 * p + 4] = b"\xff\xff\xff\x7f"
    (dest / WEIGHTS_FILE).write_bytes(bytes(data))
    return dest


def test_7_corrupted_weights_are_refused(video, model, tmp_path, capsys):
    broken = corrupt_weights(model, tmp_path / "broken")
    assert any(torch.isnan(t).any() for t in load_file(broken / WEIGHTS_FILE).values())
    for command in ("explain", "compare"):
        code, _, err = run(capsys, command, video, "--model", broken, "--out", tmp_path / "o",
                           "--device", "cpu")
        assert_one_line_error(code, err, "21 weights are NaN or infinite")
    assert_nothing_in(tmp_path / "o")


def test_7_localize_eval_refuses_corrupted_weights(tmp_path, capsys):
    data = tmp_path / "data"
    generate(data, 0, 1, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    good = tiny_checkpoint(data, tmp_path / "good")
    code, _, err = run(capsys, "localize-eval", data, "--model", corrupt_weights(
        good, tmp_path / "bad"), "--methods", "attention", "--out", tmp_path / "loc",
        "--device", "cpu")
    assert_one_line_error(code, err, "NaN or infinite")
    assert not (tmp_path / "loc" / "metrics.json").exists()


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("frames", "sixteen", "'frames' is 'sixteen'"),
    ("input_size", -5, "'input_size' is -5"),
    ("classes", "abc", "'classes'"),
    ("std", [0.5, 0, 0.5], "'std'"),
    ("lstm_hidden", 2.5, "'lstm_hidden' is 2.5"),
    ("use_mask", "yes", "'use_mask'"),
])
def test_8_config_values_are_validated(key, value, fragment, video, model, tmp_path, capsys,
                                       monkeypatch):
    bad = tmp_path / "models" / "bad"
    bad.mkdir(parents=True)
    config = json.loads((model / CONFIG_FILE).read_text())
    (config["network"] if key in config["network"] else config)[key] = value
    (bad / CONFIG_FILE).write_text(json.dumps(config))
    (bad / WEIGHTS_FILE).write_bytes((model / WEIGHTS_FILE).read_bytes())
    code, _, err = explain(capsys, video, bad, tmp_path / "o")
    assert_one_line_error(code, err, "invalid config", fragment)
    assert_nothing_in(tmp_path / "o")
    monkeypatch.setenv("STVIZ_MODELS", str(tmp_path / "models"))
    code, out, err = run(capsys, "models", "--json")
    assert code == 0 and "invalid config" in err
    assert "bad" not in [row["name"] for row in json.loads(out)]


def test_9_output_path_errors_come_before_any_work(video, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    missing_model = tmp_path / "no-such-model"  # loading it would fail: the --out check wins
    for out in (a_file, a_file / "sub", a_file / "sub" / "deeper"):
        for command in ("explain", "compare"):
            code, _, err = run(capsys, command, video, "--model", missing_model, "--out", out)
            assert_one_line_error(code, err, "is a file")
        code, _, err = run(capsys, "localize-eval", tmp_path, "--model", missing_model,
                           "--out", out)
        assert_one_line_error(code, err, "is a file")
    assert a_file.read_text() == "x"


def test_9_a_folder_that_is_not_writable(video, tmp_path, capsys, monkeypatch):
    import tempfile

    def denied(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", denied)  # root ignores chmod
    code, _, err = run(capsys, "explain", video, "--model", tmp_path / "none", "--out",
                       tmp_path / "o")
    assert_one_line_error(code, err, "cannot write there (Permission denied)")


def write_annotations(path: Path, boxes: list[list[float]]) -> Path:
    record = {"id": "clip", "label": 0, "class": "a", "frames": 12, "fps": 8.0, "width": 80,
              "height": 64, "segment": [2, 10], "boxes": boxes}
    path.write_text(json.dumps({"classes": CLASSES, "videos": [record]}))
    return path


def test_10_off_frame_boxes_are_clipped_and_mostly_off_frame_files_refused(
        video, model, tmp_path, capsys):
    inside = [10, 10, 30, 30]
    some = write_annotations(tmp_path / "some.json",
                             [[-1e9, -1e9, 1e9, 1e9], *[inside] * 10, [70, 50, 200, 90]])
    with pytest.warns(UserWarning, match="2 of 12 boxes reach outside their frames"):
        boxes = load_annotations(some).videos["clip"].boxes
    assert boxes[0].tolist() == [[0, 0, 80, 64]] and boxes[11].tolist() == [[70, 50, 80, 64]]
    code, _, err = run(capsys, "explain", video, "--model", model, "--out", tmp_path / "o",
                       "--device", "cpu", "--annotations", some, "--format", "json")
    assert code == 0 and "warning:" in err and "clipped to the frame" in err
    most = write_annotations(tmp_path / "most.json",
                             [[500, 500, 600, 600]] * 8 + [inside] * 4)
    for command in (["annotations", most],
                    ["explain", video, "--model", model, "--annotations", most, "--out",
                     tmp_path / "m", "--device", "cpu"]):
        code, _, err = run(capsys, *command)
        assert_one_line_error(code, err, "8 of 12 boxes lie outside their frames")
    assert_nothing_in(tmp_path / "m")


def test_11_damaged_cache_entries_are_recomputed_and_stale_temporaries_removed(
        tmp_path, capsys):
    data = tmp_path / "data"
    generate(data, 0, 2, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    model = tiny_checkpoint(data, tmp_path / "tiny")
    out = tmp_path / "loc"
    args = ["localize-eval", data, "--model", model, "--methods", "attention", "--out", out,
            "--device", "cpu", "--no-faithfulness", "--quiet"]
    assert run(capsys, *args)[0] == 0
    entries = sorted((out / "cache").glob("*/*.npz"))  # not the explanations kept beside
    assert len(entries) == 2
    entries[0].write_bytes(entries[0].read_bytes()[:40])  # cut short: not a zip any more
    stale = [out / ".metrics.k1ll3d_0.tmp.csv", entries[1].parent / ".x.abcd1234.tmp.npz",
             out / ".stviz.zz9_zz9z.tmp"]
    mine = out / ".notes.tmp"  # a user's own hidden file is never cleaned
    for path in [*stale, mine]:
        path.write_text("left by a killed run")
    code, _, err = run(capsys, *args, "--overwrite")
    assert code == 0, err
    assert "Traceback" not in err and "damaged cache entry" in err
    assert not any(path.exists() for path in stale) and mine.exists()
    assert json.loads((out / "metrics.json").read_text())["n_videos"] == 2


def test_12_a_folder_as_video_is_one_line(tmp_path, capsys):
    for command in ("info", "explain", "compare"):
        code, _, err = run(capsys, command, tmp_path)
        assert_one_line_error(code, err)
        assert "folder" in err or "directory" in err


def test_12_no_blank_line_before_an_error(tmp_path, model, capsys):
    for command in ("explain", "compare"):
        code, _, err = run(capsys, command, tmp_path / "missing.mp4", "--model", model)
        assert code == 2 and err.startswith("error: "), repr(err)


def test_12_annotations_takes_quiet(tmp_path, capsys):
    ann = write_annotations(tmp_path / "a.json", [[10, 10, 30, 30]] * 12)
    code, out, _ = run(capsys, "annotations", ann, "--quiet", "--json")
    assert code == 0 and json.loads(out)["videos"] == 1


def test_12_checkpoints_are_byte_identical(tmp_path):
    tiny = tiny_stviz(classes=CLASSES)
    blobs = {save_checkpoint(tiny.net, tiny.spec, tmp_path / f"c{i}").joinpath(
        WEIGHTS_FILE).read_bytes() for i in range(8)}
    assert len(blobs) == 1
    blob = blobs.pop()
    header = json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
    assert list(header) == sorted(header)
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    tensors = load_file(tmp_path / "c0" / WEIGHTS_FILE)
    save_file(tensors, str(tmp_path / "plain.safetensors"))  # the library reads ours alike
    assert tensors.keys() == load_file(tmp_path / "plain.safetensors").keys()


def test_clip_lengths_are_bounded_alike_in_configs_and_options():
    from stviz.cli.common import FRAME_COUNT
    from stviz.core.checkpoint import MAX_FRAMES

    assert FRAME_COUNT.max == MAX_FRAMES
