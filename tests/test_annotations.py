"""Annotation loaders: every format gives the same VideoAnnotation form; bad files fail
with one line naming the file and the first bad record; pickles never run code."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from stviz.datasets.annotations import (
    FORMATS,
    VideoAnnotation,
    load_annotations,
    summarize,
)
from stviz.datasets.annotations.safe_pickle import load_pickle
from stviz.errors import StvizError


def _json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _pickle(path: Path, obj: object, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _synth_record(vid: str = "test_00003", n: int = 4, **changes: object) -> dict:
    record = {"id": vid, "path": f"videos/{vid}.mp4", "split": "test", "label": 1,
              "class": "move_right", "frames": n, "fps": 8, "width": 64, "height": 48,
              "segment": [1, 3], "boxes": [[10, 12, 30, 40]] * n}
    record.update(changes)
    return record


def _synth(path: Path, *records: dict) -> Path:
    return _json(path, {"format": "stviz-synth", "version": 1,
                        "classes": ["move_left", "move_right"], "videos": list(records)})


def test_formats_listed() -> None:
    assert FORMATS == ("stviz", "activitynet", "ucf101-24", "gttubes", "ava", "thumos")


# ---------------------------------------------------------------- stviz JSON

def test_stviz_synth(tmp_path: Path) -> None:
    _synth(tmp_path / "annotations.json", _synth_record())
    ann = load_annotations(tmp_path)  # a `stviz synth` output folder
    assert ann.format == "stviz" and ann.classes == ["move_left", "move_right"]
    v = ann.videos["test_00003"]
    assert (v.label, v.label_name, v.frames, v.width, v.height, v.fps) == \
        (1, "move_right", 4, 64, 48, 8.0)
    assert (v.split, v.path, v.tubes, v.segments, v.segment_labels) == \
        ("test", "videos/test_00003.mp4", 1, [(1.0, 3.0)], [1])
    assert sorted(v.boxes) == [0, 1, 2, 3]
    np.testing.assert_array_equal(v.boxes[2], [[10, 12, 30, 40]])
    assert summarize(ann) == {"format": "stviz", "videos": 1, "classes": 2, "tubes": 1,
                              "segments": 1, "annotated_frames": 4, "boxes": 4,
                              "splits": {"test": 1}, "width_min": 64, "width_max": 64,
                              "height_min": 48, "height_max": 48}


def test_find_video_matches_by_file_name(tmp_path: Path) -> None:
    ann = load_annotations(_synth(tmp_path / "a.json", _synth_record(),
                                  _synth_record("x", path="clips/walk_07.avi")))
    assert ann.find_video("/data/test_00003.mp4").id == "test_00003"  # by id
    assert ann.find_video("elsewhere/walk_07.mp4").id == "x"  # by the recorded path's stem
    with pytest.raises(StvizError, match=r"a\.json: no annotation for video 'run'"):
        ann.find_video("run.mp4")


def test_stviz_generic_boxes(tmp_path: Path) -> None:
    """`boxes` as {frame: box | [boxes]} or a per-frame list with gaps and several boxes."""
    path = _json(tmp_path / "a.json", {"videos": [
        {"id": "a", "class": "jump", "frames": 10,
         "boxes": {"3": [0, 0, 5, 5], "7": [[0, 0, 2, 2], [4, 4, 8, 9]]}},
        {"id": "b", "label": 0, "class": "jump", "boxes": [None, [1, 1, 2, 2], [],
                                                         [[0, 0, 1, 1], [2, 2, 3, 3]]]}]})
    ann = load_annotations(path)
    assert ann.classes == ["jump"]
    a, b = ann.videos["a"], ann.videos["b"]
    assert sorted(a.boxes) == [3, 7] and a.boxes[7].shape == (2, 4) and a.tubes == 2
    assert a.label == 0 and a.segments == []
    assert sorted(b.boxes) == [1, 3] and b.boxes[3].shape == (2, 4)
    np.testing.assert_array_equal(a.boxes_at([7, 3, 5])[:, :, 3],
                                  [[2, 9], [5, np.nan], [np.nan, np.nan]])


@pytest.mark.parametrize(("change", "message"), [
    ({"boxes": [[10, 12, 30, 40]] * 3}, "video 'test_00003': 'boxes' has 3 rows but 'frames' is 4"),
    ({"frames": "4"}, "video 'test_00003': 'frames' should be an integer, got '4'"),
    ({"boxes": [[10, 12, 30]] * 4}, "video 'test_00003': 'boxes' at frame 0 should be rows of "
                                    "4 numbers, got shape (1, 3)"),
    ({"boxes": [[30, 12, 10, 40]] * 4}, "video 'test_00003': box at 0 [30.0, 12.0, 10.0, 40.0] "
                                        "has x2 < x1"),
    ({"segment": [3, 9]}, "video 'test_00003': segment [3.0, 9.0] is not 0 <= start <= end"),
    ({"label": 5}, "video 'test_00003': label 5 is outside 0..1"),
    ({"class": "move_left"}, "label 1 is class 'move_right' but 'class' says 'move_left'"),
])
def test_stviz_bad_record(tmp_path: Path, change: dict, message: str) -> None:
    """The message names the file and the FIRST bad record."""
    path = _synth(tmp_path / "ann.json", _synth_record("test_00001"),
                  _synth_record(**change), _synth_record("test_00009", n=2, segment=[0, 1]))
    with pytest.raises(StvizError) as err:
        load_annotations(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_json_and_missing_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"videos": [')
    with pytest.raises(StvizError, match=r"bad\.json: not valid JSON"):
        load_annotations(bad)
    with pytest.raises(StvizError, match=r"video #0: 'id' is missing"):
        load_annotations(_json(tmp_path / "noid.json", {"videos": [{"frames": 3}]}))
    with pytest.raises(StvizError, match=r"'videos' is missing"):
        load_annotations(_json(tmp_path / "x.json", {"other": 1}), format="stviz")


def test_unknown_and_undetectable_format(tmp_path: Path) -> None:
    path = _json(tmp_path / "x.json", {"other": 1})
    with pytest.raises(StvizError, match="cannot tell the annotation format; pass --format "
                                         "with one of: stviz, activitynet, ucf101-24"):
        load_annotations(path)
    with pytest.raises(StvizError, match="unknown annotation format 'kinetics'; pass --format"):
        load_annotations(path, format="kinetics")
    with pytest.raises(StvizError, match="no such file"):
        load_annotations(tmp_path / "absent.json")


# ---------------------------------------------------------------- UCF101-24

def _ucf_db(key: type = str) -> dict:
    """Two videos in the real file's shape: numpy scalars, uint8 boxes, x + w > 255."""
    tube = {"sf": 2, "ef": 5, "label": 1,
            "boxes": np.array([[200, 10, 100, 50]] * 3, np.uint8)}
    return {
        key("Biking/v_Biking_g01_c01"): {
            "numf": np.uint8(6), "label": 1,
            "annotations": [tube, {"sf": 0, "ef": 2, "label": 1,
                                   "boxes": np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.uint16)}]},
        key("Basketball/v_Basketball_g02_c03"): {
            "numf": np.uint16(300), "label": 0,
            "annotations": [{"sf": 0, "ef": 1, "label": 0,
                             "boxes": np.array([[0, 0, 10, 10]], np.uint8)}]},
    }


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_ucf101_24_flat(tmp_path: Path, protocol: int) -> None:
    ann = load_annotations(_pickle(tmp_path / "pyannot.pkl", _ucf_db(), protocol))
    assert ann.format == "ucf101-24" and ann.classes == ["Basketball", "Biking"]
    v = ann.videos["Biking/v_Biking_g01_c01"]
    assert (v.label, v.label_name, v.frames, v.width, v.height, v.split) == \
        (1, "Biking", 6, 320, 240, None)
    assert v.segments == [(2.0, 5.0), (0.0, 2.0)] and v.tubes == 2
    assert sorted(v.boxes) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(v.boxes[4], [[200, 10, 300, 60]])  # no uint8 wrap-around
    np.testing.assert_array_equal(v.boxes[1], [[5, 6, 12, 14]])
    assert summarize(ann)["tubes"] == 3


