"""Video decoding, frame sampling and encoding.

Decoding goes through OpenCV (whatever its FFmpeg backend opens: mp4, avi, mkv,
webm, mov, gif) and returns RGB uint8 frames. Only the frames asked for are
decoded into memory, so a long 1080p video is never loaded whole. `probe`
verifies the frame count by seeking rather than decoding every frame, and by
demuxing (not decoding) the packets: a file cut short with its index at the front
makes OpenCV return stale frames past the cut, so there the frames are counted by
decoding. A truncated file keeps the frames that decode, with one warning. FFmpeg's own
per-packet error messages are silenced (stviz reports what matters itself);
set OPENCV_FFMPEG_LOGLEVEL to see them.

Sampling: `uniform_indices` takes the centre of each of T equal segments (TSN,
the paper's rule). A clip shorter than T frames repeats its nearest frames to
make T, with a warning (the formula repeats them; callers warn).

Streaming every frame at a smaller size (the overlay videos) decodes with PyAV's
threaded decoder and scales inside FFmpeg (swscale): for a 1080p video that is about
a third of the CPU time of OpenCV's decode, colour conversion and `cv2.resize`. A
thread does it a few frames ahead of the caller, so that decoding overlaps drawing
and encoding.

Encoding writes H.264 MP4 (yuv420p, CRF 18) in-process through PyAV (FFmpeg's
libraries: no ffmpeg process per file, which matters when `stviz synth` writes
thousands of short clips), or GIF through Pillow, always atomically
(`stviz.files.atomic_path`). By default x264 runs single-threaded, so that the same
frames always give the same bytes; `reproducible=False` (the overlays) uses what the
machine has instead: NVENC when an NVIDIA GPU's encoder opens, else x264 on every core.

Odd sizes: yuv420p needs even width and height, so the MP4 writer pads an odd
dimension by one pixel on the right or bottom, replicating the edge pixels; a
75x61 frame comes back 76x62. GIF keeps the size exactly.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import cv2
import numpy as np

from stviz.errors import StvizError, warn
from stviz.files import atomic_path, check_utf8

# Read by OpenCV when it first opens a file with FFmpeg; a user's own setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

FALLBACK_FPS = 25.0
_SEEK_GAP = 64  # seek instead of grabbing when the next wanted frame is further than this
# One x264 thread: its output then depends only on the frames, not on the machine's cores.
# bframes=0: in a long-lived process, x264's B-frame lookahead on small frames (64x64)
# reads memory left over from earlier allocations, so identical frames gave different
# bytes; without B-frames they do not (and files grow ~15%, against ~80% for mbtree=0).
_X264_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1", "flags": "+bitexact",
                 "x264-params": "bframes=0"}
# bitexact: no library version strings or timestamps in the file; faststart: index first.
_MP4_OPTIONS = {"movflags": "+faststart", "fflags": "+bitexact"}
# For `reproducible=False`: x264 on every core ("0": one thread per core, frame-parallel)
# with B-frames (on overlays: files a quarter the size, 10% less CPU) and veryfast's
# cheapest motion search (diamond, subpixel level 1, no inter 8x8/4x4 partitions: on a
# 720 px overlay 40% less CPU, files 4-7% larger at the same PSNR), or NVIDIA's hardware
# encoder at about x264's CRF 18 quality.
_X264_ANY_THREADS = {"crf": "18", "preset": "veryfast", "threads": "0", "thread_type": "frame",
                     "x264-params": "me=dia:subme=1:partitions=i8x8,i4x4"}
_NVENC_OPTIONS = {"preset": "p4", "rc": "vbr", "cq": "19", "bf": "0"}
_GIF_MIN_CS = 2  # browsers play GIF delays under 2/100 s at 10/100 s


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: `frames` is verified by decoding; `claimed_frames` is what the
    container says (0 when it says nothing), kept to report truncation."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    duration_s: float
    claimed_frames: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "frames": self.frames,
            "fps": round(self.fps, 6),
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration_s, 6),
            "claimed_frames": self.claimed_frames,
        }


@contextlib.contextmanager
def _opencv_quiet() -> Iterator[None]:
    """Hide OpenCV's own warnings (a backend that cannot open the file) during an open."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _open(path: Path) -> cv2.VideoCapture:
    check_utf8(path)  # OpenCV crashes (segfault) on a name that is not UTF-8
    if not path.exists():
        raise StvizError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise StvizError(f"{path}: is a folder, not a video; pass a video file")
    # FFmpeg first: it seeks consistently and does not read image sequences from a name.
    api = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    with _opencv_quiet():
        cap = cv2.VideoCapture(str(path), api)
    if not cap.isOpened():
        cap.release()
        raise StvizError(
            f"{path}: not a video OpenCV can decode; convert it to MP4 (H.264), "
            "e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`"
        )
    return cap


