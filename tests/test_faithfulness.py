"""Deletion / insertion curves with toy score functions whose curves are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from stviz.evaluate.faithfulness import (
    auc,
    blurred,
    deletion_auc,
    deletion_curve,
    insertion_auc,
    insertion_curve,
    temporal_deletion_curve,
    temporal_insertion_curve,
)


def _red_mean(clip: np.ndarray) -> float:
    return float(clip[..., 0].mean())


def _red_mean_batched(clips: np.ndarray) -> np.ndarray:
    return clips[..., 0].mean(axis=(1, 2, 3))


@pytest.fixture
def tiny() -> tuple[np.ndarray, np.ndarray]:
    """One 2x2 frame whose red values 4, 3, 2, 1 the map ranks in that order."""
    frames = np.zeros((1, 2, 2, 3))
    frames[0, :, :, 0] = [[4, 3], [2, 1]]
    return frames, np.array([[[4, 3], [2, 1]]], float)


def test_auc_trapezoid() -> None:
    assert auc([0, 0.5, 1], [1, 0.5, 0]) == 0.5
    assert auc([0, 0.25, 1], [0, 1, 1]) == pytest.approx(0.125 + 0.75)


def test_deletion_by_hand(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    frames, maps = tiny
    zero = np.zeros_like(frames)
    fractions, scores = deletion_curve(frames, maps, _red_mean, steps=4, baseline=zero)
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(scores, [10 / 4, 6 / 4, 3 / 4, 1 / 4, 0])
    assert deletion_auc(frames, maps, _red_mean, steps=4, baseline=zero) == pytest.approx(0.9375)


def test_insertion_by_hand(tiny: tuple[np.ndarray, np.ndarray]) -> None:
    frames, maps = tiny
    zero = np.zeros_like(frames)
    _, scores = insertion_curve(frames, maps, _red_mean, steps=4, baseline=zero)
    np.testing.assert_allclose(scores, [0, 4 / 4, 7 / 4, 9 / 4, 10 / 4])
    assert insertion_auc(frames, maps, _red_mean, steps=4, baseline=zero) == pytest.approx(1.5625)
    # the batched scorer gives the same curve, whatever the batch size
    for batch_size in (1, 2, 8):
        _, batched = insertion_curve(frames, maps, _red_mean_batched, steps=4, baseline=zero,
                                     batch_size=batch_size)
        np.testing.assert_allclose(batched, scores)


def test_maps_are_upsampled_to_the_frame() -> None:
    """[[1, 0], [0, 0]] upsampled to 4x4 ranks the top-left quadrant first (1, .75, .75,
    .5625 against .25 next), so deleting 1/4 of the pixels empties that quadrant."""
    frames = np.ones((1, 4, 4, 3), np.float32)

    def top_left(clip: np.ndarray) -> float:
        return float(clip[0, :2, :2, 0].mean())

    _, scores = deletion_curve(frames, np.array([[[1, 0], [0, 0]]]), top_left, steps=4,
                               baseline=np.zeros_like(frames))
    np.testing.assert_allclose(scores, [1, 0, 0, 0, 0])


def test_ties_break_in_raster_order() -> None:
    frames = np.zeros((1, 1, 4, 3))
    frames[0, 0, :, 0] = [1, 2, 3, 4]
    _, scores = deletion_curve(frames, np.ones((1, 1, 4)), _red_mean, steps=4,
                               baseline=np.zeros_like(frames))
    np.testing.assert_allclose(scores, [10 / 4, 9 / 4, 7 / 4, 4 / 4, 0])


def test_a_region_ranks_and_perturbs_only_its_pixels() -> None:
    """A 2x4 frame whose right half (red 4, 3 / 2, 1) the model saw, the left half red 9:
    fractions are of the region's 4 pixels, the left half is never touched."""
    frames = np.zeros((1, 2, 4, 3))
    frames[0, :, :, 0] = [[9, 9, 4, 3], [9, 9, 2, 1]]
    maps = np.array([[[4, 3], [2, 1]]], float)  # at the region's size
    zero = np.zeros_like(frames)
    options = {"steps": 4, "baseline": zero, "region": (2, 0, 4, 2)}
    fractions, deleted = deletion_curve(frames, maps, _red_mean, **options)
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(deleted, np.array([46, 42, 39, 37, 36]) / 8)
    _, inserted = insertion_curve(frames, maps, _red_mean_batched, batch_size=2, **options)
    np.testing.assert_allclose(inserted, np.array([36, 40, 43, 45, 46]) / 8)
    # a map of another size is resized to the region (a constant one: ties in raster order)
    _, upsampled = deletion_curve(frames, np.ones((1, 1, 1)), _red_mean, **options)
    np.testing.assert_allclose(upsampled, np.array([46, 42, 39, 37, 36]) / 8)
    with pytest.raises(ValueError, match="not inside the 4x2 frames"):
        deletion_curve(frames, maps, _red_mean, region=(2, 0, 5, 2))