def test_ucf101_24_wrapped_bytes_keys(tmp_path: Path) -> None:
    db = _ucf_db(key=lambda s: s.encode())
    path = _pickle(tmp_path / "w.pkl", {b"db": db, b"trainvideos": [b"Biking/v_Biking_g01_c01"],
                                        b"classes": [b"Ball", b"Bike"]})
    ann = load_annotations(path)
    assert ann.classes == ["Ball", "Bike"]
    assert {k: v.split for k, v in ann.videos.items()} == {
        "Biking/v_Biking_g01_c01": "train", "Basketball/v_Basketball_g02_c03": "test"}


def test_ucf101_24_bad_tube(tmp_path: Path) -> None:
    db = _ucf_db()
    db["Biking/v_Biking_g01_c01"]["annotations"][0]["ef"] = 6
    with pytest.raises(StvizError, match=r"p.pkl: video 'Biking/v_Biking_g01_c01': tube 0: "
                                         r"'boxes' has 3 rows but ef - sf is 4"):
        load_annotations(_pickle(tmp_path / "p.pkl", db))


def test_ucf101_24_real_file(realdata: Path) -> None:
    ann = load_annotations(realdata / "ucf101_24_pyannot.pkl")
    summary = summarize(ann)
    assert (summary["videos"], summary["classes"], summary["tubes"]) == (3194, 24, 4458)
    assert ann.classes[0] == "Basketball" and ann.classes[-1] == "WalkingWithDog"
    v = ann.videos["Skijet/v_Skijet_g10_c04"]
    assert (v.label_name, v.frames, v.segments) == ("Skijet", 164, [(0.0, 164.0)])
    np.testing.assert_array_equal(v.boxes[0], [[177, 53, 225, 114]])  # x, y, w, h = 177 53 48 61
    every = np.concatenate([b for video in ann.videos.values() for b in video.boxes.values()])
    assert every[:, 2].max() <= 320 and every[:, 3].max() <= 240


