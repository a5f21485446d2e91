"""Write `annotations.json`: hand-made spatio-temporal ground truth for the four real clips.

The boxes below were read off by hand, for stviz, from decoded frames with a labelled
pixel grid drawn on them, then drawn back onto the frames and corrected until they sat
on the actor (within a few pixels; within ~10 px on the motion-blurred frames). Only
keyframes are stored here; every frame inside a segment gets a box linearly
interpolated between the two nearest keyframes of its track, rounded to whole
pixels and clipped to the frame. See SOURCES.md ("Ground truth") for the rule per clip.

Boxes are x1, y1, x2, y2 in pixels of the decoded frame, x2/y2 exclusive; frames are
0-based; segments are [start, end) in frames. The output is stviz's JSON annotation
format (stviz/datasets/annotations/stviz_json.py), so

    python examples/real/make_annotations.py
    stviz annotations examples/real/annotations.json
    stviz localize-eval examples/real --annotations examples/real/annotations.json ...

Run it from anywhere; it writes next to itself. It needs only the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "annotations.json"

# Kinetics-400 class names (data/label_map.txt of deepmind/kinetics-i3d), in this order.
CLASSES = ["arm wrestling", "cleaning pool", "playing cricket", "shooting basketball"]

# A clip's ground truth is a list of tracks. A track is one actor over one span of
# frames [start, end): its keyframes must include start and end - 1, and boxes are
# interpolated only between keyframes of the same track (so a change of actor, or a
# gap between segments, never produces a box sliding across the frame). The clip's
# segments are its track spans, adjacent ones merged.
CLIPS: dict[str, dict] = {
    "arm_wrestling": {
        "path": "arm_wrestling.mp4", "class": "arm wrestling",
        "frames": 280, "fps": 28.0, "width": 340, "height": 256,
        # The contest: both clasped hands plus both forearms, wrist to elbow (the
        # elbows rest on the table near, or below, the bottom edge; the right
        # wrestler's elbow is the lowest point of his black sleeve). Upper arms,
        # heads and torsos are left out. Frame 229 is smeared and frames 230-267 are
        # one frozen, garbled picture (decoder damage in the file itself): no action
        # is visible there, so the clip has two segments, [0, 229) and [268, 280).
        # Frames ~196-228 are heavily motion-blurred (the camera swings); the boxes
        # there follow the blurred hands and forearms.
        "tracks": [
            {"who": "both wrestlers' clasped hands and forearms", "span": [0, 229], "keys": {
                0: [95, 104, 300, 256], 14: [98, 86, 300, 256], 28: [95, 62, 300, 256],
                42: [98, 56, 305, 256], 56: [105, 64, 320, 256], 70: [105, 34, 335, 256],
                84: [100, 24, 335, 250], 98: [100, 30, 340, 252], 112: [100, 38, 335, 256],
                126: [108, 54, 340, 256], 140: [108, 42, 335, 256], 154: [105, 24, 340, 256],
                168: [70, 54, 280, 256], 182: [80, 14, 325, 245], 186: [65, 14, 300, 256],
                189: [60, 58, 270, 256], 191: [55, 58, 260, 256], 194: [70, 44, 300, 256],
                196: [90, 34, 325, 256],
                200: [70, 48, 300, 256], 204: [70, 30, 300, 256], 208: [40, 55, 280, 256],
                212: [40, 38, 230, 256], 216: [45, 48, 210, 256], 220: [70, 48, 230, 245],
                224: [40, 72, 225, 256], 228: [28, 92, 220, 256]}},
            {"who": "both wrestlers' clasped hands and forearms", "span": [268, 280], "keys": {
                268: [80, 46, 240, 240], 272: [80, 52, 240, 240], 276: [85, 48, 250, 240],
                279: [90, 56, 250, 250]}},
        ],
    },
    "cleaning_pool": {
        "path": "cleaning_pool.mp4", "class": "cleaning pool",
        "frames": 300, "fps": 30.0, "width": 340, "height": 256,
        # The person and the tool: the visible part of the person (legs and feet on
        # the pool's edge, usually at the right), the whole visible pole (from where
        # it enters the frame, usually the top edge, down through the water, where
        # refraction bends it) and the vacuum head at its lower end (the yellow
        # brush on the pool floor). The floating hose loop is left out unless it lies
        # inside that box anyway. When the person is out of view (~frames 215-245)
        # the box is the pole and the head. The cleaning is visible throughout: one
        # segment, the whole clip.
        "tracks": [
            {"who": "person, pole and vacuum head", "span": [0, 300], "keys": {
                0: [150, 0, 340, 256], 8: [145, 0, 340, 256], 15: [138, 0, 340, 256],
                30: [128, 0, 340, 256], 45: [148, 0, 340, 256], 60: [143, 0, 340, 256],
                75: [118, 0, 262, 238], 90: [148, 0, 340, 256], 105: [162, 0, 340, 232],
                120: [108, 0, 238, 238], 135: [112, 0, 242, 256], 150: [92, 0, 262, 256],
                165: [128, 0, 340, 256], 180: [118, 0, 340, 228], 195: [108, 0, 340, 228],
                210: [132, 0, 340, 228], 225: [178, 28, 340, 236], 240: [172, 12, 340, 232],
                255: [152, 0, 340, 246], 270: [152, 0, 340, 228], 285: [182, 0, 340, 198],
                292: [192, 0, 340, 196], 299: [192, 0, 340, 188]}},
        ],
    },
    "cricket_shot": {
        "path": "cricket_shot.gif", "class": "playing cricket",
        "frames": 79, "fps": 25.0, "width": 224, "height": 224,
        # The striking batsman (dark kit, at the far crease, facing the camera), bat
        # included, from his stance through the shot (~frames 12-32) and, after it,
        # as he walks down the pitch to the right and meets the non-striker (kit
        # number 06, who is not boxed). The bowler, umpire, keeper and fielders are
        # left out. He is in view the whole clip: one segment, all 79 frames.
        "tracks": [
            {"who": "striking batsman", "span": [0, 79], "keys": {
                0: [108, 42, 134, 100], 4: [108, 42, 134, 100], 8: [108, 42, 134, 100],
                12: [108, 42, 134, 100], 16: [108, 34, 136, 100], 20: [112, 42, 142, 100],
                24: [116, 42, 146, 100], 28: [114, 36, 150, 100], 32: [134, 34, 158, 98],
                40: [148, 44, 172, 100], 48: [164, 45, 190, 102], 56: [166, 45, 196, 104],
                64: [168, 45, 195, 112], 68: [168, 46, 196, 118], 72: [176, 48, 204, 118],
                76: [170, 54, 198, 120], 78: [170, 54, 200, 120]}},
        ],
    },
    "shooting_basketball": {
        "path": "shooting_basketball.mp4", "class": "shooting basketball",
        "frames": 300, "fps": 30000 / 1001, "width": 426, "height": 240,
        # The shooter: one player at a time, whole body (head to feet, raised arms
        # included, and the ball while it is in the hands, not once released). Two
        # players take turns at one hoop; the box is on the player whose shot is in
        # progress, from the moment the previous shot's ball is gone until their own
        # ball reaches (or flies past) the rim; between shots, on the player holding
        # the ball who takes the next shot. So: the player in white, shot 1 (released
        # ~frame 6) to frame 35; the player in blue, who dribbles in, sets up from
        # ~frame 48 and releases ~frame 70, frames 36-95; the player in white again,
        # who fetches a ball, dribbles, shoots (released ~frame 206) and keeps the ball
        # afterwards, frames 96-280. From ~frame 273 the camera pans away from the hoop
        # and the player in white leaves the frame on the left at frame 281: the
        # segment is [0, 281), and the last ~0.6 s (frames 281-299) have no box.
        "tracks": [
            {"who": "player in white (shot 1)", "span": [0, 36], "keys": {
                0: [80, 96, 137, 239], 6: [78, 76, 128, 240], 12: [80, 92, 128, 240],
                18: [86, 98, 132, 240], 24: [80, 108, 132, 240], 30: [86, 104, 132, 240],
                35: [86, 106, 132, 240]}},
            {"who": "player in blue (shot 2)", "span": [36, 96], "keys": {
                36: [308, 132, 352, 240], 42: [308, 132, 360, 240], 48: [312, 128, 362, 240],
                54: [316, 122, 362, 240], 60: [314, 116, 362, 240], 66: [314, 114, 362, 240],
                70: [314, 106, 360, 238], 74: [316, 98, 366, 240], 78: [303, 93, 352, 240],
                84: [298, 116, 350, 240], 90: [298, 118, 348, 240], 95: [298, 120, 348, 238]}},
            {"who": "player in white (shot 3, then the next ball)", "span": [96, 281], "keys": {
                96: [198, 126, 242, 196], 104: [190, 124, 230, 192], 112: [164, 118, 204, 190],
                120: [134, 110, 180, 186], 128: [133, 110, 192, 192], 136: [148, 104, 196, 188],
                144: [152, 98, 200, 190], 152: [170, 106, 212, 198], 160: [172, 104, 226, 205],
                168: [184, 104, 220, 195], 176: [184, 108, 218, 200], 184: [184, 110, 222, 196],
                192: [190, 104, 230, 198], 200: [188, 102, 222, 193], 206: [188, 86, 222, 196],
                212: [186, 90, 222, 193], 218: [178, 84, 212, 190], 226: [174, 90, 210, 192],
                234: [174, 98, 210, 196], 242: [172, 114, 216, 192], 250: [183, 110, 216, 186],
                258: [168, 114, 214, 192], 264: [152, 114, 200, 196], 270: [108, 114, 176, 198],
                272: [88, 98, 160, 188], 274: [68, 94, 128, 180], 276: [44, 98, 102, 180],
                278: [18, 98, 76, 180], 280: [0, 94, 46, 172]}},
        ],
    },
}


def interpolate(keys: dict[int, list[int]], frame: int) -> list[float]:
    """The box at `frame`, linear between the nearest keyframes around it."""
    if frame in keys:
        return [float(v) for v in keys[frame]]
    before = max(k for k in keys if k < frame)
    after = min(k for k in keys if k > frame)
    t = (frame - before) / (after - before)
    return [(1 - t) * a + t * b for a, b in zip(keys[before], keys[after])]


def clip_boxes(clip: dict) -> tuple[dict[str, list[int]], list[list[int]]]:
    """Every frame's box (frame index as a string -> box) and the merged segments."""
    boxes: dict[str, list[int]] = {}
    spans = []
    for track in clip["tracks"]:
        start, end = track["span"]
        keys = track["keys"]
        assert 0 <= start < end <= clip["frames"], track["span"]
        assert min(keys) == start and max(keys) == end - 1, (track["who"], sorted(keys))
        for frame in range(start, end):
            assert str(frame) not in boxes, f"frame {frame} is in two tracks"
            x1, y1, x2, y2 = (round(v) for v in interpolate(keys, frame))
            box = [max(0, x1), max(0, y1), min(clip["width"], x2), min(clip["height"], y2)]
            assert box[0] < box[2] and box[1] < box[3], (frame, box)
            boxes[str(frame)] = box
        if spans and spans[-1][1] == start:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return boxes, spans


