"""`stviz explain` on a long 1080p video: a 2-minute 1920x1080 clip at 25 fps, end to end.

The video is synthesized once into .stviz-data/bench/ (git-ignored; about a minute on
2 cores): a textured background panning slowly, a red square crossing it, a white
disc bouncing, H.264 with x264's default 10 s keyframe interval, as a camera or a
screen recorder would write it. Then `stviz explain` runs as a user runs it (a new
process, the default model and outputs) and the script prints the wall time and the
stages stviz reports (load, decode + explain, render), best of --repeats.

    .venv/bin/python benchmarks/bench_long_video.py [--seconds 120] [--repeats 1]
        [--render-size 720] [--device cpu] [-- EXTRA STVIZ OPTIONS]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 1920, 1080, 25
DATA = Path(".stviz-data/bench")


def synthesize(path: Path, seconds: float) -> Path:
    """A `seconds`-long 1920x1080 H.264 video (written to a temporary name, then moved)."""
    import av

    n = round(seconds * FPS)
    rng = np.random.default_rng(0)
    # a 32-px checker of random colours, twice the frame wide, panned one pixel a frame
    tiles = rng.integers(40, 200, (HEIGHT // 32 + 1, 2 * WIDTH // 32 + 1, 3), np.uint8)
    background = tiles.repeat(32, 0).repeat(32, 1)[:HEIGHT]
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    tmp = path.with_name(path.name + ".tmp.mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS),
                                      options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(n):
            x0 = i % WIDTH
            frame = np.ascontiguousarray(background[:, x0:x0 + WIDTH])
            sx = int((WIDTH - 200) * (i % (10 * FPS)) / (10 * FPS))
            frame[440:640, sx:sx + 200] = (220, 30, 30)
            cx, cy = 300 + int(250 * np.sin(i / 20)), 300 + int(200 * abs(np.cos(i / 13)))
            frame[(xx - cx) ** 2 + (yy - cy) ** 2 < 60 ** 2] = 255
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    tmp.replace(path)
    return path


def explain(video: Path, out: Path, extra: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stviz's own `time` line) of one `stviz explain` process.

    CPU seconds (user + system, all threads) are what the run costs whatever else the
    machine is doing; on an idle 2-core machine the wall time is at least half of them.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stviz", "explain", str(video), "--out",
                           str(out), "--overwrite", *extra], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"stviz explain failed:\n{done.stderr}")
    stages = re.search(r"^time (.*)$", done.stdout, re.MULTILINE)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, stages.group(1) if stages else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--render-size", type=int, default=None,
                        help="Passed to stviz explain [default: stviz's own default].")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("extra", nargs="*", help="More stviz explain options, after --.")
    args = parser.parse_args()

    video = DATA / f"long-{WIDTH}x{HEIGHT}-{args.seconds:g}s.mp4"
    if not video.exists():
        start = time.perf_counter()
        synthesize(video, args.seconds)
        print(f"synthesized {video} in {time.perf_counter() - start:.1f} s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    extra = ["--device", args.device, *args.extra]
    if args.render_size is not None:
        extra += ["--render-size", str(args.render_size)]
    print(f"stviz explain {video.name} ({args.seconds:g} s, {WIDTH}x{HEIGHT}, {FPS} fps, "
          f"{round(args.seconds * FPS)} frames) {' '.join(extra)}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [explain(video, Path(tmp) / "out", extra) for _ in range(args.repeats)]
    wall, cpu, stages = min(runs)
    print(f"  wall {wall:.2f} s, CPU {cpu:.2f} s (best of {len(runs)}; load after "
          f"{os.getloadavg()[0]:.1f}); stviz: {stages}")


if __name__ == "__main__":
    main()
