"""Renderers, checked by reading back what they wrote.

The synthetic explanation: a 24-frame 96x64 video at 12 fps, sampled every 3rd
frame; every map is 0 except a 3x3-cell hot block whose strength follows
STRENGTH (1.0 only at frame 12); frames are solid grey.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from stviz.errors import StvizError
from stviz.explain.explanation import Explanation
from stviz.render import (
    key_frames,
    render_compare_sheet,
    render_compare_video,
    render_keyframes,
    render_overlay,
    render_temporal,
)
from stviz.render.colors import (
    DEFAULT_ALPHA,
    GT_RGB,
    OUTSIDE_DIM,
    SEGMENT_RGB,
    ColorScale,
    colormap_lut,
)
from stviz.render.compare import compare_sheet_size
from stviz.render.keyframes import keyframes_size
from stviz.render.overlay import PANEL_GAP, strip_height, title_height
from stviz.video import probe, read_frames

W, H, N, FPS, GREY = 96, 64, 24, 12.0, 128
SAMPLED = np.arange(0, N, 3)  # 0, 3, ..., 21
STRENGTH = np.array([0.5, 0.5, 0.5, 0.75, 1.0, 0.75, 0.5, 0.5])  # per sampled frame
HOT_XY = (75, 41)  # inside the hot block's plateau (cells rows 3-5, columns 4-6)
COLD_XY = (15, 50)  # far from it
LUT = colormap_lut("inferno")[:, 0].astype(float)
CROP = [16, 0, 80, 64]  # the centre square the model saw: the hot block is then at x 57-80
DIMMED = round(OUTSIDE_DIM * GREY)  # the frame outside the crop


def blended(level: float) -> np.ndarray:
    """The colour a grey pixel gets under a map at `level` of the clip's scale."""
    return (1 - DEFAULT_ALPHA) * GREY + DEFAULT_ALPHA * LUT[round(level * 255)]


def make_expl(method: str = "mask", strength: np.ndarray = STRENGTH,
              crop: list[int] | None = None) -> Explanation:
    spatial = np.zeros((len(SAMPLED), 7, 7), np.float32)
    spatial[:, 3:6, 4:7] = strength[:, None, None]
    temporal = np.exp(-(((SAMPLED - 12) / 5.0) ** 2))
    return Explanation(video="clip.mp4", frame_indices=SAMPLED, timestamps=SAMPLED / FPS,
                       spatial=spatial, temporal=temporal / temporal.sum(),
                       classes=["walk", "jump"], probabilities=np.array([0.2, 0.8]),
                       predicted=1, target=1, method=method, video_frames=N, fps=FPS,
                       width=W, height=H, crop=crop)


def video(n: int = N, size: tuple[int, int] = (W, H)):
    return ((i, np.full((size[1], size[0], 3), GREY, np.uint8)) for i in range(n))


def still_frames() -> dict[int, np.ndarray]:
    return {int(i): np.full((H, W, 3), GREY, np.uint8) for i in SAMPLED}


def near(pixel: np.ndarray, color: np.ndarray, tol: float) -> bool:
    return float(np.abs(pixel.astype(float) - color).max()) <= tol


def has_color(img: np.ndarray, color: np.ndarray, tol: float = 6) -> bool:
    return bool((np.abs(img[..., :3].astype(float) - color).max(axis=-1) <= tol).any())


@pytest.fixture(scope="module")
def overlay_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_overlay(make_expl(), video(), tmp_path_factory.mktemp("r") / "overlay.mp4")


def test_overlay_has_every_frame_and_the_strip(overlay_mp4: Path) -> None:
    info = probe(overlay_mp4)
    assert info.frames == N
    assert (info.width, info.height) == (W, H + strip_height(H)) == (96, 88)
    assert info.fps == pytest.approx(FPS)


def test_overlay_colours_follow_one_scale_per_clip(overlay_mp4: Path) -> None:
    frames = read_frames(overlay_mp4, [0, 10, 12])
    (x, y), (cx, cy) = HOT_XY, COLD_XY
    assert near(frames[2][y, x], blended(1.0), 24)  # peak frame: the colormap's hot end
    assert near(frames[2][cy, cx], blended(0.0), 24)  # elsewhere: its cold end
    # Half as strong as the peak: mid-scale, not hot (per-frame normalization would be).
    assert near(frames[0][y, x], blended(0.5), 24)
    assert not near(frames[0][y, x], blended(1.0), 60)
    # Frame 10 is not sampled: interpolated between frames 9 (0.75) and 12 (1.0).
    assert near(frames[1][y, x], blended(0.75 + 0.25 / 3), 24)


