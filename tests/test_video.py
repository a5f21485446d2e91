"""Decoding, sampling and encoding (stviz.video), on videos written on the fly."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from stviz import video
from stviz.errors import StvizError, StvizWarning
from stviz.video import (
    VideoWriter,
    all_indices,
    fit_size,
    iter_frames,
    mp4_encoder,
    probe,
    read_frames,
    sliding_windows,
    uniform_indices,
    write_video,
)

# A stviz warning nobody asked for is a failure; tests that expect one catch it.
pytestmark = pytest.mark.filterwarnings("error::stviz.errors.StvizWarning")

COLOURS = [
    (220, 30, 30),
    (30, 200, 40),
    (40, 50, 210),
    (240, 240, 20),
    (128, 128, 128),
    (20, 20, 20),
]
TOL = 8  # H.264 / yuv420p is lossy; flat regions come back within a few levels


def _solid(colours: list[tuple[int, int, int]], width: int, height: int) -> list[np.ndarray]:
    return [np.full((height, width, 3), c, np.uint8) for c in colours]


def _ramp(n: int, width: int = 32, height: int = 24) -> list[np.ndarray]:
    """Frames that differ from each other everywhere, to tell any two apart after decoding."""
    frames = []
    for i in range(n):
        f = np.empty((height, width, 3), np.uint8)
        f[..., 0], f[..., 1], f[..., 2] = (i * 7) % 256, (i * 29) % 256, 255 - (i * 3) % 256
        frames.append(f)
    return frames


def _mjpg_avi(path: Path, n: int) -> Path:
    """An AVI/MJPG written by OpenCV: it still decodes after its tail is cut off."""
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(n):
        out.write(np.full((48, 64, 3), i * 5, np.uint8))
    out.release()
    return path


class _CapWrapper:
    """A VideoCapture whose answer to one property is replaced, to fake odd containers."""

    def __init__(self, cap: cv2.VideoCapture, prop: int, answer: Callable[[float], float]):
        self._cap, self._prop, self._answer = cap, prop, answer

    def get(self, prop: int) -> float:
        real = self._cap.get(prop)
        return self._answer(real) if prop == self._prop else real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cap, name)


def _fake(monkeypatch: pytest.MonkeyPatch, prop: int, answer: Callable[[float], float]) -> None:
    """Make every capture stviz.video opens answer `answer(real value)` for `prop`."""
    real_open = video._open
    monkeypatch.setattr(video, "_open", lambda p: _CapWrapper(real_open(p), prop, answer))


# --- sampling ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "t", "expected"),
    [
        (10, 5, [1, 3, 5, 7, 9]),
        (3, 6, [0, 0, 1, 1, 2, 2]),  # shorter than T: the nearest frames repeat
        (7, 7, [0, 1, 2, 3, 4, 5, 6]),
        (10, 1, [5]),
        (1, 4, [0, 0, 0, 0]),
        (280, 8, [17, 52, 87, 122, 157, 192, 227, 262]),
    ],
)
def test_uniform_indices_segment_centres(n: int, t: int, expected: list[int]) -> None:
    got = uniform_indices(n, t)
    assert got.dtype == np.int64 and got.shape == (t,)
    assert got.tolist() == expected


def test_uniform_indices_match_the_formula_and_stay_in_range() -> None:
    for n in (1, 2, 5, 16, 99, 1000, 18001):
        for t in (1, 3, 8, 16, 32, 64):
            got = uniform_indices(n, t)
            assert got.tolist() == [int(np.floor((i + 0.5) * n / t)) for i in range(t)]
            assert got.min() >= 0 and got.max() < n and np.all(np.diff(got) >= 0)


@pytest.mark.parametrize(("n", "t"), [(0, 4), (10, 0), (-1, 3), (5, -2)])
def test_uniform_indices_rejects_bad_args(n: int, t: int) -> None:
    with pytest.raises(ValueError, match="need t >= 1"):
        uniform_indices(n, t)


def test_all_indices() -> None:
    assert all_indices(4).tolist() == [0, 1, 2, 3] and all_indices(4).dtype == np.int64


@pytest.mark.parametrize(
    ("n", "window", "stride"),
    [(10, 4, 3), (11, 4, 3), (100, 16, 8), (17, 16, 16), (9, 2, 5), (16, 16, 4)],
)
def test_sliding_windows_cover_the_video_and_end_at_its_end(
    n: int, window: int, stride: int
) -> None:
    wins = sliding_windows(n, window, stride)
    for w in wins:
        assert w.dtype == np.int64 and len(w) == window
        assert np.all(np.diff(w) == 1)  # consecutive frames
    assert wins[0][0] == 0 and wins[-1][-1] == n - 1
    starts = [int(w[0]) for w in wins]
    assert starts == sorted(set(starts))
    assert np.all(np.diff(starts) <= stride)
    if stride <= window:  # a larger stride skips the frames between windows, by design
        assert set(np.concatenate(wins).tolist()) == set(range(n))


def test_sliding_windows_exact_starts() -> None:
    assert [int(w[0]) for w in sliding_windows(10, 4, 3)] == [0, 3, 6]
    assert [int(w[0]) for w in sliding_windows(11, 4, 3)] == [0, 3, 6, 7]  # last one aligned


def test_sliding_windows_short_video_gives_one_uniform_window() -> None:
    (only,) = sliding_windows(3, 8, 2)
    assert only.tolist() == uniform_indices(3, 8).tolist()
    (only,) = sliding_windows(8, 8, 2)
    assert only.tolist() == list(range(8))


@pytest.mark.parametrize(("n", "window", "stride"), [(0, 4, 1), (10, 0, 1), (10, 4, 0)])
def test_sliding_windows_rejects_bad_args(n: int, window: int, stride: int) -> None:
    with pytest.raises(ValueError):
        sliding_windows(n, window, stride)


# --- writing ----------------------------------------------------------------------------


def test_mp4_round_trip(tmp_path: Path) -> None:
    out = write_video(tmp_path / "solid.mp4", _solid(COLOURS, 64, 48), fps=10)
    assert out == tmp_path / "solid.mp4"
    info = probe(out)
    assert (info.frames, info.claimed_frames, info.width, info.height) == (6, 6, 64, 48)
    assert info.fps == pytest.approx(10) and info.duration_s == pytest.approx(0.6)
    back = read_frames(out, all_indices(6), info=info)
    assert back.shape == (6, 48, 64, 3) and back.dtype == np.uint8
    for frame, colour in zip(back, COLOURS):
        assert np.abs(frame.astype(int) - colour).max() <= TOL


def test_mp4_odd_size_is_padded_by_replicating_the_edge(tmp_path: Path) -> None:
    frame = np.zeros((61, 75, 3), np.uint8)
    frame[:, :] = (220, 30, 30)
    frame[:, 59:] = (40, 50, 210)  # right edge blue
    frame[45:, :] = (30, 200, 40)  # bottom edge green
    out = write_video(tmp_path / "odd.mp4", [frame] * 3, fps=5)
    info = probe(out)
    assert (info.width, info.height) == (76, 62)  # one replicated column and row added
    back = read_frames(out, [0, 2], info=info).astype(int)
    assert np.abs(back[:, 4:40, 4:52] - (220, 30, 30)).max() <= TOL
    assert np.abs(back[:, 4:40, 75] - (40, 50, 210)).max() <= TOL  # padded column
    assert np.abs(back[:, 61, 4:70] - (30, 200, 40)).max() <= TOL  # padded row


def test_gif_round_trip_keeps_size_colours_and_timing(tmp_path: Path) -> None:
    out = write_video(tmp_path / "solid.gif", _solid(COLOURS, 75, 61), fps=8)
    info = probe(out)
    assert (info.frames, info.width, info.height) == (6, 75, 61)  # GIF needs no padding
    back = read_frames(out, all_indices(6), info=info)
    for frame, colour in zip(back, COLOURS):
        assert np.abs(frame.astype(int) - colour).max() <= TOL
    with Image.open(out) as gif:
        assert gif.info["loop"] == 0  # loops forever
        durations = []
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(gif.info["duration"])
    # GIF counts 1/100 s: at 8 fps delays mix 12 and 13 so that 6 frames last 0.75 s
    assert set(durations) == {120, 130} and sum(durations) == 750


def test_mp4_is_deterministic(tmp_path: Path) -> None:
    frames = _ramp(12, 40, 30)
    a = write_video(tmp_path / "a.mp4", frames, fps=12)
    b = write_video(tmp_path / "b.mp4", frames, fps=12)
    assert a.read_bytes() == b.read_bytes()


def test_an_error_while_writing_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(dest, fps=10) as writer:
        writer.append(_ramp(1)[0])
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # neither the video nor a temporary file


def test_overwrite_is_refused_unless_asked(tmp_path: Path) -> None:
    dest = tmp_path / "clip.gif"
    dest.write_bytes(b"keep me")
    with pytest.raises(StvizError, match=r"clip\.gif: file exists"):
        write_video(dest, _ramp(2), fps=5)
    assert dest.read_bytes() == b"keep me"
    write_video(dest, _ramp(2), fps=5, overwrite=True)
    assert probe(dest).frames == 2


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(StvizError, match=r"clip\.avi: cannot write"):
        VideoWriter(tmp_path / "clip.avi", fps=10)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "clip.mp4", fps=0)
    with pytest.raises(ValueError, match="uint8"), VideoWriter(tmp_path / "f.mp4", 10) as w:
        w.append(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="differs"), VideoWriter(tmp_path / "s.mp4", 10) as w:
        w.append(np.zeros((8, 8, 3), np.uint8))
        w.append(np.zeros((8, 10, 3), np.uint8))
    with pytest.warns(StvizWarning, match="GIF plays at most 50 fps"):
        VideoWriter(tmp_path / "fast.gif", fps=60)
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=10)
    assert list(tmp_path.iterdir()) == []


# --- probing ----------------------------------------------------------------------------


def test_probe_to_dict_is_json_ready(tmp_path: Path) -> None:
    info = probe(write_video(tmp_path / "c.mp4", _ramp(5), fps=7.5))
    d = json.loads(json.dumps(info.to_dict()))
    assert d["frames"] == 5 and d["fps"] == pytest.approx(7.5)
    assert (d["width"], d["height"]) == (32, 24) and d["duration_s"] == pytest.approx(5 / 7.5)


def test_truncated_file_uses_the_frames_that_decode_and_warns_once(tmp_path: Path) -> None:
    whole = _mjpg_avi(tmp_path / "whole.avi", 40)
    assert probe(whole).frames == 40
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.7)])
    with pytest.warns(StvizWarning, match=r"cut\.avi: 40 frames claimed but only") as caught:
        info = probe(cut)
    assert len(caught) == 1
    assert 0 < info.frames < 40 and info.claimed_frames == 40
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        last = read_frames(cut, [info.frames - 1], info=info)[0]
        assert sum(1 for _ in iter_frames(cut, info=info)) == info.frames
    assert abs(int(last[10, 10, 0]) - (info.frames - 1) * 5) <= TOL  # really that frame


def test_truncated_file_without_a_position_hint_is_bisected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _mjpg_avi(tmp_path / "whole.avi", 40)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with pytest.warns(StvizWarning, match="truncated"):
        expected = probe(cut).frames
    _fake(monkeypatch, cv2.CAP_PROP_POS_FRAMES, lambda _: 0.0)  # no hint where decoding ended
    with pytest.warns(StvizWarning, match="truncated"):
        assert probe(cut).frames == expected


def test_missing_frame_rate_falls_back_to_25(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_video(tmp_path / "c.mp4", _ramp(3), fps=10)
    _fake(monkeypatch, cv2.CAP_PROP_FPS, lambda _: float("nan"))
    with pytest.warns(StvizWarning, match="no frame rate; assuming 25 fps"):
        assert probe(clip).fps == 25.0


@pytest.mark.parametrize(("count", "claimed"), [(4.0, 4), (-1.0, 0), (float("nan"), 0)])
def test_under_counting_or_silent_container_is_read_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: float, claimed: int
) -> None:
    clip = write_video(tmp_path / "c.mp4", _ramp(9), fps=10)
    _fake(monkeypatch, cv2.CAP_PROP_FRAME_COUNT, lambda _: count)
    info = probe(clip)
    assert (info.frames, info.claimed_frames) == (9, claimed)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.mp4", b"this is text, not a video\n", "not a video OpenCV can decode"),
        ("empty.avi", b"", "not a video OpenCV can decode"),
        ("missing.mp4", None, "no such file"),
    ],
)
def test_unreadable_files_are_user_errors(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for call in (probe, lambda p: read_frames(p, [0]), lambda p: iter_frames(p)):
        with pytest.raises(StvizError, match=f"{name}: {message}"):
            call(path)  # iter_frames too fails at the call, not at the first frame


def test_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(StvizError, match="is a folder"):
        probe(tmp_path)


# --- reading ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 distinguishable frames: long enough that reading seeks over gaps."""
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", _ramp(200), fps=25)