def build() -> dict:
    videos = []
    for vid, clip in CLIPS.items():
        boxes, segments = clip_boxes(clip)
        videos.append({
            "id": vid, "label": CLASSES.index(clip["class"]), "class": clip["class"],
            "frames": clip["frames"], "fps": clip["fps"], "width": clip["width"],
            "height": clip["height"], "split": "test", "path": clip["path"],
            "segments": segments, "tubes": 1, "boxes": boxes})
    return {"classes": CLASSES, "videos": videos}


def main() -> None:
    data = build()
    # One video per line block, one box per line: readable and diff-friendly.
    lines = ['{"classes": ' + json.dumps(data["classes"]) + ',', ' "videos": [']
    for i, v in enumerate(data["videos"]):
        head = {k: v[k] for k in v if k != "boxes"}
        lines.append("  " + json.dumps(head)[:-1] + ', "boxes": {')
        items = list(v["boxes"].items())
        for j, (frame, box) in enumerate(items):
            lines.append(f'    "{frame}": {json.dumps(box)}' + ("," if j < len(items) - 1 else ""))
        lines.append("  }}" + ("," if i < len(data["videos"]) - 1 else ""))
    lines.append(" ]}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == data
    OUT.write_text(text)
    for v in data["videos"]:
        print(f"{v['id']}: {len(v['boxes'])} boxed frames of {v['frames']}, "
              f"segments {v['segments']}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
