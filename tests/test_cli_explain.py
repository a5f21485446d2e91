"""`stviz explain` and `stviz compare` end to end, on a tiny random stviz checkpoint and
videos the tests write: the files, their sizes and schemas, and the user errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner
from run_cli import run
from tiny_models import T, tiny_stviz

from stviz import api
from stviz.cli import cli
from stviz.cli import explain as cli_explain
from stviz.core.checkpoint import CONFIG_FILE, DEFAULT_MODEL, save_checkpoint
from stviz.errors import StvizError
from stviz.render.colors import DEFAULT_ALPHA, DEFAULT_CMAP, GT_RGB, SEGMENT_RGB
from stviz.render.outputs import DEFAULT_FORMATS, DEFAULT_RENDER_SIZE
from stviz.render.overlay import PANEL_GAP, strip_height, title_height
from stviz.video import probe, write_video

W, H, N, FPS = 80, 64, 12, 8.0
CLASSES = ["a", "b", "c"]


def moving_square(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((H, W, 3), 40, np.uint8)
        f[10:30, 5 * i % 60:5 * i % 60 + 20] = (220, 60, 30)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of checkpoints: `tiny`, and the same saved under the default model's name."""
    root = tmp_path_factory.mktemp("models")
    model = tiny_stviz()
    save_checkpoint(model.net, model.spec, root / "tiny")
    save_checkpoint(model.net, model.spec, root / DEFAULT_MODEL)
    return root


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", moving_square(N), FPS)


def green(img: np.ndarray, color: tuple[int, int, int], tol: float = 6) -> bool:
    return bool((np.abs(img[..., :3].astype(float) - color).max(axis=-1) <= tol).any())


