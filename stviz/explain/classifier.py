"""`VideoClassifier`: one view of any video classifier, so every method works on any model.

The view takes normalized clips (N, T, 3, H, W) and returns float32 logits (N, K),
whatever layout the wrapped module wants. It knows the classes, the clip length,
the input size and normalization, and the Grad-CAM layer: a per-frame 2-D layer
(output (N*T, C, h, w)), a 3-D layer (output (N, C, T', h, w)), or a 2-D layer called
once per frame (T outputs (N, C, h, w)). Stviz models also expose their attention.

Constructors: `from_stviz` (a loaded `AttentionModel`), `from_module` (any PyTorch
video classifier) and `load_classifier` (a stviz checkpoint, a torchvision video
state dict, or a TorchScript file).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stviz.core.checkpoint import check_finite
from stviz.core.device import autocast, resolve_device
from stviz.core.model import AttentionModel, load_model, preprocess_frames
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
}


@dataclass(frozen=True)
class LayerInfo:
    """The Grad-CAM layer as the probe saw it: its activations read as (N, C, T', h, w)."""

    name: str
    module: nn.Module
    frames: int  # T': T for per-frame layers, fewer for 3-D layers that stride in time
    grid: tuple[int, int]  # (h, w)


class VideoClassifier(nn.Module):
    """(N, T, 3, H, W) normalized clips -> float32 logits (N, K), plus what explainers need."""

    def __init__(self, module: nn.Module, *, classes: Sequence[str], frames: int,
                 input_size: int, mean: Sequence[float], std: Sequence[float],
                 layout: str = "NTCHW", layer: str | nn.Module | None = None,
                 device: torch.device | None = None, name: str = "model",
                 stviz: AttentionModel | None = None) -> None:
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
    def may_have_rnn(self) -> bool:
        """Whether cuDNN must be off for backward passes: an nn.LSTM/GRU/RNN inside, or a
        TorchScript module, whose contents cannot be checked."""
        return any(isinstance(m, (nn.RNNBase, torch.jit.ScriptModule)) for m in self.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            out = self.module(x.transpose(1, 2) if self.layout == "NCTHW" else x)
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
        square without cropping, as stviz models are trained."""
        x = preprocess_frames(frames, self.size, self.mean, self.std)
        return x.unsqueeze(0).to(self.device)

    # The Grad-CAM layer ------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self, module: nn.Module) -> Iterator[list[torch.Tensor]]:
        """Collect `module`'s outputs during the block (one per call)."""
        outputs: list[torch.Tensor] = []
        try:
            handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        except RuntimeError as exc:  # TorchScript modules refuse Python hooks
            raise StvizError(self._no_layer(f"its layers cannot be hooked ({exc})")) from exc
        try:
            yield outputs
        finally:
            handle.remove()

    def clip_view(self, outputs: list[torch.Tensor], n: int, t: int) -> torch.Tensor:
        """The layer's outputs for a batch of n clips of t frames as (n, C, T', h, w)."""
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
            return a
        raise StvizError(self._no_layer(f"its output {tuple(a.shape)} is not a feature map "
                                        "(N*T, C, h, w) or (N, C, T', h, w); pick another "
                                        "--layer"))

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
            try:
                clip = self.clip_view(outs, 1, self.frames)
            except StvizError as exc:
                if self._layer is not None:
                    self._layer_error = str(exc)
                    return
                continue
            if self._layer is not None or min(clip.shape[-2:]) > 1:
                self._info = LayerInfo(name, module, clip.shape[2], tuple(clip.shape[-2:]))
                return
        self._layer_error = self._no_layer("no module outputs a spatial feature map")

    def _no_layer(self, why: str) -> str:
        return (f"{self.name}: no Grad-CAM layer: {why}; methods without a layer still work "
                "(saliency, smoothgrad, ig, occlusion, frame-ablation)")


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
                    frames: int = 16, input_size: int | None = None,
                    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    layer: str | None = None, device: str | torch.device = "auto"
                    ) -> VideoClassifier:
    """Load a classifier to explain.

    - `arch=None` and a folder or model name (or None): a stviz checkpoint (`load_model`);
    - `arch` in r3d_18, mc3_18, r2plus1d_18, s3d: torchvision weights from a state-dict
      file (Kinetics-400 names and normalization unless the head has another size);
    - `arch=None` and a file: TorchScript; classes from `classes`, else `<file>.classes.txt`
      beside it, else numbered. TorchScript modules take no hooks, so no Grad-CAM.
    """
    dev = resolve_device(device)
    if arch is None and (path is None or not Path(path).is_file()):
        return from_stviz(load_model(path, dev), layer)
    p = Path(path)
    if not p.is_file():
        raise StvizError(f"{p}: no such file; pass the weights of --arch {arch}")
    if arch is None:
        return _torchscript(p, layout, classes, frames, input_size or 112, mean, std, layer, dev)
    if arch not in TORCHVISION_ARCHS:
        raise StvizError(f"--arch {arch}: unknown; use one of {', '.join(TORCHVISION_ARCHS)} "
                         "(or no --arch for a stviz checkpoint or a TorchScript file)")
    return _torchvision(p, arch, classes, frames, input_size, mean, std, layer, dev)


def _torchvision(path: Path, arch: str, classes: str | Path | Sequence[str] | None, frames: int,
                 input_size: int | None, mean: Sequence[float] | None,
                 std: Sequence[float] | None, layer: str | None, device: torch.device
                 ) -> VideoClassifier:
    from torchvision.models import video

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
    return from_module(model, "NCTHW", classes=names, frames=frames,
                       input_size=input_size or int(preset.crop_size[0]),
                       mean=mean or tuple(preset.mean), std=std or tuple(preset.std),
                       layer=layer or default_layer, device=device, name=f"{arch}:{path.name}")


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