def test_overlay_cursor_moves(overlay_mp4: Path) -> None:
    frames = read_frames(overlay_mp4, list(range(N)))
    pad_row = frames[:, H + 1].astype(float).mean(axis=-1)  # above the bars: dark but the cursor
    xs = pad_row.argmax(axis=1)
    assert (pad_row.max(axis=1) > 150).all()
    assert (np.diff(xs) > 0).all()


def test_overlay_gif_and_odd_size(tmp_path: Path) -> None:
    gif = render_overlay(make_expl(), video(), tmp_path / "overlay.gif")
    assert iio.imread(gif, index=None).shape[:3] == (N, H + strip_height(H), W)
    odd = render_overlay(make_expl(), video(size=(95, 63)), tmp_path / "odd.mp4")
    assert probe(odd).frames == N


def test_overlay_draws_boxes(tmp_path: Path) -> None:
    boxes = {12: np.array([[10, 10, 40, 50]])}
    out = render_overlay(make_expl(), video(), tmp_path / "boxes.mp4", boxes=boxes)
    with_box, without = read_frames(out, [12, 11])
    def green(p: np.ndarray) -> int:  # a 1-px line loses saturation to 4:2:0 chroma
        return int(p[1]) - max(int(p[0]), int(p[2]))

    assert green(with_box[30, 10]) > 50
    assert green(without[30, 10]) < 10