# ---------------------------------------------------------------- gttubes

def _gt_tubes() -> dict:
    return {
        "labels": ["clap", "jump"],
        "gttubes": {"jump/v1": {1: [np.array([[1, 0, 0, 10, 10], [2, 1, 1, 11, 11]], np.float32)]},
                    "clap/v2": {0: [np.array([[3, 5, 5, 9, 9]], np.float32),
                                    np.array([[3, 0, 0, 2, 2], [4, 0, 0, 2, 2]], np.float32)],
                                1: [np.array([[4, 1, 1, 3, 3]], np.float32)]}},
        "nframes": {"jump/v1": 2, "clap/v2": 4},
        "train_videos": [["jump/v1"], ["clap/v2"]],
        "test_videos": [["clap/v2"], ["jump/v1"]],
        "resolution": {"jump/v1": (240, 320), "clap/v2": (120, 160)},
    }


def test_gttubes(tmp_path: Path) -> None:
    path = _pickle(tmp_path / "JHMDB-GT.pkl", _gt_tubes())
    ann = load_annotations(path)
    assert ann.format == "gttubes" and ann.classes == ["clap", "jump"]
    v1, v2 = ann.videos["jump/v1"], ann.videos["clap/v2"]
    assert sorted(v1.boxes) == [0, 1]  # 1-based frames 1, 2 -> 0, 1
    assert (v1.split, v1.width, v1.height, v1.segments) == ("train", 320, 240, [(0.0, 2.0)])
    assert (v2.label_name, v2.tubes, v2.split) == ("clap", 3, "test")
    assert v2.boxes[2].shape == (2, 4) and v2.box_labels[3].tolist() == [0, 1]
    assert load_annotations(path, split_number=2).videos["jump/v1"].split == "test"
    with pytest.raises(StvizError, match="has 2 splits; choose a split from 1 to 2, not 3"):
        load_annotations(path, split_number=3)


