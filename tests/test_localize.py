"""`stviz annotations` and `stviz localize-eval`: summaries, the end-to-end run on tiny
synthetic data with a random tiny model, resuming from the cache, missing videos,
user errors, and two processes under torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from run_cli import run
from tiny_models import tiny_checkpoint

from stviz import api
from stviz.datasets.annotations import VideoAnnotation
from stviz.datasets.synth import SynthConfig, generate
from stviz.evaluate.localize import ClipScorer, ScoreMemo, locate_videos
from stviz.evaluate.scoring import (
    BOX_IOUS,
    BOX_TAUS,
    METRICS,
    Faithfulness,
    best_methods,
    score_video,
)
from stviz.evaluate.spatial import max_box_acc_from_hits, max_box_acc_v2
from stviz.explain import Explanation, load_classifier

REPORTS = ("metrics.json", "metrics.csv", "metrics.md", "metrics.png", "faithfulness.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate(out, 0, 3, seed=1, cfg=SynthConfig(frames=8, size=64), workers=1)
    return out


@pytest.fixture(scope="module")
def model(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny checkpoint that knows the synthetic classes."""
    return tiny_checkpoint(data, tmp_path_factory.mktemp("m") / "tiny")


def options(model: Path, **changes: object) -> dict:
    opts = {"methods": ("attention", "gradcam"), "model": model, "steps": 2, "device": "cpu"}
    opts.update(changes)
    return opts