def _read_at(cap: cv2.VideoCapture, index: int) -> np.ndarray | None:
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    return frame if ok else None


def _count_frames(cap: cv2.VideoCapture, claimed: int) -> tuple[int, np.ndarray | None]:
    """(frames that decode, one decoded frame), by seeking near the end instead of
    decoding everything: try the claimed last frame, else search backwards for the
    last one that decodes, then grab forward in case the container under-counted."""
    last = claimed - 1
    frame = _read_at(cap, last) if claimed > 0 else None
    if frame is None and claimed > 1:
        # A failed read leaves OpenCV where decoding ran out: try the frame before that
        # (one seek), and binary-search only when that guess does not decode.
        hint = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
        frame = _read_at(cap, hint) if 0 <= hint < last else None
        if frame is not None:
            last = hint
        else:
            last = _bisect_last(cap, last)
            frame = _read_at(cap, last) if last >= 0 else None
    if frame is None:  # no claim, or seeking finds nothing: count from the start
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = cap.read()
        if not ok:
            return 0, None
        last = 0
    while cap.grab():
        last += 1
    return last + 1, frame


def _bisect_last(cap: cv2.VideoCapture, bad: int) -> int:
    """The last frame before `bad` that decodes by seeking (-1 if none), in log2 steps."""
    lo, hi = -1, bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _read_at(cap, mid) is not None else (lo, mid)
    return lo


def _whole_packets(path: Path) -> int | None:
    """Video packets the file holds whole, by demuxing without decoding (fast); None when
    PyAV cannot open it. Fewer packets than frames means the data stops early."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError):
        return None
    n = 0
    with container:
        if not container.streams.video:
            return None
        try:
            for packet in container.demux(container.streams.video[0]):
                n += bool(packet.size) and not packet.is_corrupt
        except (av.FFmpegError, OSError, ValueError):
            pass  # the data ends here
    return n


def _decodable_frames(path: Path) -> int:
    """Frames PyAV decodes from the start until the data fails."""
    import av

    n = 0
    with contextlib.suppress(av.FFmpegError, OSError, ValueError), av.open(str(path)) as c:
        for _ in c.decode(video=0):
            n += 1
    return n


def probe(path: str | Path) -> VideoInfo:
    """Metadata with a verified frame count; warns when the file is truncated."""
    p = Path(path)
    cap = _open(p)
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        claimed = int(count) if math.isfinite(count) and count > 0 else 0
        fps = cap.get(cv2.CAP_PROP_FPS)
        frames, frame = _count_frames(cap, claimed)
    finally:
        cap.release()
    packets = _whole_packets(p)
    if frame is not None and packets is not None and packets < frames:
        # Cut short with its index at the front ("faststart"): OpenCV seeks past the data
        # and returns stale frames, so count what really decodes.
        frames = min(frames, _decodable_frames(p))
        if frames == 0:
            frame = None
    if frame is None:
        raise StvizError(
            f"{p}: no decodable frame; the file is empty or corrupt, re-encode or replace it"
        )
    if not math.isfinite(fps) or fps <= 0:
        warn(f"{p}: the container gives no frame rate; assuming {FALLBACK_FPS:g} fps")
        fps = FALLBACK_FPS
    if claimed > frames:
        warn(
            f"{p}: {claimed} frames claimed but only {frames} decode (truncated?); "
            "using the frames that decode"
        )
    height, width = frame.shape[:2]  # the decoded size, after any rotation metadata
    return VideoInfo(p, frames, fps, width, height, frames / fps, claimed)


def uniform_indices(n_frames: int, t: int) -> np.ndarray:
    """T frame indices spread uniformly: the centre of each of T equal segments.

    index_i = floor((i + 0.5) * n / t); with n < t, nearest frames repeat.
    """
    if t < 1 or n_frames < 1:
        raise ValueError(f"need t >= 1 and n_frames >= 1, got t={t}, n_frames={n_frames}")
    return ((2 * np.arange(t, dtype=np.int64) + 1) * n_frames) // (2 * t)


def all_indices(n_frames: int) -> np.ndarray:
    """Every frame index, for methods that explain the whole video."""
    return np.arange(n_frames, dtype=np.int64)


def sliding_windows(n_frames: int, window: int, stride: int) -> list[np.ndarray]:
    """Windows of `window` consecutive frames every `stride` frames; the last one ends
    at the last frame, so with stride <= window every frame is in some window. A video
    shorter than a window gives one uniformly sampled window (nearest frames repeat)."""
    if window < 1 or stride < 1 or n_frames < 1:
        raise ValueError(
            f"need window, stride, n_frames >= 1, got window={window}, "
            f"stride={stride}, n_frames={n_frames}"
        )
    if n_frames <= window:
        return [uniform_indices(n_frames, window)]
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] != n_frames - window:
        starts.append(n_frames - window)
    return [np.arange(s, s + window, dtype=np.int64) for s in starts]


def _checked(indices: Iterable[int], info: VideoInfo) -> np.ndarray:
    idx = np.asarray(list(indices), dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= info.frames):
        raise IndexError(
            f"{info.path}: frame indices must be in 0..{info.frames - 1}, got "
            f"{idx.min()}..{idx.max()}"
        )
    return idx


def _decode(path: Path, wanted: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) for sorted unique `wanted`, decoding forward: skipped frames
    are grabbed (not converted), and long gaps are seeked over when the seek lands
    exactly; it stops early at the first frame that does not decode."""
    cap = _open(path)
    try:
        pos, seekable = 0, True
        for index in wanted.tolist():
            if seekable and index - pos > _SEEK_GAP:
                cap.set(cv2.CAP_PROP_POS_FRAMES, index)
                if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == index:
                    pos = index
                else:  # inexact seek: reopen, and from here on only grab
                    seekable = False
                    cap.release()
                    cap, pos = _open(path), 0
            while pos < index and cap.grab():
                pos += 1
            ok, frame = cap.read() if pos == index else (False, None)
            if not ok:
                return
            pos += 1
            yield index, frame
    finally:
        cap.release()


