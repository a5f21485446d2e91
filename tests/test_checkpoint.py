"""Checkpoint round trip and the errors a user can cause."""

import json

import pytest
import torch

from stviz.core.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_network,
    load_network,
    save_checkpoint,
)
from stviz.core.model import load_model
from stviz.core.network import ModelSpec, NetworkConfig
from stviz.errors import StvizError


def tiny_spec(**kw) -> ModelSpec:
    net = NetworkConfig(num_classes=3, in_channels=512, mask_hidden=(8, 4), reduce_channels=8,
                        lstm_hidden=6)
    return ModelSpec(network=net, backbone="resnet18", backbone_weights="random", input_size=64,
                     frames=4, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     classes=["a", "b", "c"], **kw)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    spec = tiny_spec(metrics={"accuracy": 0.5})
    net = build_network(spec)
    save_checkpoint(net, spec, tmp_path / "ckpt")
    return net, spec, tmp_path / "ckpt"


def test_round_trip_restores_head_and_spec(saved):
    net, spec, path = saved
    loaded, spec2, p = load_network(path)
    assert p == path and spec2.classes == spec.classes and spec2.metrics == {"accuracy": 0.5}
    for (k, a), (_, b) in zip(net.head.state_dict().items(), loaded.head.state_dict().items()):
        assert torch.equal(a, b), k
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["architecture"] == "stviz-st-attention" and config["format_version"] == 1


def test_frozen_backbone_is_not_stored(saved):
    from safetensors.torch import load_file

    keys = load_file(str(saved[2] / WEIGHTS_FILE)).keys()
    assert keys and all(k.startswith("head.") for k in keys)


def test_load_model_predicts_on_raw_frames(saved):
    import numpy as np

    model = load_model(saved[2], device="cpu")
    out = model.predict(np.zeros((4, 30, 40, 3), np.uint8))
    assert out.logits.shape == (1, 3) and out.masks.shape == (1, 4, 2, 2)


def test_corrupt_weights(saved):
    (saved[2] / WEIGHTS_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(StvizError, match="corrupt"):
        load_network(saved[2])


def test_other_architecture(saved):
    cfg = json.loads((saved[2] / CONFIG_FILE).read_text())
    cfg["architecture"] = "i3d"
    (saved[2] / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(StvizError, match="architecture 'i3d'"):
        load_network(saved[2])


def test_other_backbone(saved):
    cfg = json.loads((saved[2] / CONFIG_FILE).read_text())
    cfg["backbone"] = "resnet50"  # 2048 channels, head built for 512
    (saved[2] / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(StvizError, match="another backbone"):
        load_network(saved[2])


def test_weights_of_other_widths(saved, tmp_path):
    spec = tiny_spec()
    spec.network.lstm_hidden = 12
    save_checkpoint(build_network(spec), spec, tmp_path / "other")
    (saved[2] / WEIGHTS_FILE).write_bytes((tmp_path / "other" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(StvizError, match="do not fit"):
        load_network(saved[2])


def test_unknown_name_and_non_checkpoint(tmp_path):
    with pytest.raises(StvizError, match="stviz models"):
        load_network("no-such-model")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(StvizError, match="not a stviz checkpoint"):
        load_network(tmp_path / "x.txt")