# unsorted, duplicated, and with gaps above the seek threshold in both directions
ASKED = [150, 3, 3, 199, 0, 70, 150, 71, 140, 5]


def test_read_frames_in_the_order_asked(long_clip: Path) -> None:
    every = dict(iter_frames(long_clip))
    assert sorted(every) == list(range(200))
    got = read_frames(long_clip, ASKED)
    assert got.shape == (len(ASKED), 24, 32, 3)
    for frame, index in zip(got, ASKED):
        assert np.array_equal(frame, every[index])
    assert not np.array_equal(got[0], got[1])


def test_inexact_seek_falls_back_to_grabbing(
    long_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = read_frames(long_clip, ASKED)
    _fake(monkeypatch, cv2.CAP_PROP_POS_FRAMES, lambda pos: pos + 1)  # every seek "misses"
    info = video.VideoInfo(long_clip, 200, 25.0, 32, 24, 8.0, 200)
    assert np.array_equal(read_frames(long_clip, ASKED, info=info), expected)


def test_iter_frames_streams_the_unique_indices_in_order(long_clip: Path) -> None:
    got = list(iter_frames(long_clip, [90, 2, 90, 7]))
    assert [i for i, _ in got] == [2, 7, 90]
    assert all(f.shape == (24, 32, 3) and f.dtype == np.uint8 for _, f in got)


@pytest.mark.parametrize(("size", "long_side", "expected"), [
    ((1920, 1080), 720, (720, 404)), ((1080, 1920), 720, (404, 720)),
    ((340, 256), 720, (340, 256)),  # never enlarged
    ((1920, 1080), 0, (1920, 1080)), ((1920, 1080), None, (1920, 1080)),
    ((75, 61), 50, (50, 40)), ((4000, 2), 100, (100, 2)),  # even, at least 2
])
def test_fit_size(size: tuple[int, int], long_side: int | None,
                  expected: tuple[int, int]) -> None:
    assert fit_size(*size, long_side) == expected


def test_every_frame_scaled_in_ffmpeg_matches_opencv_then_resize(long_clip: Path) -> None:
    """The overlay's stream (PyAV decode, swscale) has every frame, in order, at the size
    asked, and the colours OpenCV's decode and cv2.resize give."""
    scaled = list(iter_frames(long_clip, size=(16, 12)))
    assert [i for i, _ in scaled] == list(range(200))
    assert all(f.shape == (12, 16, 3) and f.dtype == np.uint8 for _, f in scaled)
    reference = read_frames(long_clip, [0, 99, 199], size=(16, 12))
    for got, ref in zip((scaled[0][1], scaled[99][1], scaled[199][1]), reference):
        assert np.abs(got.astype(int) - ref).mean() < 6


def test_read_ahead_keeps_order_raises_and_stops_its_thread() -> None:
    """The overlay's frames are decoded by a thread ahead of the caller: in order, its
    errors raised in the caller, and it ends (closing what it ran) when the caller stops."""
    import threading

    closed = []

    def numbers(n: int, fail_at: int | None = None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError(f"bad frame {i}")
                yield i
        finally:
            closed.append(threading.current_thread().name)

    assert list(video._read_ahead(numbers(50))) == list(range(50))
    with pytest.raises(RuntimeError, match="bad frame 7"):
        list(video._read_ahead(numbers(50, fail_at=7)))
    ahead = video._read_ahead(numbers(10**6), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()  # returns only once the thread has stopped
    assert closed == ["stviz-read-ahead"] * 3
    assert not any(t.name == "stviz-read-ahead" for t in threading.enumerate())


def test_stopping_an_overlay_stream_early_ends_its_decoding(long_clip: Path) -> None:
    import threading

    stream = iter_frames(long_clip, size=(16, 12))
    assert [next(stream)[0] for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()
    assert not any(t.name == "stviz-read-ahead" for t in threading.enumerate())


def test_every_frame_scaled_of_a_truncated_file_stops_where_the_data_does(
    tmp_path: Path,
) -> None:
    """A faststart MP4 cut short: the scaled stream gives exactly the frames `probe`
    counts; told of more, it warns where decoding stopped."""
    rng = np.random.default_rng(0)
    whole = write_video(tmp_path / "whole.mp4",
                        [rng.integers(0, 256, (64, 80, 3), np.uint8) for _ in range(60)], 10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.3)])
    with pytest.warns(StvizWarning, match="truncated"):
        info = probe(cut)
    assert 0 < info.frames < 60
    got = [i for i, _ in iter_frames(cut, info=info, size=(40, 32))]
    assert got == list(range(info.frames))
    claimed = video.VideoInfo(cut, 60, 10.0, 80, 64, 6.0, 60)
    with pytest.warns(StvizWarning, match=f"frame {info.frames} and later ones do not decode"):
        assert len(list(iter_frames(cut, info=claimed, size=(40, 32)))) == info.frames


def test_every_frame_scaled_falls_back_to_opencv_when_sizes_disagree(long_clip: Path) -> None:
    """A rotated video: OpenCV reports the rotated size, PyAV decodes the stored one."""
    rotated = video.VideoInfo(long_clip, 200, 25.0, 24, 32, 8.0, 200)
    got = list(iter_frames(long_clip, info=rotated, size=(12, 16)))
    assert len(got) == 200 and got[0][1].shape == (16, 12, 3)


def test_unreproducible_mp4_uses_every_core_and_reads_back(tmp_path: Path) -> None:
    codec, options = mp4_encoder(reproducible=False)
    assert codec in ("libx264", "h264_nvenc")
    if codec == "libx264":
        assert options["threads"] == "0"
    assert mp4_encoder()[1]["threads"] == "1"  # the default stays byte-reproducible
    with VideoWriter(tmp_path / "fast.mp4", 25, reproducible=False) as writer:
        for frame in _ramp(30):
            writer.append(frame)
    assert probe(tmp_path / "fast.mp4").frames == 30
    if codec == "libx264":  # x264 writes the settings it used into the stream
        settings = (tmp_path / "fast.mp4").read_bytes()
        assert b"sliced_threads=0" in settings and b"me=dia subme=1" in settings


@pytest.mark.parametrize("reproducible", [True, False])
def test_a_reused_frame_buffer_is_read_when_appended(tmp_path: Path, reproducible: bool) -> None:
    """The overlay painter draws every frame into one buffer: each append must take its
    content then, not later."""
    buffer = np.zeros((32, 48, 3), np.uint8)
    with VideoWriter(tmp_path / "reused.mp4", 10, reproducible=reproducible) as writer:
        for i in range(8):
            buffer[:] = 20 + 25 * i
            writer.append(buffer)
    means = [frame.mean() for frame in read_frames(tmp_path / "reused.mp4", range(8))]
    assert np.allclose(means, 20 + 25 * np.arange(8), atol=3)


def test_read_frames_resizes_and_checks_indices(long_clip: Path) -> None:
    assert read_frames(long_clip, [0, 1], size=(16, 10)).shape == (2, 10, 16, 3)
    assert read_frames(long_clip, np.array([5]), size=(64, 48)).shape == (1, 48, 64, 3)
    with pytest.raises(IndexError, match=r"0\.\.199"):
        read_frames(long_clip, [0, 200])
    with pytest.raises(IndexError):
        read_frames(long_clip, [-1])
    with pytest.raises(ValueError, match="no frame indices"):
        read_frames(long_clip, [])


def test_frames_are_rgb(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "red.mp4", _solid([(230, 20, 20)], 16, 16), fps=5)
    r, g, b = read_frames(clip, [0])[0, 8, 8].astype(int)
    assert r > 200 and g < 40 and b < 40


# --- real data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "frames", "fps", "size"),
    [
        ("arm_wrestling.mp4", 280, 28.0, (340, 256)),
        ("short_320x240.avi", 164, 25.0, (320, 240)),
    ],
)
def test_probe_real_videos(
    realdata: Path, name: str, frames: int, fps: float, size: tuple[int, int]
) -> None:
    info = probe(realdata / name)
    assert (info.frames, info.claimed_frames) == (frames, frames)
    assert info.fps == pytest.approx(fps) and (info.width, info.height) == size


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "short_320x240.avi"])
def test_read_frames_matches_streaming_on_real_videos(realdata: Path, name: str) -> None:
    path = realdata / name
    info = probe(path)
    n = info.frames
    asked = [n - 1, 3, 150, 3, 0, n // 2, 2, n - 1, 100]
    every = dict(iter_frames(path, info=info))
    got = read_frames(path, asked, info=info)
    for frame, index in zip(got, asked):
        assert np.array_equal(frame, every[index])
