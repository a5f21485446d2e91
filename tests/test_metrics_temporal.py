"""Temporal metrics against values computed by hand on tiny curves."""

from __future__ import annotations

import numpy as np
import pytest

from stviz.evaluate.temporal import (
    mask_from_segments,
    mass_in_segment,
    paper_coverage,
    segment_iou,
    segments_from_curve,
    segments_from_mask,
    selected_frames,
    temporal_ap,
    temporal_iou,
    tmap,
)


def test_masks_and_segments() -> None:
    assert mask_from_segments([(1, 3)], 5).tolist() == [False, True, True, False, False]
    # the curve sampled frames 0, 8, 16, 24 of a video whose action is frames [10, 24)
    assert mask_from_segments([(10, 24)], np.array([0, 8, 16, 24])).tolist() == \
        [False, False, True, False]
    np.testing.assert_array_equal(segments_from_mask([1, 1, 0, 1, 0, 0, 1]), [[0, 2], [3, 4],
                                                                              [6, 7]])
    assert segments_from_mask([0, 0]).shape == (0, 2)


def test_temporal_ap_by_hand() -> None:
    # ranks 1..4: P = 1, 1/2, 2/3, 1/2; R rises at ranks 1 and 3: (1 + 2/3) / 2
    assert temporal_ap([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(0.8333333)
    assert temporal_ap([0.9, 0.8, 0.3, 0.1], [(0, 1), (2, 3)]) == pytest.approx(0.8333333)
    # a tie enters together: {0.5, 0.5} gives P = 1/2 at R = 1/2, then P = 2/3 at R = 1
    assert temporal_ap([0.5, 0.5, 0.3, 0.1], [1, 0, 1, 0]) == pytest.approx(0.25 + 1 / 3)
    assert temporal_ap([0.5, 0.5, 0.3, 0.1], [0, 1, 1, 0]) == pytest.approx(0.25 + 1 / 3)
    assert np.isnan(temporal_ap([0.2, 0.1], [0, 0]))
    batch = temporal_ap(np.array([[0.9, 0.8, 0.3, 0.1], [0.1, 0.2, 0.3, 0.4]]),
                        [[(0, 1), (2, 3)], [(3, 4)]])
    np.testing.assert_allclose(batch, [0.8333333, 1.0], rtol=1e-6)


def test_selected_frames_and_temporal_iou_by_hand() -> None:
    curve = np.array([0.1, 0.4, 0.3, 0.2])  # mean 0.25: frames 1, 2 selected
    assert selected_frames(curve).tolist() == [False, True, True, False]
    assert selected_frames(curve, threshold=0.15).tolist() == [False, True, True, True]
    assert temporal_iou(curve, [0, 1, 1, 1]) == pytest.approx(2 / 3)
    assert temporal_iou(curve, [(1, 4)], threshold=0.15) == 1.0
    assert temporal_iou(curve, [(0, 1)]) == 0.0
    assert np.isnan(temporal_iou(curve, [0, 0, 0, 0]))
    runs = np.array([0.3, 0.0, 0.3, 0.3, 0.1])  # mean .14: selected 0, 2, 3
    assert temporal_iou(runs, [(0, 1)]) == pytest.approx(1 / 3)
    assert temporal_iou(runs, [(0, 1)], longest=True) == 0.0  # longest run is [2, 4)
    assert temporal_iou(runs, [(2, 4)], longest=True) == 1.0


def test_paper_coverage_by_hand() -> None:
    curve = np.array([0.1, 0.4, 0.3, 0.2])  # selected frames 1, 2
    assert paper_coverage(curve, [(1, 4)]) is True  # covers 2 of 3
    assert paper_coverage(curve, [(2, 4)]) is False  # covers 1 of 2: not MORE than half
    assert paper_coverage(np.full(4, 0.3), [(0, 4)], threshold=0.2) is True  # all selected
    out = paper_coverage(np.stack([curve, curve, curve]), [[(1, 4)], [(2, 4)], []])
    assert out.tolist() == [True, False, False]


def test_mass_in_segment_by_hand() -> None:
    assert mass_in_segment([0.1, 0.4, 0.3, 0.2], [(1, 3)]) == pytest.approx(0.7)
    assert mass_in_segment([-1.0, 2.0, 1.0, 1.0], [(1, 2)]) == pytest.approx(0.5)
    assert mass_in_segment([0.0, -1.0], [(0, 1)]) == 0.0
    assert np.isnan(mass_in_segment([0.5, 0.5], [0, 0]))


def test_segments_from_curve_by_hand() -> None:
    """Normalized: 0, 1/3, 1, 1/3, 0, 0, 2/3, 0; runs: [1,4) and [6,7) at 0.1-0.3,
    [2,3) and [6,7) at 0.4-0.6, [2,3) at 0.7-0.9. Clip mean 7/8."""
    proposals = segments_from_curve([0, 1, 3, 1, 0, 0, 2, 0])
    np.testing.assert_allclose(proposals, [[2, 3, 3 / 0.875], [6, 7, 2 / 0.875],
                                           [1, 4, (5 / 3) / 0.875]])
    # [1, 4) overlaps [2, 3) by 1/3: kept at 0.5, dropped at 0.3
    assert len(segments_from_curve([0, 1, 3, 1, 0, 0, 2, 0], nms_tiou=0.5)) == 3
    assert len(segments_from_curve([0, 1, 3, 1, 0, 0, 2, 0], nms_tiou=0.3)) == 2
    assert segments_from_curve(np.ones(5)).shape == (0, 3)


def test_segment_iou_by_hand() -> None:
    np.testing.assert_allclose(segment_iou([[0, 4], [5, 7]], [[2, 6], [5, 9]]),
                               [[2 / 6, 0], [1 / 5, 2 / 4]])


def test_tmap_by_hand() -> None:
    """Ranked: .95 v1 [0,3) FP, .9 v0 [0,4) TP, .8 v0 [0,3) FP (its GT is taken),
    .7 v1 [5,7) tIoU 2/4 with [5,9): TP up to tIoU .5. Two ground truths."""
    proposals = [np.array([[0, 4, 0.9], [0, 3, 0.8]]), np.array([[0, 3, 0.95], [5, 7, 0.7]])]
    gt = [[(0, 4)], [(5, 9)]]
    mean, per = tmap(proposals, gt)
    # tIoU <= .5: precision 1/2 at both TPs -> (1/2 + 2/4) / 2; above: (1/2) / 2
    assert per == pytest.approx({0.1: 0.5, 0.2: 0.5, 0.3: 0.5, 0.4: 0.5, 0.5: 0.5, 0.6: 0.25,
                                 0.7: 0.25})
    assert mean == pytest.approx(3 / 7)
    # per class: class 0 = v0 (TP first: AP 1), class 1 = v1 (FP, TP: AP 1/2)
    mean, per = tmap(proposals, gt, tious=[0.5], labels=[0, 1])
    assert mean == pytest.approx(0.75)
    # a ground truth matches once: the duplicate is a false positive
    mean, _ = tmap([np.array([[0, 4, 0.9], [0, 4, 0.8]])], [[(0, 4)]], tious=[0.5])
    assert mean == 1.0
    mean, _ = tmap([np.array([[0, 4, 0.8], [0, 4, 0.9]]), np.zeros((0, 3))],
                   [[(0, 4)], [(1, 2)]], tious=[0.5])
    assert mean == 0.5