def iter_frames(
    path: str | Path,
    indices: Iterable[int] | None = None,
    info: VideoInfo | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream (index, RGB frame), one frame in memory at a time.

    All frames when `indices` is None; otherwise the unique indices in increasing
    order (streaming never goes backwards). `size` = (width, height) scales the
    frames (all frames: in FFmpeg, see `_stream_scaled`). Checks the file before
    returning.
    """
    p = Path(path)
    info = info or probe(p)
    if size is not None and (size[0], size[1]) != (info.width, info.height) and indices is None:
        return _stream_scaled(p, info, (int(size[0]), int(size[1])))
    wanted = np.unique(all_indices(info.frames) if indices is None else _checked(indices, info))
    return _stream(p, wanted, size)


def _stream(path: Path, wanted: np.ndarray, size: tuple[int, int] | None = None
            ) -> Iterator[tuple[int, np.ndarray]]:
    done = 0
    for index, frame in _decode(path, wanted):
        done += 1
        yield index, _resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size)
    if done < len(wanted):
        warn(f"{path}: frame {wanted[done]} and later ones do not decode; stopped there")


def _stream_scaled(path: Path, info: VideoInfo, size: tuple[int, int]
                   ) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame at `size`, decoded by PyAV on all cores and scaled by swscale (fast
    bilinear), a few frames ahead of the caller (`_read_ahead`). Falls back to OpenCV
    (`_stream`) when PyAV cannot open the file or sees another frame size than OpenCV
    did (rotation metadata, which only OpenCV applies)."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeError, OSError):
        yield from _stream(path, all_indices(info.frames), size)
        return
    done = 0
    with contextlib.closing(container):
        video = container.streams.video[0] if container.streams.video else None
        if video is None or (video.codec_context.width, video.codec_context.height) != (
                info.width, info.height):
            yield from _stream(path, all_indices(info.frames), size)
            return
        video.thread_type = "AUTO"
        frames = _scaled(container.decode(video), size, info.frames)
        with contextlib.closing(_read_ahead(frames)) as ahead:
            for frame in ahead:
                yield done, frame
                done += 1
    if done < info.frames:
        warn(f"{path}: frame {done} and later ones do not decode; stopped there")


def _scaled(decoded: Iterator[Any], size: tuple[int, int], limit: int
            ) -> Generator[np.ndarray, None, None]:
    """The first `limit` of PyAV's decoded frames as RGB arrays at `size`, until the data
    ends or fails (a corrupt packet: keep what decoded, as OpenCV does)."""
    import av

    with contextlib.suppress(av.FFmpegError):
        for frame in itertools.islice(decoded, limit):
            yield frame.to_ndarray(width=size[0], height=size[1], format="rgb24",
                                   interpolation="FAST_BILINEAR")


_T = TypeVar("_T")
_END = object()


def _read_ahead(items: Generator[_T, None, None], depth: int = 4) -> Iterator[_T]:
    """`items`, computed by a background thread up to `depth` ahead of the caller.

    Decoding and scaling (FFmpeg, which releases the GIL) then run while the caller
    draws and encodes the frames before; without it, those stages mostly took turns and
    an overlay kept only ~1.2 of 2 cores busy. An exception in `items` is raised here;
    `items` is run and closed in the thread.
    """
    ahead: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                ahead.put(item)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            ahead.put(_Failed(exc))
        finally:
            try:
                items.close()
            finally:
                ahead.put(_END)

    worker = threading.Thread(target=produce, name="stviz-read-ahead", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()  # the producer ends after at most one more item; make room for it
        with contextlib.suppress(queue.Empty):
            while True:
                ahead.get_nowait()
        worker.join()


@dataclass(frozen=True)
class _Failed:
    """An exception raised in `_read_ahead`'s producer thread."""

    error: BaseException


def fit_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """(width, height) shrunk so that the longer side is at most `long_side` pixels, both
    even (as H.264's yuv420p needs); never enlarged. None or 0: the size unchanged."""
    if not long_side or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def _resize(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == size:
        return frame
    shrink = size[0] * size[1] < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_frames(
    path: str | Path,
    indices: Iterable[int],
    size: tuple[int, int] | None = None,
    info: VideoInfo | None = None,
) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames in the order asked (duplicates and any order allowed).

    `size` = (width, height) resizes. Memory is the output array only. Frames that
    fail to decode are replaced by the nearest one that did, with a warning.
    """
    p = Path(path)
    info = info or probe(p)
    idx = _checked(indices, info)
    if idx.size == 0:
        raise ValueError("no frame indices given")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if min(size) < 1:
            raise ValueError(f"size must be (width, height) >= 1, got {size}")
    wanted, slot, counts = np.unique(idx, return_inverse=True, return_counts=True)
    # slots[k]: the output positions that show frame wanted[k]
    slots = np.split(np.argsort(slot, kind="stable"), np.cumsum(counts)[:-1])
    out: np.ndarray | None = None
    done = 0
    for done, (_, frame) in enumerate(_decode(p, wanted), start=1):
        rgb = _resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size)
        if out is None:
            out = np.empty((len(idx), *rgb.shape), np.uint8)
        out[slots[done - 1]] = rgb
    if out is None:
        raise StvizError(
            f"{p}: no decodable frame; the file is empty or corrupt, re-encode or replace it"
        )
    if done < len(wanted):  # decoding stopped early: the last good frame is the nearest
        warn(
            f"{p}: frame {wanted[done]} and later ones do not decode; using frame "
            f"{wanted[done - 1]} for them"
        )
        out[np.concatenate(slots[done:])] = out[slots[done - 1][0]]
    return out


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by one replicated edge pixel, as yuv420p needs."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return frame


def _gif_durations_ms(n: int, fps: float) -> list[int]:
    """Per-frame GIF delays: GIF counts in 1/100 s, so round the cumulative time and
    let single delays vary (8 fps -> 12 or 13 cs) so that the total stays exact."""
    ticks = np.round(np.arange(n + 1) * 100 / fps).astype(np.int64)
    return [10 * max(_GIF_MIN_CS, int(d)) for d in np.diff(ticks)]


@functools.cache
def _nvenc_opens() -> bool:
    """Whether NVIDIA's H.264 encoder opens here (a GPU, its driver, and an FFmpeg built
    with it): one 64x64 frame into memory, once per process (~10 ms when it does not)."""
    import io

    import av

    try:
        with av.open(io.BytesIO(), "w", format="mp4") as container:
            stream = container.add_stream("h264_nvenc", rate=25, options=_NVENC_OPTIONS)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            blank = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(blank))
            container.mux(stream.encode(None))
    except (av.FFmpegError, ValueError, OSError):
        return False
    return True


def mp4_encoder(reproducible: bool = True) -> tuple[str, dict[str, str]]:
    """(FFmpeg encoder, its options) that `VideoWriter` uses for MP4 (see the module doc)."""
    if reproducible:
        return "libx264", _X264_OPTIONS
    if _nvenc_opens():
        return "h264_nvenc", _NVENC_OPTIONS
    return "libx264", _X264_ANY_THREADS


class _Mp4Encoder:
    """H.264 yuv420p encoding of RGB frames into an MP4 file, inside this process."""

    def __init__(self, path: Path | None, width: int, height: int, fps: float,
                 reproducible: bool = True) -> None:
        from fractions import Fraction

        import av

        codec, options = mp4_encoder(reproducible)
        self._container = av.open(str(path), "w", format="mp4", options=_MP4_OPTIONS)
        try:
            # 1/1000 s resolution keeps fractional rates such as 29.97 exact enough.
            rate = Fraction(fps).limit_denominator(1000)
            self._stream = self._container.add_stream(codec, rate=rate, options=options)
            self._time_base = 1 / rate
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"
        except BaseException:
            self._container.close()
            raise
        self._frame_type = av.VideoFrame
        self._index = 0

    def write(self, frame: np.ndarray) -> None:
        """Encode one contiguous RGB frame; it is read before this returns (so a caller may
        reuse its buffer), hence wrapped without a copy."""
        picture = self._frame_type.from_numpy_buffer(frame, format="rgb24")
        # frame k at k/fps: the muxer takes each frame's time and duration from these
        picture.pts = self._index
        picture.time_base = self._time_base
        self._index += 1
        self._container.mux(self._stream.encode(picture))

    def close(self) -> None:
        """Flush the encoder and finish the file (also after an error: the file is
        then discarded by the caller, but the handle must not leak)."""
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


class VideoWriter:
    """Write RGB uint8 frames to .mp4 (H.264, yuv420p) or .gif, atomically.

    Use as a context manager: the file appears at `path` only when the block ends
    without an exception. MP4 frames stream to ffmpeg as they come; GIF frames are
    kept (palettised, 1 byte a pixel) until the end, and Pillow merges identical
    consecutive GIF frames into one longer frame. `reproducible=False`: MP4 encoding
    uses every core or the GPU's encoder (`mp4_encoder`), and the bytes then depend on
    the machine.
    """

    def __init__(self, path: str | Path, fps: float, overwrite: bool = False,
                 reproducible: bool = True) -> None:
        self.path = Path(path)
        self.reproducible = reproducible
        self.fps = float(fps)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".mp4", ".gif"):
            raise StvizError(
                f"{self.path}: cannot write {self.kind or 'suffix-less'} videos; "
                "use a .mp4 or .gif name"
            )
        if not math.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"{self.path}: fps must be a positive number, got {fps}")
        if self.kind == ".gif" and self.fps > 100 / _GIF_MIN_CS:
            warn(
                f"{self.path}: GIF plays at most {100 // _GIF_MIN_CS} fps, not {self.fps:g}; "
                "write .mp4 for the true speed"
            )
        self._overwrite = overwrite
        self._ctx: contextlib.AbstractContextManager[Path] | None = None
        self._tmp: Path | None = None
        self._encoder: _Mp4Encoder | None = None
        self._gif: list[Any] = []
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        self._ctx = atomic_path(self.path, self._overwrite)
        self._tmp = self._ctx.__enter__()
        return self

    def append(self, frame: np.ndarray) -> None:
        """Add one (H, W, 3) uint8 RGB frame; all frames must have the first one's size."""
        if self._tmp is None:
            raise RuntimeError("VideoWriter.append outside its `with` block")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}"
            )
        size = (frame.shape[1], frame.shape[0])
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(
                f"frame size {size[0]}x{size[1]} differs from the first frame's "
                f"{self._size[0]}x{self._size[1]}"
            )
        if self.kind == ".gif":
            from PIL import Image

            # Pillow palettises RGB frames this same way when saving; doing it now saves memory.
            self._gif.append(Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE))
        else:
            frame = np.ascontiguousarray(_even(frame))
            if self._encoder is None:
                self._encoder = _Mp4Encoder(self._tmp, frame.shape[1], frame.shape[0], self.fps,
                                            self.reproducible)
            self._encoder.write(frame)
        self.frames += 1

    def _finish(self) -> None:
        if self.frames == 0:
            raise ValueError(f"{self.path}: no frames were written")
        if self.kind == ".gif":
            first, *rest = self._gif
            first.save(
                self._tmp,
                save_all=True,
                append_images=rest,
                loop=0,
                duration=_gif_durations_ms(self.frames, self.fps),
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._ctx is not None
        try:
            if self._encoder is not None:
                self._encoder.close()
            if exc_type is None:
                self._finish()
        except BaseException as err:
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        finally:
            self._gif.clear()
        self._ctx.__exit__(exc_type, exc, tb)


def write_video(
    path: str | Path, frames: Iterable[np.ndarray], fps: float, overwrite: bool = False
) -> Path:
    """Encode `frames` (RGB uint8) to `path` (.mp4 or .gif) atomically."""
    with VideoWriter(path, fps, overwrite) as writer:
        for frame in frames:
            writer.append(frame)
    return Path(path)
