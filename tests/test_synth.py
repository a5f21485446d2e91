"""The synthetic benchmark: per-class motion, exact boxes, determinism, the files."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stviz.datasets.synth import (
    ACTION_CLASSES,
    MOTION_CLASSES,
    SynthConfig,
    _act,
    _Scene,
    _Sprite,
    _transform,
    clip_label,
    clip_seed,
    generate,
    render_clip,
)
from stviz.errors import StvizError

CFG = SynthConfig(frames=16, size=64, fps=8)  # the default class set: actions
MOTION = SynthConfig(frames=16, size=64, fps=8, classes="motion")
SEEDS = range(6)


def _geometry(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box centres (T, 2) and sizes (T, 2)."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).astype(float)


@pytest.mark.parametrize("classes", ["actions", "motion"])
@pytest.mark.parametrize("difficulty", ["easy", "standard", "hard"])
def test_segment_and_boxes_stay_in_range(difficulty: str, classes: str) -> None:
    cfg = SynthConfig(frames=16, size=64, difficulty=difficulty, classes=classes)
    drift = 0.10 * 64 if difficulty == "hard" else 0  # the camera pan moves everything
    for seed in range(30):
        clip = render_clip(seed, seed % len(cfg.class_names), cfg)
        start, end = clip.segment
        assert clip.frames.shape == (16, 64, 64, 3) and clip.frames.dtype == np.uint8
        assert clip.boxes.shape == (16, 4)
        assert 1 <= start < end <= 16
        assert math.ceil(0.3 * 16) <= end - start <= math.floor(0.6 * 16)
        x1, y1, x2, y2 = clip.boxes.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 64).all()
        assert (x2 > x1).all() and (y2 > y1).all()
        centre, _ = _geometry(clip.boxes)
        for rest in (slice(0, start), slice(end, None)):
            assert np.ptp(centre[rest], axis=0).max() <= 2 + drift, (seed, difficulty)


@pytest.mark.parametrize("label", range(len(MOTION_CLASSES)))
def test_actor_moves_as_its_class_says_and_only_in_the_segment(label: int) -> None:
    name, size = MOTION_CLASSES[label], MOTION.size
    for seed in SEEDS:
        clip = render_clip(seed, label, MOTION)
        start, end = clip.segment
        centre, wh = _geometry(clip.boxes)
        # Outside the window the actor rests: its box moves by jitter (±1 px) only.
        for rest in (slice(0, start), slice(end, None)):
            assert np.ptp(centre[rest], axis=0).max() <= 2, (name, seed)
            assert np.ptp(wh[rest], axis=0).max() == 0, (name, seed)
        move = centre[end:].mean(0) - centre[:start].mean(0)
        growth = wh[-1] / wh[0]
        if name in ("grow", "shrink"):
            factor = growth if name == "grow" else 1 / growth
            assert factor.min() >= 1.7 and factor.max() <= 2.3, (name, seed, factor)
            assert np.abs(move).max() <= 2.5, (name, seed, move)
            steps = np.diff(wh.sum(1))[start - 1:end - 1]
            assert ((steps >= 0) if name == "grow" else (steps <= 0)).all()
            continue
        assert (growth == 1).all()
        dx = ("right" in name) - ("left" in name)
        dy = ("down" in name) - ("up" in name)
        unit = np.array([dx, dy]) / math.hypot(dx, dy)
        along = move @ unit
        across = move @ np.array([-unit[1], unit[0]])
        assert 0.35 * size - 3 <= along <= 0.50 * size + 3, (name, seed, along)
        assert abs(across) <= 3, (name, seed, across)
        # Inside the window, every frame advances along the direction (beyond jitter).
        assert (np.diff(centre @ unit)[start - 1:end - 1] > -2).all()


def test_actor_area_at_the_start() -> None:
    size = 128
    cfg = SynthConfig(frames=16, size=size, classes="motion")
    ranges = {"grow": ((0.06, 0.09), (0.19, 0.36)), "shrink": ((0.19, 0.36), (0.06, 0.09))}
    for label, name in enumerate(MOTION_CLASSES):
        (lo, hi), (end_lo, end_hi) = ranges.get(name, ((0.08, 0.20), (0.08, 0.20)))
        for seed in SEEDS:
            boxes = render_clip(seed, label, cfg).boxes
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / size**2
            # 2% slack: box sides are rounded to whole pixels.
            assert lo * 0.98 <= area[0] <= hi * 1.02, (name, seed, area[0])
            assert end_lo * 0.98 <= area[-1] <= end_hi * 1.02, (name, seed, area[-1])


@pytest.mark.parametrize(("classes", "labels"), [("motion", (0, 1)), ("actions", (0, 1)),
                                                 ("actions", (4, 2)), ("actions", (6, 3)),
                                                 ("actions", (8, 1)), ("actions", (7, 0))])
@pytest.mark.parametrize("difficulty", ["standard", "hard"])
def test_actor_is_where_its_box_says(difficulty: str, classes: str,
                                     labels: tuple[int, int]) -> None:
    """The same seed with another label changes the actor's motion and nothing else,
    so the pixels that differ are the two actors: inside their boxes, filling them
    (each in-place action is paired with a translation, which leaves its place)."""
    cfg = SynthConfig(frames=16, size=64, difficulty=difficulty, classes=classes)
    disjoint = 0
    for seed in SEEDS:
        a, b = (render_clip(seed, label, cfg) for label in labels)
        assert a.segment == b.segment
        for t in range(cfg.frames):
            diff = (a.frames[t] != b.frames[t]).any(-1)
            inside = np.zeros_like(diff)
            for x1, y1, x2, y2 in (a.boxes[t], b.boxes[t]):
                inside[y1:y2, x1:x2] = True
            assert not (diff & ~inside).any(), (seed, t)
            ax1, ay1, ax2, ay2 = a.boxes[t]
            bx1, by1, bx2, by2 = b.boxes[t]
            if difficulty == "standard" and (ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1):
                disjoint += 1
                for x1, y1, x2, y2 in (a.boxes[t], b.boxes[t]):
                    ys, xs = np.nonzero(diff[y1:y2, x1:x2])
                    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
                        0, 0, x2 - x1, y2 - y1), (seed, t)
    assert difficulty == "hard" or disjoint > 0


def test_render_is_deterministic_and_seeds_differ() -> None:
    a, b, c = render_clip(3, 5, CFG), render_clip(3, 5, CFG), render_clip(4, 5, CFG)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames, c.frames)
    seq = np.random.SeedSequence(7)
    assert np.array_equal(render_clip(seq, 2, CFG).frames,
                          render_clip(np.random.default_rng(np.random.SeedSequence(7)), 2,
                                      CFG).frames)


def test_labels_are_balanced_and_prefix_stable() -> None:
    for n in (7, 25, 40):
        counts = Counter(clip_label(0, "train", i) for i in range(n))
        assert len(counts) == min(n, len(ACTION_CLASSES))
        assert max(counts.values()) - min(counts.values()) <= 1
    first = [clip_label(0, "test", i) for i in range(30)]
    assert first != [clip_label(1, "test", i) for i in range(30)]
    assert first != [clip_label(0, "train", i) for i in range(30)]


def test_bad_config_is_a_user_error() -> None:
    with pytest.raises(StvizError, match="difficulty"):
        SynthConfig(difficulty="brutal")
    with pytest.raises(StvizError, match="frames"):
        SynthConfig(frames=4)
    with pytest.raises(StvizError, match="class set 'sports'"):
        SynthConfig(classes="sports")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_writes_a_deterministic_balanced_dataset(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    ann = generate(tmp_path / "a", 12, 5, seed=0, cfg=CFG, workers=1,
                   progress=lambda done, total: seen.append((done, total)))
    assert ann == tmp_path / "a" / "annotations.json"
    assert seen[-1] == (17, 17) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    generate(tmp_path / "b", 12, 5, seed=0, cfg=CFG, workers=2)
    generate(tmp_path / "c", 12, 5, seed=1, cfg=CFG, workers=1)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b  # same seed, any worker count: identical bytes, videos included
    assert a["annotations.json"] != c["annotations.json"]
    assert a["videos/test_00000.mp4"] != c["videos/test_00000.mp4"]

    data = json.loads(a["annotations.json"])
    assert {k: data[k] for k in ("format", "version", "seed", "difficulty", "frames", "size",
                                 "fps", "class_set")} == {
        "format": "stviz-synth", "version": 1, "seed": 0, "difficulty": "standard",
        "frames": 16, "size": 64, "fps": 8, "class_set": "actions"}
    assert data["classes"] == list(ACTION_CLASSES)
    videos = data["videos"]
    assert [v["id"] for v in videos] == [f"train_{i:05d}" for i in range(12)] + [
        f"test_{i:05d}" for i in range(5)]
    for v in videos:
        assert set(v) == {"id", "path", "split", "label", "class", "frames", "fps", "width",
                          "height", "segment", "boxes"}
        assert v["path"] == f"videos/{v['id']}.mp4" and v["id"].startswith(v["split"])
        assert v["class"] == ACTION_CLASSES[v["label"]]
        assert len(v["boxes"]) == 16 and all(len(box) == 4 for box in v["boxes"])
        clip = render_clip(clip_seed(0, v["split"], int(v["id"][-5:])), v["label"], CFG)
        assert v["boxes"] == clip.boxes.tolist() and v["segment"] == list(clip.segment)
    train = Counter(v["label"] for v in videos if v["split"] == "train")
    assert len(train) == len(ACTION_CLASSES) and max(train.values()) - min(train.values()) <= 1


def test_generated_video_holds_the_rendered_frames(tmp_path: Path) -> None:
    from stviz.video import probe, read_frames

    generate(tmp_path, 1, 0, seed=3, cfg=CFG, workers=1)
    path = tmp_path / "videos" / "train_00000.mp4"
    info = probe(path)
    assert (info.frames, info.width, info.height) == (16, 64, 64)
    clip = render_clip(clip_seed(3, "train", 0), clip_label(3, "train", 0), CFG)
    decoded = np.asarray(read_frames(path, list(range(16))), np.float32)
    assert np.abs(decoded - clip.frames).mean() < 12  # lossy H.264, but the same pictures


def test_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    generate(tmp_path, 2, 1, seed=0, cfg=CFG, workers=1)
    before = (tmp_path / "annotations.json").read_bytes()
    with pytest.raises(StvizError, match="--overwrite"):
        generate(tmp_path, 2, 1, seed=5, cfg=CFG, workers=1)
    assert (tmp_path / "annotations.json").read_bytes() == before
    generate(tmp_path, 2, 1, seed=5, cfg=CFG, workers=1, overwrite=True)
    assert json.loads((tmp_path / "annotations.json").read_text())["seed"] == 5
    with pytest.raises(StvizError, match="at least one clip"):
        generate(tmp_path / "empty", 0, 0, seed=0, cfg=CFG)


@pytest.mark.parametrize("name", ["pulse", "flash", "shake_horizontal", "shake_vertical",
                                  "rotate", "change_colour"])
def test_in_place_actions_happen_in_the_window_and_rest_outside(name: str) -> None:
    label, size = ACTION_CLASSES.index(name), CFG.size
    for seed in SEEDS:
        clip = render_clip(seed, label, CFG)
        start, end = clip.segment
        centre, wh = _geometry(clip.boxes)
        for rest in (slice(0, start), slice(end, None)):
            assert np.ptp(centre[rest], axis=0).max() <= 2, (name, seed)
            assert np.ptp(wh[rest], axis=0).max() == 0, (name, seed)
        window = slice(start, end)
        area = wh.prod(1)
        if name == "pulse":
            assert area[window].max() >= 2.0 * area[0] and area[-1] == area[0], (seed, area)
        elif name.startswith("shake"):
            axis = 0 if name == "shake_horizontal" else 1
            swing = np.abs(centre[window, axis] - centre[0, axis]).max()
            assert swing >= 0.08 * size - 2, (name, seed, swing)
            assert np.abs(centre[:, 1 - axis] - centre[0, 1 - axis]).max() <= 2, (name, seed)
            assert abs(centre[-1, axis] - centre[0, axis]) <= 2, (name, seed)
        elif name == "flash":
            assert (wh == wh[0]).all()
            x1, y1, x2, y2 = clip.boxes[0]
            inside = clip.frames[:, y1:y2, x1:x2].reshape(len(clip.frames), -1).mean(1)
            assert inside[window].max() > inside[0] + 40, (seed, inside)
            assert abs(inside[-1] - inside[0]) < 10, (seed, inside)
        elif name == "change_colour":
            assert (wh == wh[0]).all()
            x1, y1, x2, y2 = clip.boxes[0]
            colour = clip.frames[:, y1:y2, x1:x2].reshape(len(clip.frames), -1, 3).mean(1)
            assert np.abs(colour[end - 1] - colour[start - 1]).max() > 15, (seed, colour)
        else:  # a rotation changes the box's shape and keeps its final angle
            assert np.abs(wh[window] - wh[0]).max() >= 2 or np.abs(wh[-1] - wh[0]).max() >= 2


def test_rotations_turn_either_way_and_a_colour_change_stays() -> None:
    angles = [_act(np.random.default_rng(s), "rotate", np.array([0.0, 0.5, 1.0]),
                   np.array([20.0, 10.0]), 64).angle for s in range(40)]
    ends = np.array([a[-1] for a in angles])
    assert (ends > 0).any() and (ends < 0).any()  # clockwise and anticlockwise
    assert ((np.abs(ends) >= 90) & (np.abs(ends) <= 150)).all()
    assert all(a[0] == 0 and abs(a[1]) == abs(a[2]) / 2 for a in angles)
    # The turned sprite is the shape turned: a horizontal bar turned by 90 stands upright.
    alpha = np.zeros((9, 41), np.float32)
    alpha[3:6] = 1
    bar = _Sprite(np.full((9, 41, 3), 200, np.uint8), alpha, (0, 3, 41, 6))
    x1, y1, x2, y2 = _transform(bar, 90.0, 0.0, crisp=True).box
    assert x2 - x1 <= 4 and 40 <= y2 - y1 <= 42  # nearest-neighbour: a pixel may round away
    # A hue shift of half a turn moves red to cyan.
    red = _Sprite(np.full((2, 2, 3), (200, 0, 0), np.uint8), np.ones((2, 2), np.float32),
                  (0, 0, 2, 2))
    r, g, b = _transform(red, 0.0, 0.0, crisp=True, hue=0.5).rgb[0, 0].astype(int)
    assert r < 20 and g > 180 and b > 180
    clip = render_clip(2, ACTION_CLASSES.index("change_colour"), CFG)
    start = clip.segment[0]
    x1, y1, x2, y2 = clip.boxes[0]
    colour = clip.frames[:, y1:y2, x1:x2].reshape(16, -1, 3).mean(1)
    assert np.abs(colour[-1] - colour[0]).max() > 12  # the new colour stays after the window
    assert np.abs(colour[:start] - colour[0]).max() < 8


def test_distractors_act_only_with_the_actions_set() -> None:
    from stviz.datasets.synth import _LEVELS

    level = _LEVELS["standard"]
    acting = [_Scene.draw(np.random.default_rng(s), level, 16, 64, acting=True) for s in range(40)]
    passive = _Scene.draw(np.random.default_rng(0), level, 16, 64, acting=False)
    shares = [np.mean([a is not None for a in scene.acts]) for scene in acting]
    assert 0.5 <= np.mean(shares) <= 0.95 and not passive.acts
    # An acting distractor really changes: its picture differs from the passive one's.
    seed, scene = next((s, sc) for s, sc in enumerate(acting)
                       if any(a is not None and a.flash.max() > 0 for a in sc.acts))
    still = _Scene.draw(np.random.default_rng(seed), level, 16, 64)
    t = int(np.argmax(next(a.flash for a in scene.acts if a is not None and a.flash.max() > 0)))
    f_act, f_still = np.empty((64, 64, 3), np.uint8), np.empty((64, 64, 3), np.uint8)
    scene.behind(f_act, t)
    still.behind(f_still, t)
    assert (f_act.astype(int) - f_still).max() > 30


def test_motion_set_keeps_its_distractors_passive_and_its_labels() -> None:
    clip = render_clip(3, MOTION_CLASSES.index("grow"), MOTION)
    assert clip.frames.shape == (16, 64, 64, 3)
    assert [clip_label(0, "train", i, len(MOTION_CLASSES)) for i in range(20)] == [
        clip_label(0, "train", i) for i in range(20)]  # ten classes in both sets
