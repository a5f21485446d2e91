"""Spatial metrics against values computed by hand on tiny maps and boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stviz.evaluate.spatial import (
    aggregate_per_class,
    best_iou,
    box_accuracy,
    iou,
    largest_region_boxes,
    mass_in_box,
    max_box_acc_v2,
    pad_boxes,
    paper_box_accuracy,
    paper_boxes,
    pointing_game,
    shift_boxes,
    spatial_metrics,
)

NAN = np.nan


def test_iou_by_hand() -> None:
    assert iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert iou([0, 0, 1, 1], [1, 0, 2, 1]) == 0  # touching
    assert iou([1, 1, 1, 1], [1, 1, 1, 1]) == 0  # empty union
    assert np.isnan(iou([NAN] * 4, [0, 0, 1, 1]))
    pairs = iou(np.array([[0, 0, 2, 2], [0, 0, 4, 4]])[:, None], np.array([[0, 0, 2, 2],
                                                                           [0, 0, 1, 4]])[None])
    np.testing.assert_allclose(pairs, [[1, 2 / 6], [4 / 16, 4 / 16]])


def test_iou_clamps_each_side() -> None:
    """Diagonally disjoint boxes: both overlap sides are -1, their product +1."""
    a, b = np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    buggy = max(w * h, 0) / (1 + 1 - max(w * h, 0))  # the reference's clamp of the product
    assert buggy == 1.0
    assert iou(a, b) == 0.0


def test_best_iou_any_gt_box() -> None:
    gt = pad_boxes([np.array([[0, 0, 2, 2], [4, 4, 6, 6]]), np.zeros((0, 4)),
                    np.array([[0, 0, 2, 2]])])
    assert gt.shape == (3, 2, 4) and np.isnan(gt[1]).all()
    pred = np.array([[4, 4, 6, 7], [0, 0, 1, 1], [NAN] * 4])
    np.testing.assert_allclose(best_iou(pred, gt), [4 / 6, NAN, 0])


def test_pointing_game_by_hand() -> None:
    maps = np.zeros((4, 4, 4))
    maps[:, 1, 2] = 1  # the maximum at x = 2, y = 1
    boxes = [np.array([[0, 0, 2, 2]]),  # covers x 0..1: distance 1
             np.array([[2, 1, 3, 2]]),  # covers the maximum
             np.array([[10, 10, 12, 12], [0, 3, 1, 4]]),  # distances hypot(8, 9), hypot(2, 2)
             np.zeros((0, 4))]
    np.testing.assert_array_equal(pointing_game(maps, boxes, tolerance=0), [0, 1, 0, NAN])
    np.testing.assert_array_equal(pointing_game(maps, boxes, tolerance=1), [0, 1, 0, NAN])
    np.testing.assert_array_equal(pointing_game(maps, boxes, tolerance=1.5), [1, 1, 0, NAN])
    np.testing.assert_array_equal(pointing_game(maps, boxes, tolerance=3), [1, 1, 1, NAN])


def test_pointing_game_misses_at_exactly_the_tolerance_as_torchray() -> None:
    """TorchRay accepts (u - x)^2 + (v - y)^2 < tolerance^2: 15 px away is a miss, 14 a hit."""
    maps = np.zeros((2, 40, 40))
    maps[:, 20, 30] = 1  # the maximum at x = 30, y = 20
    boxes = np.array([[[0, 0, 16, 40]],  # covers x 0..15: 15 px from x = 30
                      [[0, 0, 17, 40]]], float)  # covers x 0..16: 14 px
    np.testing.assert_array_equal(pointing_game(maps, boxes), [0, 1])
    # TorchRay's acceptance disc, written out, agrees
    v, u = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    for n, (x1, y1, x2, y2) in enumerate(boxes[:, 0].astype(int)):
        mask = np.zeros((40, 40), bool)
        mask[y1:y2, x1:x2] = True
        assert bool((mask & ((v - 20) ** 2 + (u - 30) ** 2 < 15 ** 2)).any()) == [0, 1][n]


def test_pointing_game_upsamples() -> None:
    """[[0, 1], [0, 0]] upsampled to 4x4: row 0 is 0, .25, .75, 1 -> maximum at (x=3, y=0)."""
    maps = np.array([[[0, 1], [0, 0]]], np.float32).repeat(2, axis=0)
    boxes = np.array([[[3, 0, 4, 1]], [[0, 0, 3, 1]]], float)
    np.testing.assert_array_equal(pointing_game(maps, boxes, 0, frame_size=(4, 4)), [1, 0])


def test_mass_in_box_by_hand() -> None:
    m = np.array([[1, 2, 0, -1], [3, 4, 0, 0], [0, 0, 5, 0], [0, 0, 0, 5]], float)
    maps = np.stack([m, m, m, -np.abs(m), m])  # positive total 20
    boxes = [np.array([[0, 0, 2, 2]]),
             np.array([[0, 0, 2, 2], [1, 1, 3, 3]]),  # union 15; counting (1, 1) twice: 19
             np.array([[0.5, 0, 2, 1]]),  # pixel x inside when 0.5 <= x < 2: x = 1 only
             np.array([[0, 0, 4, 4]]),  # no positive mass
             np.zeros((0, 4))]
    np.testing.assert_allclose(mass_in_box(maps, boxes), [0.5, 0.75, 0.1, 0, NAN])


def test_largest_region_counts_pixels_paper_uses_contour_area() -> None:
    """A 5-pixel line (contour area 0) against a 2x2 block (4 pixels, contour area 1)."""
    m = np.zeros((1, 8, 8))
    m[0, 0, :5] = 1
    m[0, 5:7, 5:7] = 1
    np.testing.assert_array_equal(largest_region_boxes(m), [[0, 0, 5, 1]])
    np.testing.assert_array_equal(paper_boxes(m), [[5, 5, 7, 7]])
    gt = np.array([[[5, 5, 7, 7]]], float)
    assert box_accuracy(m, gt, 0.5)[0] == 0 and paper_box_accuracy(m, gt)[0] == 1


def test_box_accuracy_threshold_is_strict() -> None:
    m = np.zeros((8, 8))
    m[0:2, 0:2] = 1.0  # 4 pixels
    m[4:7, 4:7] = 0.25  # 9 pixels: kept when 0.25 > tau * 1
    maps = np.stack([m, m, m])
    gt = np.array([[[4, 4, 7, 7]], [[4, 4, 8, 7]], [[4, 4, 10, 8]]], float)  # IoU 1, .75, .375
    np.testing.assert_array_equal(box_accuracy(maps, gt, 0.5, tau=0.2), [1, 1, 0])
    np.testing.assert_array_equal(box_accuracy(maps, gt, 0.3, tau=0.2), [1, 1, 1])
    np.testing.assert_array_equal(box_accuracy(maps, gt, 0.3, tau=0.25), [0, 0, 0])
    np.testing.assert_array_equal(largest_region_boxes(maps[:1], tau=0.25), [[0, 0, 2, 2]])
    assert np.isnan(largest_region_boxes(np.zeros((1, 4, 4)))).all()
    assert np.isnan(largest_region_boxes(-np.ones((1, 4, 4)))).all()


def test_paper_threshold_200_of_255() -> None:
    """0.79 * 255 = 201.45 -> 201 > 200 is kept; 0.788 * 255 = 200.9 -> 200 is not."""
    maps = np.zeros((3, 6, 6))
    maps[:, 0:2, 0:3] = 1
    maps[0, 2, 0] = 0.79
    maps[1, 2, 0] = 0.788
    np.testing.assert_array_equal(paper_boxes(maps), [[0, 0, 3, 3], [0, 0, 3, 2], [0, 0, 3, 2]])
    gt = np.array([[[0, 0, 3, 3]]] * 3, float)
    np.testing.assert_array_equal(paper_box_accuracy(maps, gt, 0.7), [1, 0, 0])  # IoU 1, 2/3
    np.testing.assert_array_equal(paper_box_accuracy(np.ones((1, 6, 6)), gt[:1]), [0])


def test_work_size_scales_boxes() -> None:
    maps = np.zeros((1, 4, 4))
    maps[0, 1:3, 1] = 1
    np.testing.assert_array_equal(
        largest_region_boxes(maps, frame_size=(8, 8), work_size=(4, 4)), [[2, 2, 4, 6]])
    np.testing.assert_array_equal(
        paper_boxes(maps, frame_size=(8, 8), work_size=(4, 4)), [[2, 2, 4, 6]])


def _three_level_map() -> np.ndarray:
    m = np.zeros((8, 8), np.float32)
    m[1:7, 1:7] = 0.3  # q = 76: kept at tau 0.2 (> 51), not at 0.5 (> 127)
    m[3:5, 3:5] = 1.0
    return m


def test_max_box_acc_v2_by_hand() -> None:
    """Boxes: tau .2 -> [1,1,7,7], tau .5 -> [3,3,5,5]. IoUs with the three GT boxes:
    tau .2: 1, 16/36, 4/36; tau .5: 4/36, 4/16, 1."""
    maps = np.stack([_three_level_map()] * 4)
    gt = np.array([[[1, 1, 7, 7]], [[2, 2, 6, 6]], [[3, 3, 5, 5]], [[NAN] * 4]])
    r = max_box_acc_v2(maps, gt, taus=[0.2, 0.5])
    np.testing.assert_allclose(r.accuracy, [[2 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]])
    assert r.per_iou == pytest.approx({0.3: 2 / 3, 0.5: 1 / 3, 0.7: 1 / 3})
    assert r.best_tau == {0.3: 0.2, 0.5: 0.2, 0.7: 0.2}  # ties: the first tau
    assert r.value == pytest.approx(4 / 9)
    assert r.hits.shape == (4, 2, 3) and np.isnan(r.hits[3]).all()
    # class-balanced at IoU .7: class 0 (frames 0, 1) scores 1/2 then 0, class 1 (frame 2;
    # frame 3 has no ground truth) 0 then 1
    r = max_box_acc_v2(maps, gt, taus=[0.2, 0.5], ious=[0.7], labels=[0, 0, 1, 1])
    np.testing.assert_allclose(r.accuracy[:, 0], [(1 / 2 + 0) / 2, (0 + 1) / 2])


def test_max_box_acc_v2_wsolevaluation_convention_by_hand() -> None:
    """wsolevaluation: +1 on every width and height, predicted x2/y2 clipped to W-1/H-1.

    Frame 0: the box [1, 1, 7, 7] at tau .2 against GT [2, 2, 6, 6]: stviz 16/36 = 0.444,
    wsolevaluation 25/49 = 0.510 (IoU .5: a miss, a hit). Frame 1: a blob up to the
    right and bottom edges, box [4, 4, 8, 8], against GT [4, 4, 8, 8]: stviz 1.0,
    wsolevaluation clips it to [4, 4, 7, 7] and scores 16/25 = 0.64 (IoU .7: a hit, a miss).
    """
    edge = np.zeros((8, 8), np.float32)
    edge[4:8, 4:8] = 1
    maps = np.stack([_three_level_map(), edge])
    gt = np.array([[[2, 2, 6, 6]], [[4, 4, 8, 8]]], float)
    ours = max_box_acc_v2(maps, gt, taus=[0.2], ious=[0.5, 0.7])
    wsol = max_box_acc_v2(maps, gt, taus=[0.2], ious=[0.5, 0.7],
                          box_convention="wsolevaluation")
    np.testing.assert_array_equal(ours.hits[:, 0], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(wsol.hits[:, 0], [[1, 0], [1, 0]])
    assert ours.value == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert wsol.value == pytest.approx((1 + 0) / 2)
    assert iou([1, 1, 7, 7], [2, 2, 6, 6], inclusive=True) == pytest.approx(25 / 49)
    # no contour (a constant map): wsolevaluation predicts [0, 0, 0, 0], 1 px at the origin
    flat = max_box_acc_v2(np.zeros((1, 8, 8), np.float32), np.array([[[0, 0, 1, 1]]], float),
                          taus=[0.5], ious=[0.25], box_convention="wsolevaluation")
    assert flat.value == 1.0  # IoU 1/4 with the 2x2 (inclusive) box
    with pytest.raises(ValueError, match="box_convention"):
        max_box_acc_v2(maps, gt, box_convention="inclusive")


def test_max_box_acc_v2_all_contours_and_holes() -> None:
    two = np.zeros((8, 8), np.float32)
    two[0:3, 0:3] = 1.0  # large blob
    two[6:8, 6:8] = 0.9  # small blob on the ground truth
    ring = np.zeros((8, 8), np.float32)
    ring[1:7, 1:7] = 1
    ring[3:5, 3:5] = 0  # the hole's border box is [2, 2, 6, 6]
    maps = np.stack([two, ring, np.zeros((8, 8), np.float32)])
    gt = np.array([[[6, 6, 8, 8]], [[2, 2, 6, 6]], [[0, 0, 8, 8]]], float)
    multi = max_box_acc_v2(maps, gt, taus=[0.5], ious=[0.5])
    single = max_box_acc_v2(maps, gt, taus=[0.5], ious=[0.5], multi_contour=False)
    np.testing.assert_array_equal(multi.hits[:, 0, 0], [1, 1, 0])  # constant map: no box
    np.testing.assert_array_equal(single.hits[:, 0, 0], [0, 0, 0])
    assert multi.value == pytest.approx(2 / 3) and single.value == 0


def test_max_box_acc_v2_matches_a_plain_loop() -> None:
    """The one-call contour search over stacked thresholds equals one call per threshold."""
    rng = np.random.default_rng(0)
    maps = rng.random((12, 5, 5)).astype(np.float32) ** 3
    gt = np.sort(rng.uniform(0, 40, (12, 2, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(12, 2, 4)
    taus = np.arange(0, 1, 0.05)
    for multi in (True, False):
        got = max_box_acc_v2(maps, gt, taus, frame_size=(30, 40), multi_contour=multi).hits
        for n, m in enumerate(maps):
            up = cv2.resize(m, (40, 30))
            q = ((up - up.min()) / (up.max() - up.min()) * 255).astype(np.uint8)
            for t, tau in enumerate(taus):
                found = cv2.findContours((q > int(tau * 255)).astype(np.uint8), cv2.RETR_TREE,
                                         cv2.CHAIN_APPROX_SIMPLE)[0]
                if not multi:
                    found = [max(found, key=cv2.contourArea)]
                rects = np.array([cv2.boundingRect(c) for c in found], float)
                rects[:, 2:] += rects[:, :2]
                best = np.nan_to_num(iou(rects[:, None], gt[n][None])).max()
                np.testing.assert_array_equal(got[n, t], best >= np.array([0.3, 0.5, 0.7]))


def test_spatial_metrics_equals_single_functions() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((40, 7, 7)).astype(np.float32) - 0.2
    gt = [np.array([[10, 20, 120, 200]]) if i % 3 else np.array([[0, 0, 50, 60], [200, 100,
                                                                                  300, 230]])
          for i in range(40)]
    gt[5] = np.zeros((0, 4))
    size = (240, 320)
    for work in (None, (60, 80)):
        got = spatial_metrics(maps, gt, frame_size=size, work_size=work)
        np.testing.assert_array_equal(got["pointing_game"], pointing_game(maps, gt, 15, size))
        np.testing.assert_allclose(got["mass_in_box"], mass_in_box(maps, gt, size))
        for key, fn, thr in [("box_acc_iou30", box_accuracy, 0.3),
                             ("box_acc_iou50", box_accuracy, 0.5),
                             ("paper_box_acc_iou30", paper_box_accuracy, 0.3)]:
            np.testing.assert_array_equal(got[key], fn(maps, gt, thr, frame_size=size,
                                                       work_size=work))
        assert np.isnan(got["box_iou"][5]) and np.isnan(got["pointing_game"][5])


def test_maps_of_a_crop_are_scored_against_boxes_in_frame_pixels() -> None:
    """A 200x60 frame whose centre square x 70..129 the model saw: its 60x60 map peaks at
    crop x = 50, frame x = 120, inside the frame box x 110..129. Read as covering the
    whole frame instead, the same map peaks at frame x = 167, 38 px right of the box."""
    maps = np.zeros((1, 60, 60), np.float32)
    maps[0, 30, 50] = 1
    box = np.array([[[110, 20, 130, 40]]], float)
    crop = shift_boxes(box, (70, 0))
    np.testing.assert_array_equal(crop, [[[40, 20, 60, 40]]])
    assert pointing_game(maps, crop, frame_size=(60, 60)) == 1
    assert mass_in_box(maps, crop, frame_size=(60, 60)) == 1
    assert pointing_game(maps, box, frame_size=(60, 200)) == 0
    assert mass_in_box(maps, box, frame_size=(60, 200)) == 0


def test_boxes_reaching_past_a_crop_are_not_clipped() -> None:
    """Frame boxes partly or wholly left of a crop at x0 = 20 (crop x < 0 after the shift):
    mass counts the map pixels they cover, the pointing game the distance to the whole
    box, IoU the whole box (clipped to the crop it would be 1)."""
    m = np.zeros((60, 60), np.float32)
    m[30, 5], m[30, 40] = 1, 3  # frame x 25 and 60; the peak at 60
    region = np.zeros((60, 60), np.float32)
    region[10:30, 10:30] = 1  # frame x 30..49
    maps = np.stack([m, m, region])
    boxes = shift_boxes(np.array([[[0, 0, 30, 60]], [[0, 0, 10, 60]], [[10, 10, 50, 30]]],
                                 float), (20, 0))
    np.testing.assert_allclose(mass_in_box(maps[:2], boxes[:2]), [0.25, 0])
    np.testing.assert_array_equal(pointing_game(maps[:2], boxes[:2], tolerance=32), [1, 0])
    np.testing.assert_array_equal(pointing_game(maps[:2], boxes[:2], tolerance=31), [0, 0])
    assert spatial_metrics(maps[2:], boxes[2:])["box_iou"] == pytest.approx(0.5)
    assert max_box_acc_v2(maps[2:], boxes[2:], taus=[0.5], ious=[0.5]).value == 1
    assert max_box_acc_v2(maps[2:], boxes[2:], taus=[0.5], ious=[0.51]).value == 0


def test_aggregate_per_class() -> None:
    mean, per_class = aggregate_per_class([1, 0, 1, NAN, 0.5, NAN], [0, 0, 1, 1, 2, 3])
    assert per_class == {0: 0.5, 1: 1.0, 2: 0.5} and mean == pytest.approx(2 / 3)
