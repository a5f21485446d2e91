"""Data set readers: every layout gives the same VideoDataset; bad videos are skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stviz.datasets.readers import VideoItem, check_videos, open_dataset
from stviz.datasets.synth import ACTION_CLASSES, SynthConfig, generate
from stviz.errors import StvizError, StvizWarning


def _touch(root: Path, *names: str) -> None:
    """Empty placeholder videos: the readers only look at names and layout."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _ids(items: list[VideoItem]) -> list[str]:
    return [item.id for item in items]


@pytest.fixture
def ucf(tmp_path: Path) -> Path:
    root = tmp_path / "UCF-101"
    _touch(root, "Basketball/v_Basketball_g01_c01.avi", "Basketball/v_Basketball_g08_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi")
    lists = root / "ucfTrainTestlist"
    _write(lists / "classInd.txt", "1 ApplyEyeMakeup\r\n2 Basketball\r\n")
    _write(lists / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
           "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi 1\nbasketball/v_Basketball_g08_c01.avi 2\n")
    _write(lists / "testlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
           "Basketball/v_Basketball_g01_c01.avi\n")
    _write(lists / "trainlist02.txt", "Basketball/v_Basketball_g01_c01.avi 2\n")
    _write(lists / "testlist02.txt", "Basketball/v_Basketball_g08_c01.avi\n")
    return root


def test_ucf101_split_lists(ucf: Path) -> None:
    ds = open_dataset(ucf)
    assert ds.kind == "ucf101" and ds.root == ucf
    assert ds.classes == ["ApplyEyeMakeup", "Basketball"]
    train, test = ds.split("train"), ds.split("test")
    assert _ids(train) == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01",
                           "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01",
                           "Basketball/v_Basketball_g08_c01"]  # folder case fixed up
    assert [item.label for item in train] == [0, 0, 1]
    assert _ids(test) == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01",
                          "Basketball/v_Basketball_g01_c01"]
    assert all(item.path.is_file() for item in ds.items)
    split2 = open_dataset(ucf, split_id=2)
    assert _ids(split2.split("train")) == ["Basketball/v_Basketball_g01_c01"]
    with pytest.raises(StvizError, match=r"no split 3 lists; choose a split id among 1, 2"):
        open_dataset(ucf, split_id=3)
    with pytest.raises(StvizError, match=r"no videos in split 'val'; choose one of: test, train"):
        ds.split("val")
    (ucf / "ucfTrainTestlist" / "classInd.txt").unlink()
    assert open_dataset(ucf).classes == ["ApplyEyeMakeup", "Basketball"]  # one class per folder


def test_ucf101_lists_beside_the_root_and_class_order_from_classind(ucf: Path) -> None:
    lists = ucf / "ucfTrainTestlist"
    lists.rename(ucf.parent / "ucfTrainTestlist")
    _write(ucf.parent / "ucfTrainTestlist" / "classInd.txt", "2 ApplyEyeMakeup\n1 Basketball\n")
    ds = open_dataset(ucf)
    assert ds.kind == "ucf101" and ds.classes == ["Basketball", "ApplyEyeMakeup"]
    assert Counter(item.label for item in ds.items) == {1: 3, 0: 2}