@pytest.fixture(scope="module")
def resumed(data: Path, model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A run on the first video, then the full run into the same folder (the model loaded
    once: its cache key comes from its checkpoint files all the same)."""
    out = tmp_path_factory.mktemp("loc") / "out"
    clf = load_classifier(model, device="cpu")
    first = api.localize_eval(data, out, **options(clf, limit=1))
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*/*.npz")}
    second = api.localize_eval(data, out, **options(clf, overwrite=True))
    return out, first, second, stamps


# ---------------------------------------------------------------- stviz annotations

def test_annotations_summary_of_a_synth_set(data: Path, capsys) -> None:
    code, stdout, _ = run(capsys, "annotations", data / "annotations.json", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert {k: summary[k] for k in ("format", "videos", "classes", "tubes",
                                    "annotated_frames")} == \
        {"format": "stviz", "videos": 3, "classes": 10, "tubes": 3, "annotated_frames": 24}
    assert (summary["width_min"], summary["height_max"]) == (64, 64)
    code, stdout, _ = run(capsys, "annotations", data)  # the folder works too
    assert code == 0
    assert "stviz" in stdout and "64 x 64" in stdout and "annotated frames" in stdout


def test_annotations_of_the_real_ucf101_24_pickle(realdata: Path, capsys) -> None:
    code, stdout, _ = run(capsys, "annotations", realdata / "ucf101_24_pyannot.pkl", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["format"] == "ucf101-24"
    assert (summary["videos"], summary["classes"], summary["tubes"]) == (3194, 24, 4458)


def test_a_malformed_file_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"videos": [{"id": "a", "frames": 3, "boxes": [[1, 2, 3, 4]]}]}))
    code, stdout, stderr = run(capsys, "annotations", bad)
    assert code == 2 and stdout == ""
    assert stderr.strip().count("\n") == 0
    assert "bad.json: video 'a': 'boxes' has 1 rows but 'frames' is 3" in stderr


# ---------------------------------------------------------------- stviz localize-eval

def test_localize_eval_writes_every_report(resumed) -> None:
    out, _, second, _ = resumed
    for name in REPORTS:
        assert (out / name).stat().st_size > 100, name
    report = json.loads((out / "metrics.json").read_text())
    assert report == second.report
    for key in ("dataset", "model", "n_videos", "n_frames", "methods", "per_class",
                "missing_videos"):
        assert key in report
    assert report["n_videos"] == 3 and report["frames"] == 4
    assert report["n_frames"] == 12  # 4 sampled frames with a box in each of 3 clips
    assert set(report["methods"]) == {"attention", "gradcam"}
    for method, metrics in report["methods"].items():
        assert list(metrics) == list(METRICS), method
        for name, value in metrics.items():
            assert value is not None and 0 <= value <= 1, (method, name, value)
        per_class = report["per_class"][method]["pointing_game"]
        labels = {v["class"] for v in json.loads(
            (Path(report["dataset"]) / "annotations.json").read_text())["videos"]}
        assert set(per_class) == labels
    curve = report["curves"]["gradcam"]["deletion"]
    assert curve["x"] == [0.0, 0.5, 1.0] and len(curve["y"]) == 3
    csv_rows = (out / "metrics.csv").read_text().splitlines()
    assert csv_rows[0].split(",") == ["method", *METRICS] and len(csv_rows) == 3
    assert "| pointing_game ↑ |" in (out / "metrics.md").read_text()


def test_a_rerun_reuses_the_cache(resumed) -> None:
    out, first, second, stamps = resumed
    assert (first.computed, first.reused) == (2, 0)  # 1 video x 2 methods
    assert (second.computed, second.reused) == (4, 2)
    assert len(stamps) == 2
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # read, not rewritten
    assert len(list((out / "cache").glob("*/*.npz"))) == 6


def test_cli_prints_the_table_and_refuses_to_clobber(resumed, data: Path, model: Path,
                                                     capsys) -> None:
    out = resumed[0]
    args = ["localize-eval", data, "--model", model, "--methods", "attention,gradcam",
            "--faithfulness-steps", "2", "--out", out, "--device", "cpu"]
    code, _, stderr = run(capsys, *args)
    assert code == 2 and "--overwrite" in stderr and stderr.strip().count("\n") == 0
    code, stdout, _ = run(capsys, *args, "--overwrite")  # everything comes from the cache
    assert code == 0
    assert "deletion_auc ↓" in stdout and "attention" in stdout and "gradcam" in stdout
    assert "0 results computed, 6 reused" in stdout


def test_missing_and_broken_videos_are_listed_and_skipped(data: Path, model: Path,
                                                         tmp_path: Path, capsys) -> None:
    copy = shutil.copytree(data, tmp_path / "data")
    (copy / "videos" / "test_00002.mp4").unlink()
    (copy / "videos" / "test_00001.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "localize-eval", copy, "--model", model, "--methods",
                          "gradcam", "--no-faithfulness", "--out", out, "--device", "cpu")
    assert code == 0
    assert "1 annotated video(s) not found" in stderr and "test_00002" in stderr
    assert "skipped" in stderr and "test_00001.mp4: not a video OpenCV can decode" in stderr
    report = json.loads((out / "metrics.json").read_text())
    assert report["missing_videos"] == ["test_00002"] and report["n_videos"] == 1
    assert report["skipped_videos"] == ["test_00001"]
    assert "deletion_auc" not in report["methods"]["gradcam"]
    assert not (out / "faithfulness.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--methods", "attention,nope"], "--methods nope: unknown"),
    (["--split", "train"], "no videos in split 'train'"),
    (["--annotations", "missing.json"], "missing.json: no such file"),
])
def test_user_errors_exit_2_with_one_line(data: Path, model: Path, tmp_path: Path, capsys,
                                          args: list[str], message: str) -> None:
    code, _, stderr = run(capsys, "localize-eval", data, "--model", model, "--out",
                          tmp_path / "o", "--device", "cpu", *args)
    assert code == 2 and message in stderr and stderr.strip().count("\n") == 0


def test_a_folder_without_annotations_says_how_to_fix_it(tmp_path: Path, capsys) -> None:
    code, _, stderr = run(capsys, "localize-eval", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "no annotations.json here; pass --annotations FILE" in stderr


def test_a_data_set_without_its_videos_says_where_to_point(data: Path, tmp_path: Path,
                                                            capsys) -> None:
    shutil.copy(data / "annotations.json", tmp_path / "annotations.json")
    code, _, stderr = run(capsys, "localize-eval", tmp_path, "--out", tmp_path / "o")
    assert code == 2 and "none of the 3 annotated videos of split 'test' is there" in stderr


def test_help_names_every_metric(capsys) -> None:
    code, stdout, _ = run(capsys, "localize-eval", "--help")
    assert code == 0
    assert all(m in stdout for m in METRICS)


@pytest.mark.slow
def test_two_processes_under_torchrun(data: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29531", "-m", "stviz", "localize-eval", str(data),
           "--model", str(model), "--methods", "attention,gradcam", "--no-faithfulness",
           "--out", str(out), "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["n_videos"] == 3 and not report["skipped_videos"]
    entries = list((out / "cache").glob("*/*.npz"))
    assert len(entries) == 6  # every rank wrote its share
    assert all((e.with_suffix(".explanation") / "explanation.npz").is_file() for e in entries)
    assert done.stdout.strip() == str(out / "metrics.json")  # rank 0 alone reports


# ---------------------------------------------------------------- pure parts

def test_videos_are_found_by_path_or_id(tmp_path: Path) -> None:
    for rel in ("UCF101/Skijet/v_Skijet_g10_c04.avi", "other/clip_b.mkv", "videos/c.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    videos = [VideoAnnotation("Skijet/v_Skijet_g10_c04"), VideoAnnotation("clip_b"),
              VideoAnnotation("x", path="videos/c.mp4"), VideoAnnotation("gone")]
    found = locate_videos(tmp_path, videos)
    assert found == {"Skijet/v_Skijet_g10_c04": tmp_path / "UCF101/Skijet/v_Skijet_g10_c04.avi",
                     "clip_b": tmp_path / "other/clip_b.mkv", "x": tmp_path / "videos/c.mp4",
                     "gone": None}


def test_max_box_acc_from_hits_matches_the_direct_computation() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((12, 7, 7)).astype(np.float32)
    boxes = np.tile([[8.0, 8.0, 40.0, 30.0]], (12, 1, 1))
    boxes[3] = np.nan  # a frame without ground truth
    labels = np.repeat([0, 1, 2], 4)
    direct = max_box_acc_v2(maps, boxes, BOX_TAUS, BOX_IOUS, labels, frame_size=(48, 64))
    halves = [max_box_acc_v2(maps[s], boxes[s], BOX_TAUS, BOX_IOUS, frame_size=(48, 64)).hits
              for s in (slice(0, 5), slice(5, 12))]
    merged = max_box_acc_from_hits(np.concatenate(halves), BOX_TAUS, BOX_IOUS, labels)
    assert merged.value == pytest.approx(direct.value)
    assert merged.best_tau == direct.best_tau


def cropped_explanation(crop: list[int] | None) -> Explanation:
    """Two sampled frames of a 200x60 video whose 60x60 maps peak at map x = 50, y = 30:
    frame x = 120 when they cover the centre square x 70..129, x = 167 over the frame."""
    spatial = np.zeros((2, 60, 60), np.float32)
    spatial[:, 30, 50] = 1
    return Explanation(video="v.mp4", frame_indices=[0, 1], timestamps=[0, 0.1],
                       spatial=spatial, temporal=[0.6, 0.4], classes=["a", "b"],
                       probabilities=[0.9, 0.1], predicted=0, target=0, method="m",
                       video_frames=2, fps=10.0, width=200, height=60, crop=crop)


def test_score_video_places_the_maps_of_a_crop_on_the_frame() -> None:
    gt = VideoAnnotation("v", frames=2, width=200, height=60,
                         boxes={0: np.array([[110.0, 20, 130, 40]])})  # frame pixels
    cropped = score_video(cropped_explanation([70, 0, 130, 60]), gt, 0).spatial
    whole = score_video(cropped_explanation(None), gt, 0).spatial
    assert [cropped[m].tolist() for m in ("pointing_game", "mass_in_box")] == [[1], [1]]
    assert [whole[m].tolist() for m in ("pointing_game", "mass_in_box")] == [[0], [0]]


def test_faithfulness_of_a_crop_leaves_the_rest_of_the_frame_alone() -> None:
    frames = np.random.default_rng(0).integers(1, 256, (2, 60, 200, 3), np.uint8)
    seen = []

    def score(clips: np.ndarray) -> np.ndarray:
        seen.extend(clips)
        return clips.mean(axis=(1, 2, 3, 4)) / 255

    faith = Faithfulness(frames, np.arange(2), np.zeros_like(frames), score, score, steps=2)
    gt = VideoAnnotation("v", frames=2, width=200, height=60)
    curves = score_video(cropped_explanation([70, 0, 130, 60]), gt, 0, faith=faith).curves
    assert curves["deletion"].shape == (2, 3)
    spatial = seen[:6]  # deletion then insertion, 3 clips each
    for clip in spatial:
        np.testing.assert_array_equal(clip[:, :, :70], frames[:, :, :70])
        np.testing.assert_array_equal(clip[:, :, 130:], frames[:, :, 130:])
    assert not spatial[2][:, :, 70:130].any() and not spatial[3][:, :, 70:130].any()
    np.testing.assert_array_equal(spatial[0], frames)
    np.testing.assert_array_equal(spatial[5], frames)


def test_clip_scorer_agrees_with_the_model_and_reuses_work(model: Path) -> None:
    clf = load_classifier(model, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), np.uint8)
    clips = np.stack([frames, frames[::-1], frames])
    expected = torch.softmax(clf.predict(torch.cat([clf.preprocess(c) for c in clips])), -1)
    memo = ScoreMemo()
    by_frame = ClipScorer(clf, 1, memo, by_frame=True)(clips)
    np.testing.assert_allclose(by_frame, expected[:, 1].numpy(), rtol=1e-4)
    assert len(memo.clips) == 2 and len(memo.frames) == 4  # distinct clips, distinct frames
    np.testing.assert_allclose(ClipScorer(clf, 2, memo)(clips[:1]), expected[:1, 2].numpy())


def test_best_methods_knows_which_way_is_better() -> None:
    table = {"a": {"deletion_auc": 0.2, "insertion_auc": 0.5, "tmap": None},
             "b": {"deletion_auc": 0.3, "insertion_auc": 0.50004, "tmap": None}}
    assert best_methods(table) == {"deletion_auc": {"a"}, "insertion_auc": {"a", "b"}}
