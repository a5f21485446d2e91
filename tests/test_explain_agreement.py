"""Agreement between explanations, checked against values computed by hand."""

import math

import numpy as np
import pytest

from stviz.errors import StvizError
from stviz.explain import Explanation, agreement_table, spearman, top_region_iou
from stviz.explain.agreement import top_region


def test_spearman_by_hand():
    # ranks a: 1 2 3 4, b: 2 1 4 3 -> d^2 = 4 -> rho = 1 - 6*4 / (4*15) = 0.6
    assert spearman([0.1, 0.2, 0.3, 0.4], [5, 1, 9, 7]) == pytest.approx(0.6)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    # ties take average ranks: a = 1, 2.5, 2.5, 4 against 1..4 -> Pearson of the ranks
    assert spearman([0, 1, 1, 2], [0, 1, 2, 3]) == pytest.approx(0.9486833)


def test_spearman_of_a_constant_curve_is_nan():
    assert math.isnan(spearman([0.25] * 4, [1, 2, 3, 4]))
    with pytest.raises(ValueError, match="different lengths"):
        spearman([1, 2], [1, 2, 3])


def test_top_region_iou_by_hand():
    a = np.zeros((4, 5))
    b = np.zeros((4, 5))
    a[0, :3] = [3, 2, 1]  # 20 cells, top 15% = 3 cells: (0,0) (0,1) (0,2)
    b[0, 1:4] = [9, 8, 7]  # (0,1) (0,2) (0,3)
    assert top_region(a).sum() == 3
    assert top_region_iou(a, b) == pytest.approx(2 / 4)
    stack_a, stack_b = np.stack([a, a]), np.stack([b, a])
    assert top_region_iou(stack_a, stack_b) == pytest.approx((0.5 + 1) / 2)  # mean over frames


def test_top_region_ties_are_all_included():
    flat = np.ones((4, 5))
    assert top_region(flat).all()  # no preference: the whole map
    a = np.zeros((4, 5))
    a[0, :3] = [3, 2, 1]
    assert top_region_iou(a, flat) == pytest.approx(3 / 20)
    tied = np.zeros((2, 2))
    tied[0] = 1  # 4 cells, top 15% = 1 cell, but two cells tie at the top
    assert top_region(tied).sum() == 2


def expl(method: str, frames: list[int], temporal: list[float], spatial: np.ndarray
         ) -> Explanation:
    n = len(frames)
    return Explanation(video="v.mp4", frame_indices=frames, timestamps=np.array(frames) / 8,
                       spatial=spatial, temporal=temporal, classes=["a", "b"],
                       probabilities=[0.5, 0.5], predicted=0, target=0, method=method,
                       video_frames=max(frames) + 1, fps=8.0, width=n, height=n)


def test_agreement_table_on_shared_frames():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 3, 3))
    a = expl("attention", [0, 3, 6, 9], [0.1, 0.2, 0.3, 0.4], maps)
    b = expl("gradcam", [0, 3, 6, 9], [0.4, 0.3, 0.2, 0.1], maps)
    c = expl("frame-ablation", [0, 3, 6, 9], [1, 1, 1, 1], maps[::-1])
    table = agreement_table([a, b, c])
    assert table["methods"] == ["attention", "gradcam", "frame-ablation"]
    assert table["frames"] == [0, 3, 6, 9] and table["fraction"] == 0.15
    first = table["pairs"][0]
    assert first == {"a": "attention", "b": "gradcam", "spearman": -1.0, "top_region_iou": 1.0}
    assert table["pairs"][1]["spearman"] is None  # constant curve: undefined, not 0
    other = expl("gradcam", [3, 9], [0.5, 0.1], maps[[1, 3]])
    assert agreement_table([a, other])["frames"] == [3, 9]
    with pytest.raises(StvizError, match="share no frame"):
        agreement_table([a, expl("saliency", [1, 2], [0, 1], maps[:2])])