def test_hmdb51_split_files(tmp_path: Path) -> None:
    _touch(tmp_path, "brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi",
           "cartwheel/d.avi", "cartwheel/e.avi")
    _write(tmp_path / "splits" / "brush_hair_test_split1.txt", "a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    _write(tmp_path / "splits" / "cartwheel_test_split1.txt", "d.avi 2\ne.avi 1\n")
    ds = open_dataset(tmp_path)
    assert ds.kind == "hmdb51" and ds.classes == ["brush_hair", "cartwheel"]
    assert _ids(ds.split("train")) == ["brush_hair/a", "cartwheel/e"]
    assert _ids(ds.split("test")) == ["brush_hair/b", "cartwheel/d"]
    assert [item.label for item in ds.split("test")] == [0, 1]
    _write(tmp_path / "splits" / "cartwheel_test_split1.txt", "d.avi test\n")
    with pytest.raises(StvizError, match=r"cartwheel_test_split1.txt: line 'd.avi test'"):
        open_dataset(tmp_path)


def test_class_folders_without_splits_use_a_stable_hash_split(tmp_path: Path) -> None:
    _touch(tmp_path, *(f"{cls}/clip_{i:03d}.mp4" for cls in ("run", "jump") for i in range(100)))
    _touch(tmp_path, "run/notes.txt", "empty_class/readme.md")
    ds = open_dataset(tmp_path)
    assert ds.kind == "folders" and ds.classes == ["jump", "run"]
    assert len(ds.items) == 200
    test = {item.id for item in ds.split("test")}
    assert 20 <= len(test) <= 60  # 20% of 200, give or take chance
    _touch(tmp_path, "run/clip_999.mp4")  # adding a video moves no other video
    assert {item.id for item in open_dataset(tmp_path).split("test")} - {"run/clip_999"} == test


def test_csv_manifest_with_names_integers_and_splits(tmp_path: Path) -> None:
    _write(tmp_path / "data" / "list.csv",
           "Path, Label ,split\nvids/a.mp4,wave,train\nvids/b.mp4,clap,test\n"
           "/abs/c.mp4,wave,test\n")
    ds = open_dataset(tmp_path / "data")  # found by its header
    assert ds.kind == "csv" and ds.root == tmp_path / "data"
    assert ds.classes == ["clap", "wave"]
    assert [(item.id, item.label, item.split) for item in ds.items] == [
        ("vids/a", 1, "train"), ("vids/b", 0, "test"), ("/abs/c", 1, "test")]
    assert ds.items[0].path == tmp_path / "data" / "vids" / "a.mp4"
    assert ds.items[2].path == Path("/abs/c.mp4")

    rows = "".join(f"v{i}.mp4,{i % 3}\n" for i in range(50))
    _write(tmp_path / "ints.csv", f"path,label\n{rows}")
    ds = open_dataset(tmp_path / "ints.csv")
    assert ds.classes == ["0", "1", "2"] and [item.label for item in ds.items[:4]] == [0, 1, 2, 0]
    assert {item.split for item in ds.items} == {"train", "test"}  # hash split without a column

    _write(tmp_path / "bad.csv", "file,class\na.mp4,wave\n")
    with pytest.raises(StvizError, match=r"bad.csv: a manifest needs a header with `path`"):
        open_dataset(tmp_path / "bad.csv")
    _write(tmp_path / "gap.csv", "path,label\na.mp4,\n")
    with pytest.raises(StvizError, match=r"gap.csv: line 2 has an empty path or label"):
        open_dataset(tmp_path / "gap.csv")


def test_synth_layout(tmp_path: Path) -> None:
    generate(tmp_path, 4, 2, seed=0, cfg=SynthConfig(frames=8, size=32, fps=8), workers=1)
    for where in (tmp_path, tmp_path / "annotations.json"):
        ds = open_dataset(where)
        assert ds.kind == "synth" and ds.classes == list(ACTION_CLASSES) and ds.root == tmp_path
        assert _ids(ds.split("test")) == ["test_00000", "test_00001"]
        assert all(item.path.is_file() for item in ds.items)
    good, bad = check_videos(ds.items)
    assert good == ds.items and bad == []


def test_layout_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StvizError, match="no such file or folder"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(StvizError, match=r"no annotations\.json, class folders with videos or CSV"):
        open_dataset(tmp_path)
    _write(tmp_path / "annotations.json", '{"format": "coco"}')
    with pytest.raises(StvizError, match="not a stviz-synth annotations file"):
        open_dataset(tmp_path)
    _write(tmp_path / "annotations.json", "{not json")
    with pytest.raises(StvizError, match="unreadable JSON"):
        open_dataset(tmp_path)


def test_check_videos_reports_and_skips_bad_videos(tmp_path: Path) -> None:
    from stviz.video import write_video

    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "ok" / "good.mp4", frames, fps=8)
    _write(tmp_path / "ok" / "corrupt.mp4", "this is not a video")
    ds = open_dataset(tmp_path)
    missing = VideoItem(tmp_path / "ok" / "gone.mp4", 0, "train", "ok/gone")
    with pytest.warns(StvizWarning) as caught:
        good, bad = check_videos([*ds.items, missing])
    assert _ids(good) == ["ok/good"]
    assert [item.id for item, _ in bad] == ["ok/corrupt", "ok/gone"]
    assert all(reason for _, reason in bad)
    assert len(caught) == 2 and "corrupt.mp4" in str(caught[0].message)
