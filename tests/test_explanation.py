"""`Explanation`: saving and loading, and where its maps lie on the frame when the model
saw only a centre crop of it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from stviz.explain.explanation import SUMMARY_FILE, Explanation

W, H = 100, 60
CROP = [20, 0, 80, 60]  # the 60x60 centre square


def make_expl(crop: list[int] | None = CROP, **fields) -> Explanation:
    spatial = np.arange(3 * 3 * 3, dtype=np.float32).reshape(3, 3, 3)
    return Explanation(video="v.mp4", frame_indices=[0, 2, 4], timestamps=[0, 0.2, 0.4],
                       spatial=spatial, temporal=[0.2, 0.5, 0.3], classes=["a", "b"],
                       probabilities=[0.3, 0.7], predicted=1, target=1, method="m",
                       video_frames=5, fps=10.0, width=W, height=H, crop=crop, **fields)


def test_the_crop_is_saved_and_loaded(tmp_path: Path) -> None:
    make_expl().save(tmp_path / "e")
    assert json.loads((tmp_path / "e" / SUMMARY_FILE).read_text())["crop"] == CROP
    assert Explanation.load(tmp_path / "e").crop == CROP
    make_expl(None).save(tmp_path / "none")
    assert Explanation.load(tmp_path / "none").crop is None


def test_an_explanation_saved_before_crops_loads_without_one(tmp_path: Path) -> None:
    make_expl().save(tmp_path)
    summary = json.loads((tmp_path / SUMMARY_FILE).read_text())
    del summary["crop"]
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(summary))
    assert Explanation.load(tmp_path).crop is None


def test_upsampled_is_the_resized_map_in_the_crop_and_zero_outside() -> None:
    expl = make_expl()
    full = expl.upsampled(2)
    assert full.shape == (H, W)
    inside = cv2.resize(expl.spatial[1], (60, 60), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(full[:, 20:80], inside)
    assert not full[:, :20].any() and not full[:, 80:].any()
    # at half the video's size the crop is scaled with the frame
    half = expl.upsampled(2, (W // 2, H // 2))
    assert expl.region((W // 2, H // 2)) == (10, 0, 40, 30)
    np.testing.assert_array_equal(half[:, 10:40], cv2.resize(expl.spatial[1], (30, 30)))
    assert not half[:, :10].any() and not half[:, 40:].any()


def test_without_a_crop_the_maps_cover_the_frame() -> None:
    expl = make_expl(None)
    assert expl.region() == (0, 0, W, H) and expl.region((50, 30)) == (0, 0, 50, 30)
    np.testing.assert_array_equal(expl.upsampled(0), cv2.resize(expl.spatial[0], (W, H)))


@pytest.mark.parametrize("crop", [
    [20, 0, 80], [20, 0, 80, 60, 1], [20.0, 0, 80, 60], [True, 0, 80, 60], "20,0,80,60",
    [80, 0, 20, 60], [20, 30, 80, 30], [-1, 0, 59, 60], [20, 0, 101, 60], [20, 0, 80, 61]])
def test_invalid_crops_are_refused(crop) -> None:
    with pytest.raises(ValueError, match="crop"):
        make_expl(crop)


def test_a_crop_of_a_video_of_unknown_size_is_only_checked_for_order() -> None:
    expl = Explanation(video="v.mp4", frame_indices=[0], timestamps=[0],
                       spatial=np.zeros((1, 2, 2)), temporal=[1], classes=["a"],
                       probabilities=[1], predicted=0, target=0, method="m",
                       crop=np.array([0, 0, 500, 500]))
    assert expl.crop == [0, 0, 500, 500] and isinstance(expl.crop[0], int)