def test_explain_writes_every_file_and_refuses_to_overwrite(models, video, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", video, "--model", models / "tiny", "--out", out, "--device", "cpu"]
    code, stdout, _ = run(capsys, *args)
    assert code == 0
    names = ["explanation.json", "explanation.npz", "temporal.png", "keyframes.png",
             "overlay.mp4"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for word in ("prediction", "peak frames", "time", "total", "wrote", *names):
        assert word in stdout
    assert "actions10-lite0 is the bundled" not in stdout

    # Every frame of the video at its fps, with the timeline strip under it.
    info = probe(out / "overlay.mp4")
    assert (info.frames, info.width, info.height) == (N, W, H + strip_height(H))
    assert info.fps == pytest.approx(FPS)
    summary = json.loads((out / "explanation.json").read_text())
    assert {"video", "method", "classes", "probabilities", "predicted_class", "target_class",
            "peak_frames", "n_sampled", "fps", "fill", "seconds"} <= set(summary)
    assert summary["method"] == "attention" and summary["n_sampled"] == T
    assert summary["video_frames"] == N and summary["fill"] == "linear"
    assert set(summary["probabilities"]) == set(CLASSES)

    before = (out / "overlay.mp4").stat().st_mtime_ns
    code, _, err = run(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "exists" in err and "--overwrite" in err
    assert (out / "overlay.mp4").stat().st_mtime_ns == before
    code, _, _ = run(capsys, *args, "--overwrite", "--quiet")
    assert code == 0


def test_default_model_out_dir_gif_and_quiet(models, video, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STVIZ_MODELS", str(models))
    code, stdout, _ = run(capsys, "explain", video, "--format", "gif,json", "--device", "cpu")
    assert code == 0
    out = tmp_path / "stviz-out" / "clip"
    assert sorted(p.name for p in out.iterdir()) == ["explanation.json", "explanation.npz",
                                                      "overlay.gif"]
    assert iio.imread(out / "overlay.gif", index=None).shape[:3] == (N, H + strip_height(H), W)
    assert "actions10-lite0 is the bundled" in stdout and "stviz train DATASET" in stdout

    code, stdout, _ = run(capsys, "explain", video, "--format", "json", "--out", "q",
                          "--method", "saliency", "--target", "b", "--quiet")
    assert code == 0
    assert stdout.split() == [str(Path("q") / "explanation.json"),
                              str(Path("q") / "explanation.npz")]
    summary = json.loads((tmp_path / "q" / "explanation.json").read_text())
    assert summary["method"] == "saliency" and summary["target_class"] == "b"


def test_dense_with_annotations(models, video, tmp_path, capsys):
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps({"classes": CLASSES, "videos": [
        {"id": "other", "label": 0, "frames": 5},
        {"id": "clip", "label": 1, "frames": N, "segment": [3, 8],
         "boxes": {str(i): [20, 10, 60, 50] for i in range(N)}}]}))
    out = tmp_path / "dense"
    code, stdout, _ = run(capsys, "explain", video, "--model", models / "tiny", "--dense",
                          "--window", 4, "--stride", 2, "--annotations", ann, "--format",
                          "png,json", "--out", out, "--device", "cpu")
    assert code == 0 and "(dense)" in stdout
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["fill"] == "dense" and summary["n_sampled"] == N
    assert summary["params"]["windows"] == 5
    assert green(iio.imread(out / "keyframes.png"), GT_RGB)
    assert green(iio.imread(out / "temporal.png"), SEGMENT_RGB, 2)


def test_compare_writes_video_sheet_and_agreement(models, video, tmp_path, capsys):
    out = tmp_path / "cmp"
    code, stdout, _ = run(capsys, "compare", video, "--model", models / "tiny", "-b",
                          "gradcam,saliency", "-b", "gradcam", "--out", out, "--device", "cpu")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "compare.mp4",
                                                      "compare.png"]
    assert "agreement" in stdout and "spearman" in stdout
    report = json.loads((out / "compare.json").read_text())
    methods = ["attention", "gradcam", "saliency"]
    assert list(report["methods"]) == methods  # the model's own attention first
    for m in methods:
        assert report["methods"][m]["seconds"] > 0
        assert len(report["methods"][m]["temporal"]) == T
    pairs = report["agreement"]["pairs"]
    assert {(p["a"], p["b"]) for p in pairs} == {("attention", "gradcam"),
                                                 ("attention", "saliency"),
                                                 ("gradcam", "saliency")}
    for p in pairs:
        assert p["spearman"] is None or -1 <= p["spearman"] <= 1
        assert 0 <= p["top_region_iou"] <= 1
    info = probe(out / "compare.mp4")
    assert (info.frames, info.width) == (N, 3 * W + 2 * PANEL_GAP)
    assert info.height == title_height(H) + H + strip_height(H)


@pytest.fixture
def other_arch(models, tmp_path) -> Path:
    ckpt = tmp_path / "other"
    shutil.copytree(models / "tiny", ckpt)
    config = json.loads((ckpt / CONFIG_FILE).read_text())
    (ckpt / CONFIG_FILE).write_text(json.dumps({**config, "architecture": "slowfast"}))
    return ckpt


@pytest.mark.parametrize(("case", "message"), [
    ("missing video", "no such file"),
    ("corrupt video", "not a video"),
    ("unknown method", "--method gradcm: unknown"),
    ("unknown target", "--target jump: not a class"),
    ("target out of range", "--target 7: out of range"),
    ("other architecture", "architecture 'slowfast'"),
    ("unknown format", "--format webm"),
    ("one method only", "compare needs two methods"),
    ("window without dense", "add --dense"),
])
def test_user_errors_are_one_line(case, message, models, video, other_arch, tmp_path, capsys):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00not a video" * 100)
    model = ["--model", models / "tiny"]
    args = {
        "missing video": ["explain", tmp_path / "nope.mp4", *model],
        "corrupt video": ["explain", corrupt, *model],
        "unknown method": ["explain", video, *model, "--method", "gradcm"],
        "unknown target": ["explain", video, *model, "--target", "jump"],
        "target out of range": ["compare", video, *model, "--target", "7"],
        "other architecture": ["explain", video, "--model", other_arch],
        "unknown format": ["explain", video, *model, "--format", "mp4,webm"],
        "one method only": ["compare", video, *model, "--baseline", "attention"],
        "window without dense": ["explain", video, *model, "--window", 4],
    }[case]
    code, _, err = run(capsys, *args, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_short_video_repeats_frames_with_a_warning(models, tmp_path, capsys):
    short = write_video(tmp_path / "short.mp4", moving_square(2), FPS)
    code, _, err = run(capsys, "explain", short, "--model", models / "tiny", "--format",
                       "mp4,json", "--out", tmp_path / "s", "--device", "cpu")
    assert code == 0
    assert "warning:" in err and "repeating nearest frames" in err
    assert probe(tmp_path / "s" / "overlay.mp4").frames == 2


def test_api_returns_explanations_without_writing(video):
    model = tiny_stviz()
    result = api.explain(video, model, "gradcam", target="c")
    assert result.files == [] and result.explanation.target_class == "c"
    assert set(result.seconds) == {"load", "explain", "render", "total"}
    assert not result.bundled_synthetic
    compared = api.compare(video, ["saliency"], model)
    assert [e.method for e in compared.explanations] == ["attention", "saliency"]
    assert len(compared.agreement["pairs"]) == 1


def test_help_teaches_and_matches_the_library():
    from stviz.explain import METHODS

    assert set(cli_explain.METHODS) == set(METHODS)  # the help lists every method
    assert (cli_explain.DEFAULT_CMAP, cli_explain.DEFAULT_ALPHA) == (DEFAULT_CMAP, DEFAULT_ALPHA)
    assert ",".join(DEFAULT_FORMATS) == cli_explain.DEFAULT_FORMATS
    assert cli_explain.DEFAULT_RENDER_SIZE == DEFAULT_RENDER_SIZE
    for method, listed in cli_explain.METHOD_PARAMS.items():  # --help's parameter list
        fields = dataclasses.fields(METHODS[method])
        assert [p.split("=")[0] for p in listed.split()] == [f.name for f in fields]
        for part, f in zip(listed.split(), fields):
            assert part.split("=")[1] == ("auto" if f.default is None else str(f.default))
    assert all(not dataclasses.fields(METHODS[m]) for m in METHODS
               if m not in cli_explain.METHOD_PARAMS)
    for name in ("explain", "compare"):
        text = CliRunner().invoke(cli, [name, "--help"]).output
        assert "Examples:" in text and f"stviz {name} clip.mp4" in text
        assert "--overwrite" in text and "mp4,png,json]" in text
        assert "--render-size" in text and "[default: 720" in text


def test_the_executable_flushes_its_output_and_keeps_exit_codes(video, tmp_path):
    """`python -m stviz` skips Python's teardown (os._exit): what it printed must still
    arrive through pipes, and user errors must still exit 2."""
    import subprocess
    import sys

    def stviz(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "stviz", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    done = stviz("info", video, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == N
    done = stviz("info", tmp_path / "missing.mp4")
    assert done.returncode == 2
    assert "missing.mp4" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = stviz("explain", video, "--frames", "0")
    assert done.returncode == 2 and done.stdout == ""


def test_method_parameters_from_the_command_line(models, video, tmp_path, capsys):
    args = ["--model", models / "tiny", "--device", "cpu", "--format", "json"]
    code, _, err = run(capsys, "explain", video, "--method", "ig", "-p", "steps=3", "-p",
                       "ig.batch=3", "--out", tmp_path / "e", *args)
    assert code == 0, err
    summary = json.loads((tmp_path / "e" / "explanation.json").read_text())
    assert summary["params"]["steps"] == 3 and summary["params"]["batch"] == 3
    code, _, err = run(capsys, "compare", video, "-b", "smoothgrad,occlusion", "-p",
                       "smoothgrad.samples=2", "-p", "occlusion.window_frames=auto",
                       "--out", tmp_path / "c", *args)
    assert code == 0, err
    by_method = json.loads((tmp_path / "c" / "compare.json").read_text())["methods"]
    assert by_method["smoothgrad"]["params"]["samples"] == 2
    for bad, says in ((["explain", video, "--method", "ig", "-p", "steps=0"], "steps=0"),
                      (["explain", video, "--method", "ig", "-p", "steps=many"], "not a number"),
                      (["explain", video, "--method", "ig", "-p", "stepz=4"], "no parameter"),
                      (["explain", video, "-p", "ig.steps=4"], "not among the methods"),
                      (["compare", video, "-b", "ig", "-p", "steps=4"], "METHOD.NAME=VALUE")):
        code, _, err = run(capsys, *bad, *args)
        assert code == 2 and says in err, (bad, err)


def test_render_size_bounds_the_videos_long_side(models, video, tmp_path, capsys):
    """--render-size 40 draws the 80x64 video at 40x32 (explain and compare); 0 and the
    default 720 keep a small video's own size."""
    for size, (w, h) in ((40, (40, 32)), (0, (W, H)), (None, (W, H))):
        out = tmp_path / f"explain-{size}"
        extra = [] if size is None else ["--render-size", size]
        code, _, _ = run(capsys, "explain", video, "--model", models / "tiny", "--out", out,
                         "--device", "cpu", "--format", "mp4", "--quiet", *extra)
        assert code == 0
        info = probe(out / "overlay.mp4")
        assert (info.frames, info.width, info.height) == (N, w, h + strip_height(h))
    code, _, _ = run(capsys, "compare", video, "-b", "saliency", "--model", models / "tiny",
                     "--out", tmp_path / "compare", "--device", "cpu", "--format", "mp4",
                     "--render-size", 40, "--quiet")
    assert code == 0
    info = probe(tmp_path / "compare" / "compare.mp4")
    assert info.width == 2 * 40 + PANEL_GAP and info.frames == N
    code, _, err = run(capsys, "explain", video, "--render-size", -1)
    assert code == 2 and "--render-size" in err


def test_the_video_is_probed_once_and_each_frame_decoded_once_per_pass(models, video, tmp_path,
                                                                         monkeypatch):
    """explain and compare: one probe; the sampled frames decoded once (the figures reuse
    them, issue 13), then every frame once for the video; the figures are the same as
    from frames decoded again."""
    import stviz.video as v
    from stviz.explain.pipeline import sample_clip
    from stviz.render.outputs import write_explanation

    real_probe, real_decode = v.probe, v._decode
    probes: list[Path] = []
    passes: list[list[int]] = []  # the frames each decoding pass was asked for

    def probe(path: Path) -> v.VideoInfo:
        probes.append(path)
        return real_probe(path)

    def decode(path: Path, wanted: np.ndarray):
        passes.append(wanted.tolist())
        return real_decode(path, wanted)

    model = api.load_classifier(models / "tiny", device="cpu")
    sampled = sample_clip(model, video, info=real_probe(video)).indices.tolist()
    monkeypatch.setattr(v, "probe", probe)
    monkeypatch.setattr(v, "_decode", decode)
    result = api.explain(video, model, out=tmp_path / "e", render_size=0)
    assert len(probes) == 1 and passes == [sampled, list(range(N))]
    probes.clear()
    passes.clear()
    api.compare(video, ["saliency"], model, out=tmp_path / "c", render_size=0)
    assert len(probes) == 1 and passes == [sampled, list(range(N))]
    passes.clear()
    with pytest.raises(StvizError, match="--target 7: out of range"):
        api.explain(video, model, target=7)
    with pytest.raises(StvizError, match="--target 7: out of range"):
        api.compare(video, ["saliency"], model, target=7)
    assert passes == []  # a wrong target fails before any decoding

    monkeypatch.setattr(v, "_decode", real_decode)
    again = write_explanation(result.explanation, tmp_path / "again", ["png"])
    for path in again:
        assert path.read_bytes() == (tmp_path / "e" / path.name).read_bytes()