def test_gttubes_zero_based_frame_is_an_error(tmp_path: Path) -> None:
    data = _gt_tubes()
    data["gttubes"]["jump/v1"][1][0][0, 0] = 0
    with pytest.raises(StvizError, match=r"video 'jump/v1': label 1 tube 0: frame numbers "
                                         r"should be integers in 1..2 \(1-based\)"):
        load_annotations(_pickle(tmp_path / "g.pkl", data))


# ---------------------------------------------------------------- AVA

_AVA = ("-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n"
        "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,11,1\n"
        "-5KQ66BBWC4,0903,0.332,0.194,0.980,0.818,12,0\n"
        "1j20qq1JyX4,0905,0.5,0.5,1.0,1.0,80,3\n")
_LABEL_MAP = ('item {\n  name: "sit"\n  id: 11\n}\nitem {\n  name: "stand"\n  id: 12\n}\n'
              'item {\n  name: "watch (a person)"\n  id: 80\n}\n')


def test_ava(tmp_path: Path) -> None:
    path = tmp_path / "ava_val_v2.2.csv"
    path.write_text(_AVA)
    ann = load_annotations(path)
    assert ann.format == "ava" and ann.classes == ["11", "12", "80"]
    assert ann.class_ids == [11, 12, 80]
    v = ann.videos["-5KQ66BBWC4"]
    assert (v.label, v.tubes, v.split, v.time_unit, v.box_unit) == \
        (None, 2, "val", "seconds", "normalized")
    assert v.boxes[902.0].shape == (2, 4) and v.box_labels[902.0].tolist() == [2, 0]
    r = v.resolved(fps=30, width=400, height=300, time_offset=900)
    assert sorted(r.boxes) == [60, 90]  # round((902 - 900) * 30), round(3 * 30)
    np.testing.assert_allclose(r.boxes[90], [[0.332 * 400, 0.194 * 300, 0.98 * 400, 0.818 * 300]])
    assert (r.time_unit, r.box_unit, r.box_labels[60].tolist()) == ("frames", "pixels", [2, 0])

    labelled = tmp_path / "ava_action_list_v2.2.pbtxt"
    labelled.write_text(_LABEL_MAP)
    ann = load_annotations(path, label_map=labelled)
    assert ann.classes == ["sit", "stand", "watch (a person)"]


def test_ava_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(_AVA + "x,0906,0.1,0.1,0.2,abc,80,1\n")
    with pytest.raises(StvizError, match=r"a.csv: line 5: y2 'abc' is not a number"):
        load_annotations(path, format="ava")
    path.write_text(_AVA.replace("0.283", "1.283", 1))
    with pytest.raises(StvizError, match=r"a.csv: line 1: box .* normalized to 0-1"):
        load_annotations(path)


# ---------------------------------------------------------------- THUMOS, ActivityNet

def test_thumos_folder_and_file(tmp_path: Path) -> None:
    (tmp_path / "Diving_val.txt").write_text("video_validation_0000051 67.5 75.9\n"
                                             "video_validation_0000052 10.0 20.0\n")
    (tmp_path / "CliffDiving_val.txt").write_text("video_validation_0000051 70.0 72.0\n\n")
    (tmp_path / "Ambiguous_val.txt").write_text("video_validation_0000051 1.0 2.0\n")
    ann = load_annotations(tmp_path)
    assert ann.format == "thumos" and ann.classes == ["CliffDiving", "Diving"]
    v = ann.videos["video_validation_0000051"]
    assert v.segments == [(70.0, 72.0), (67.5, 75.9)] and v.segment_labels == [0, 1]
    assert (v.label_name, v.split, v.tubes) == ("Diving", "val", 2)
    r = v.resolved(fps=10)
    assert r.segments == [(700.0, 720.0), (675.0, 759.0)]
    assert r.frame_mask(np.array([674, 675, 758, 759])).tolist() == [False, True, True, False]

    one = load_annotations(tmp_path / "Diving_val.txt")
    assert one.classes == ["Diving"] and len(one.videos) == 2
    (tmp_path / "Diving_val.txt").write_text("video_validation_0000051 67.5\n")
    with pytest.raises(StvizError, match=r"Diving_val\.txt line 1: expected `video_name start"):
        load_annotations(tmp_path)