def test_default_blur_baseline_keeps_uint8() -> None:
    frames = np.full((2, 12, 16, 3), 90, np.uint8)
    frames[:, 4:8, 6:10] = 250
    seen = []

    def score(clip: np.ndarray) -> float:
        seen.append(clip.dtype)
        return float(clip.mean())

    _, scores = deletion_curve(frames, np.random.default_rng(0).random((2, 3, 3)), score,
                               steps=2)
    assert set(seen) == {np.dtype(np.uint8)}
    assert scores[-1] == pytest.approx(blurred(frames).mean())
    flat = np.full((1, 8, 8, 3), 7, np.uint8)
    assert (blurred(flat) == 7).all()  # a blur keeps a constant frame


def test_temporal_curves_by_hand() -> None:
    """Frames of red 1, 2, 3, 4; relevance ranks frames 1, 3, 2, 0; mean frame 2.5."""
    frames = np.zeros((4, 1, 1, 3))
    frames[:, 0, 0, 0] = [1, 2, 3, 4]
    relevance = [0.1, 0.4, 0.2, 0.3]
    fractions, deleted = temporal_deletion_curve(frames, relevance, _red_mean)
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1])
    # replace 2 -> 2.5, then 4 -> 2.5, then 3 -> 2.5, then 1 -> 2.5
    np.testing.assert_allclose(deleted, [10 / 4, 10.5 / 4, 9 / 4, 8.5 / 4, 10 / 4])
    _, inserted = temporal_insertion_curve(frames, relevance, _red_mean_batched, batch_size=3)
    np.testing.assert_allclose(inserted, [10 / 4, 9.5 / 4, 11 / 4, 11.5 / 4, 10 / 4])
    _, zeroed = temporal_deletion_curve(frames, relevance, _red_mean,
                                        baseline=np.zeros_like(frames))
    np.testing.assert_allclose(zeroed, [10 / 4, 8 / 4, 4 / 4, 1 / 4, 0])


def test_temporal_mean_frame_rounds_uint8() -> None:
    frames = np.array([0, 1, 1, 1], np.uint8).reshape(4, 1, 1, 1).repeat(3, axis=3)
    clips = []
    temporal_deletion_curve(frames, [1, 0, 0, 0], lambda c: clips.append(c) or 0.0)
    assert clips[-1].dtype == np.uint8 and (clips[-1] == 1).all()  # mean 0.75 -> 1


def test_length_mismatch_is_a_bug() -> None:
    with pytest.raises(ValueError, match="2 maps for 1 frames"):
        deletion_curve(np.zeros((1, 2, 2, 3)), np.zeros((2, 2, 2)), _red_mean)
    with pytest.raises(ValueError, match="3 relevance values for 1 frames"):
        temporal_deletion_curve(np.zeros((1, 2, 2, 3)), [1, 2, 3], _red_mean)
