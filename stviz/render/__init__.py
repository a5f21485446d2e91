"""Renderers: Explanations and RGB frames in, videos and PNG figures out (never a model).

Every output is written atomically and an existing file is only replaced with
`overwrite=True`. Spatial maps are coloured on one scale per clip.
"""

from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, ColorScale
from stviz.render.compare import render_compare_sheet, render_compare_video
from stviz.render.figures import key_frames
from stviz.render.keyframes import render_keyframes
from stviz.render.overlay import render_overlay
from stviz.render.temporal import render_temporal

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CMAP",
    "ColorScale",
    "key_frames",
    "render_compare_sheet",
    "render_compare_video",
    "render_keyframes",
    "render_overlay",
    "render_temporal",
]
