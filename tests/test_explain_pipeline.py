"""From a video file to Explanations: sampling, dense windows, targets, comparison."""

import numpy as np
import pytest
import torch
from tiny_models import T, tiny_stviz

from stviz.errors import StvizError, StvizWarning
from stviz.explain import (
    Explanation,
    agreement_table,
    as_classifier,
    compare_methods,
    explain_video,
)
from stviz.video import read_frames, uniform_indices, write_video

FPS = 8.0


@pytest.fixture(scope="module")
def clf():
    return as_classifier(tiny_stviz())


def moving_square(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((64, 80, 3), 40, np.uint8)
        f[10:30, 5 * i % 60:5 * i % 60 + 20] = (220, 60, 30)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", moving_square(12), FPS)


def test_default_mode_samples_t_frames(clf, video, tmp_path):
    expl = explain_video(clf, video)
    idx = uniform_indices(12, T)
    assert list(expl.frame_indices) == list(idx) == [1, 4, 7, 10]
    np.testing.assert_allclose(expl.timestamps, idx / FPS)
    assert expl.fill == "linear" and expl.method == "attention"
    assert (expl.video_frames, expl.width, expl.height, expl.fps) == (12, 80, 64, FPS)
    assert expl.spatial.shape == (T, 2, 2) and expl.target == expl.predicted
    assert expl.probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert expl.params["clip_frames"] == T and expl.seconds > 0
    # The maps are the network's own masks on exactly those frames.
    out = clf.module(clf.preprocess(read_frames(video, idx)))
    np.testing.assert_allclose(expl.spatial, out.masks[0].detach().numpy(), rtol=1e-6)
    expl.save(tmp_path / "e")
    back = Explanation.load(tmp_path / "e")
    np.testing.assert_array_equal(back.frame_indices, expl.frame_indices)
    np.testing.assert_allclose(back.spatial, expl.spatial)
    assert back.params == expl.params and back.method == "attention"


def test_a_model_that_sees_a_centre_crop_says_where_its_maps_lie(clf, video):
    assert explain_video(clf, video).crop is None
    cropping = as_classifier(tiny_stviz())
    cropping.crop = 0.5  # the centre 32x32 of the 80x64 frames
    assert explain_video(cropping, video, method="gradcam").crop == [24, 16, 56, 48]


def test_dense_mode_explains_every_frame(clf, video, tmp_path):
    calls = []
    expl = explain_video(clf, video, method="saliency", dense=True, window=4, stride=2,
                         progress=lambda done, total: calls.append((done, total)))
    assert list(expl.frame_indices) == list(range(12)) and expl.fill == "dense"
    assert calls == [(i, 5) for i in range(1, 6)]  # windows start at 0, 2, 4, 6, 8
    assert expl.params["windows"] == 5 and expl.params["stride"] == 2
    assert np.isfinite(expl.spatial).all() and (expl.spatial >= 0).all()
    expl.save(tmp_path / "d")
    assert len(Explanation.load(tmp_path / "d").frame_indices) == 12


def test_dense_average_over_covering_windows(clf, video):
    expl = explain_video(clf, video, dense=True, window=4, stride=2)
    frames = read_frames(video, range(12))
    masks = {}
    for start in (0, 2):  # frame 3 lies in the windows starting at 0 and 2
        out = clf.module(clf.preprocess(frames[start:start + 4]))
        masks[start] = out.masks[0, 3 - start].detach().numpy()
    np.testing.assert_allclose(expl.spatial[3], (masks[0] + masks[2]) / 2, rtol=1e-5)
    out = clf.module(clf.preprocess(frames[0:4]))  # frame 0: the first window only
    np.testing.assert_allclose(expl.temporal[0], out.weights[0, 0].item(), rtol=1e-5)


def test_dense_windows_resampled_to_t(clf, video):
    expl = explain_video(clf, video, dense=True, window=6)  # stride 3, 6 frames -> T=4
    assert list(expl.frame_indices) == list(range(12)) and expl.params["windows"] == 3
    with pytest.raises(StvizError, match="--stride 5 > --window 4"):
        explain_video(clf, video, dense=True, window=4, stride=5)


def test_short_video_warns_and_repeats_frames(clf, tmp_path):
    short = write_video(tmp_path / "short.mp4", moving_square(3), FPS)
    with pytest.warns(StvizWarning, match="3 frames < T=4, repeating nearest frames"):
        expl = explain_video(clf, short)
    assert list(expl.frame_indices) == [0, 1, 2]  # frame 1 was sampled twice: averaged
    with pytest.warns(StvizWarning, match="3 frames < window=4"):
        dense = explain_video(clf, short, dense=True)
    assert list(dense.frame_indices) == [0, 1, 2]


def test_targets(clf, video):
    assert explain_video(clf, video, method="gradcam", target="b").target == 1
    assert explain_video(clf, video, method="gradcam", target="2").target == 2
    with pytest.raises(StvizError, match=r"--target jump: not a class.*e\.g\. a, b, c"):
        explain_video(clf, video, method="gradcam", target="jump")
    with pytest.raises(StvizError, match="out of range"):
        explain_video(clf, video, method="gradcam", target=7)


def test_compare_methods_reads_once_attention_first(clf, video, monkeypatch):
    import stviz.explain.pipeline as pipeline

    reads = []
    real = pipeline.read_frames
    monkeypatch.setattr(pipeline, "read_frames", lambda *a, **k: reads.append(1) or real(*a, **k))
    expls = compare_methods(clf, video, ["gradcam", "frame-ablation"], target="c")
    assert [e.method for e in expls] == ["attention", "gradcam", "frame-ablation"]
    assert len(reads) == 1
    assert all(list(e.frame_indices) == [1, 4, 7, 10] and e.target == 2 for e in expls)
    assert len({e.predicted for e in expls}) == 1
    assert expls[1].params["layer"].startswith("backbone")
    table = agreement_table(expls)
    assert [(p["a"], p["b"]) for p in table["pairs"]] == [
        ("attention", "gradcam"), ("attention", "frame-ablation"), ("gradcam", "frame-ablation")]


def test_accepts_an_attention_model_and_inference_mode(video):
    model = tiny_stviz()
    with torch.inference_mode():
        expl = explain_video(model, video, method="saliency")
    assert expl.spatial.sum() > 0