def test_overlay_at_a_smaller_size_scales_the_boxes(tmp_path: Path) -> None:
    """Frames drawn at half the video's size: boxes (in the video's pixels) follow."""
    boxes = {12: np.array([[20, 20, 80, 60]])}  # at half size: x 10..40, y 10..30
    out = render_overlay(make_expl(), video(size=(W // 2, H // 2)), tmp_path / "half.mp4",
                         boxes=boxes)
    info = probe(out)
    assert (info.width, info.height) == (W // 2, H // 2 + strip_height(H // 2))
    (frame,) = read_frames(out, [12])

    def green(p: np.ndarray) -> int:
        return int(p[1]) - max(int(p[0]), int(p[2]))

    assert green(frame[20, 10]) > 50  # the left edge, scaled
    assert green(frame[20, 20]) < 10  # where the unscaled edge would be: inside, no line


def test_overlay_colours_only_the_crop_the_model_saw(tmp_path: Path) -> None:
    (frame,) = read_frames(render_overlay(make_expl(crop=CROP), video(), tmp_path / "c.mp4"),
                           [12])
    assert near(frame[41, 70], blended(1.0), 24)  # the hot block, squeezed into the crop
    assert near(frame[25, 30], blended(0.0), 12)  # the cold end, inside the crop
    for x in (5, 88):  # outside: the plain frame, dimmed, no colour
        assert near(frame[30, x], np.full(3, DIMMED), 6)
    assert frame[30, 15].mean() > 150 and frame[30, 80].mean() > 150  # the outline
    assert near(frame[30, 20], blended(0.0), 12)  # just inside it: the map


def test_a_crop_is_blended_exactly_and_the_rest_only_dimmed() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), np.uint8)
    values = np.random.default_rng(1).random((7, 7)).astype(np.float32)
    scale = ColorScale(0.0, 1.0)
    x0, y0, x1, y1 = 16, 8, 80, 56
    img = scale.overlay(frame, values, DEFAULT_ALPHA, region=(x0, y0, x1, y1))
    expect = scale.overlay(frame[y0:y1, x0:x1], values, DEFAULT_ALPHA)
    np.testing.assert_array_equal(img[y0:y1, x0:x1], expect)
    outside = np.ones((H, W), bool)
    outside[y0 - 1:y1 + 1, x0 - 1:x1 + 1] = False  # the crop and its outline
    dimmed = np.round(frame * OUTSIDE_DIM)
    assert np.abs(img[outside] - dimmed[outside]).max() <= 1
    assert (img[y0 - 1, x0:x1] == 255).all() and (img[y0:y1, x1] == 255).all()
    # the whole frame as region: the plain overlay, no outline
    np.testing.assert_array_equal(scale.overlay(frame, values, 0.5, region=(0, 0, W, H)),
                                  scale.overlay(frame, values, 0.5))


def test_overwrite_is_refused_unless_asked(tmp_path: Path, overlay_mp4: Path) -> None:
    with pytest.raises(StvizError, match="exists"):
        render_overlay(make_expl(), video(), overlay_mp4)
    with pytest.raises(StvizError, match="exists"):
        render_keyframes(make_expl(), still_frames(), overlay_mp4)
    out = render_overlay(make_expl(), video(4), tmp_path / "o.mp4")
    render_overlay(make_expl(), video(), out, overwrite=True)
    assert probe(out).frames == N


def test_keyframes_sheet(tmp_path: Path) -> None:
    expl = make_expl()
    out = render_keyframes(expl, still_frames(), tmp_path / "keyframes.png", k=6,
                           boxes={12: np.array([5, 5, 60, 50])})
    img = iio.imread(out)
    assert (img.shape[1], img.shape[0]) == keyframes_size(6, (W, H), 1280)
    assert has_color(img, blended(1.0))
    assert has_color(img, np.array(GT_RGB))

    def dimmed_pixels(sheet: np.ndarray) -> int:
        return int((np.abs(sheet[..., :3].astype(float) - DIMMED).max(axis=-1) <= 2).sum())

    cropped = iio.imread(render_keyframes(make_expl(crop=CROP), still_frames(),
                                          tmp_path / "cropped.png", k=6))
    assert has_color(cropped, blended(1.0))
    assert dimmed_pixels(cropped) > 20 * dimmed_pixels(img) + 10000  # a third of each frame


def test_temporal_figure(tmp_path: Path) -> None:
    plain = iio.imread(render_temporal(make_expl(), still_frames(), tmp_path / "t.png"))
    assert plain.shape[:2] == (640, 1280)
    assert has_color(plain, blended(1.0))
    assert not has_color(plain, np.array(SEGMENT_RGB), 2)
    shaded = iio.imread(render_temporal(make_expl(), still_frames(), tmp_path / "s.png",
                                        segment=(9, 15), size=(900, 500)))
    assert shaded.shape[:2] == (500, 900)
    assert has_color(shaded, np.array(SEGMENT_RGB), 2)


def test_key_frames_choice() -> None:
    expl = make_expl()
    assert key_frames(expl, 3) == [9, 12, 15]  # the most relevant, in time order
    assert key_frames(expl, 3, spread=True) == [0, 12, 21]
    assert key_frames(expl, 50) == [int(i) for i in SAMPLED]


def test_compare_video_panels(tmp_path: Path) -> None:
    expls = [make_expl("mask"), make_expl("gradcam", STRENGTH[::-1].copy())]
    out = render_compare_video(expls, video(), tmp_path / "compare.mp4")
    info = probe(out)
    panel_h = title_height(H) + H + strip_height(H)
    assert (info.width, info.height, info.frames) == (2 * W + PANEL_GAP, panel_h, N)
    frame = read_frames(out, [12])[0]
    (x, y), top = HOT_XY, title_height(H)
    assert near(frame[top + y, x], blended(1.0), 24)  # mask peaks at frame 12,
    assert near(frame[top + y, W + PANEL_GAP + x], blended(0.75), 24)  # gradcam 3 frames earlier
    assert frame[:, W:W + PANEL_GAP].max() < 60  # two panels, a dark gap between them


def test_compare_sheet(tmp_path: Path) -> None:
    expls = [make_expl("mask"), make_expl("gradcam", STRENGTH * 3.0), make_expl("rise")]
    img = iio.imread(render_compare_sheet(expls, still_frames(), tmp_path / "sheet.png", k=4))
    assert (img.shape[1], img.shape[0]) == compare_sheet_size(3, 4, (W, H), 1600)
    assert has_color(img, blended(1.0))  # each method on its own scale: 3x is still "hot"
    with pytest.raises(ValueError, match="lacks video frame"):
        render_compare_sheet(expls, {0: still_frames()[0]}, tmp_path / "x.png")


def test_peaks_match_scipy_find_peaks_with_prominence() -> None:
    """The curve's peaks, computed without scipy.signal (slow to import), are scipy's."""
    from scipy.signal import find_peaks

    from stviz.render.temporal import peaks

    assert peaks(np.array([0.0, 1.0, 0.0, 0.5, 0.45, 1.0])).tolist() == [1, 5]
    assert peaks(np.array([0.0, 1.0, 1.0, 1.0, 0.0])).tolist() == [2]  # plateau middle
    assert peaks(np.ones(4)).tolist() == []
    rng = np.random.default_rng(0)
    for n in range(500):
        curve = rng.integers(0, 4, rng.integers(1, 30)).astype(float) if n % 2 else \
            rng.random(rng.integers(1, 30))
        lo, hi = curve.min(), curve.max()
        padded = np.concatenate([[lo - 1.0], curve, [lo - 1.0]])
        expected = find_peaks(padded, prominence=0.1 * (hi - lo))[0] - 1 if hi > lo else []
        assert peaks(curve).tolist() == list(expected), curve