def test_activitynet(tmp_path: Path) -> None:
    path = _json(tmp_path / "activity_net.v1-3.min.json", {"version": "1.3", "database": {
        "abc": {"duration": 12.5, "subset": "validation", "resolution": "640x360",
                "annotations": [{"segment": [1.0, 4.0], "label": "Surfing"},
                                {"segment": [5.0, 6.0], "label": "Diving"}]},
        "def": {"duration_seconds": 3.0, "subset": "testing", "annotations": []}}})
    ann = load_annotations(path)
    assert ann.format == "activitynet" and ann.classes == ["Diving", "Surfing"]
    v = ann.videos["abc"]
    assert (v.label_name, v.split, v.width, v.height, v.segment_labels) == \
        ("Surfing", "validation", 640, 360, [1, 0])
    r = v.resolved(fps=2)
    assert (r.frames, r.segments) == (25, [(2.0, 8.0), (10.0, 12.0)])
    assert ann.videos["def"].label is None and ann.videos["def"].duration == 3.0


def test_frame_mask_and_boxes_at() -> None:
    v = VideoAnnotation("v", frames=6, segments=[(1, 3), (4, 4.5)],
                        boxes={2: np.array([[0, 0, 1, 1.0]])})
    assert v.frame_mask().tolist() == [False, True, True, False, True, False]
    assert v.boxes_at([2, 3]).shape == (2, 1, 4) and np.isnan(v.boxes_at([3])).all()
    with pytest.raises(ValueError, match="call resolved"):
        VideoAnnotation("s", time_unit="seconds").frame_mask(3)


# ---------------------------------------------------------------- untrusted pickles

def _write_marker(path: str) -> None:
    Path(path).write_text("pwned")


class _Payload:
    def __init__(self, call: object, *args: object):
        self.call, self.args = call, args

    def __reduce__(self) -> tuple:
        return self.call, self.args


@pytest.mark.parametrize("fmt", [None, "ucf101-24", "gttubes"])
def test_malicious_pickle_runs_nothing(tmp_path: Path, fmt: str | None) -> None:
    marker = tmp_path / "marker"
    evil = _pickle(tmp_path / "evil.pkl", {"db": {"v": _Payload(_write_marker, str(marker))}})
    shell = _pickle(tmp_path / "shell.pkl", [_Payload(os.system, f"touch {marker}")])
    # the payloads are real: a plain pickle.loads runs them
    pickle.loads(evil.read_bytes())
    assert marker.exists()
    marker.unlink()
    for path, name in [(evil, "_write_marker"), (shell, "system")]:
        with pytest.raises(StvizError, match=rf"{path.name}: pickle refers to \S+\.{name}, which "
                                             "stviz refuses to load"):
            load_annotations(path, format=fmt)
        assert not marker.exists()


def test_safe_pickle_admits_numpy_and_refuses_builtins(tmp_path: Path) -> None:
    data = {"a": np.arange(3, dtype=np.int16), "b": np.float32(2.5), "c": {1, 2}}
    for protocol in (0, 2, 5):
        got = load_pickle(_pickle(tmp_path / f"ok{protocol}.pkl", data, protocol))
        assert got["a"].dtype == np.int16 and got["b"] == np.float32(2.5) and got["c"] == {1, 2}
    evil = tmp_path / "eval.pkl"
    evil.write_bytes(pickle.dumps(_Payload(eval, "1 + 1")))
    with pytest.raises(StvizError, match=r"pickle refers to builtins\.eval"):
        load_pickle(evil)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(pickle.dumps(data)[:-10])
    with pytest.raises(StvizError, match=r"cut\.pkl: not a readable pickle"):
        load_pickle(cut)
