"""Hugging Face video transformers as `VideoClassifier`s, loaded offline from a folder.

A folder written by `save_pretrained` (config.json + model.safetensors, and usually a
preprocessor config) of a `VideoMAEForVideoClassification`,
`TimesformerForVideoClassification` or `VivitForVideoClassification`. Frames, input
size, normalization and class names come from the folder; nothing reaches the Hub
(`local_files_only` everywhere). Each family says how its tokens lie on the (T', h, w)
grid (for Grad-CAM), which layer Grad-CAM reads, and how to read its attention
matrices (for `attention-rollout`):

- VideoMAE: no CLS token, tubelets of `tubelet_size` frames, time-major tokens; the
  head averages the tokens (or, without mean pooling, reads the first one);
- ViViT: a CLS token, then tubelets of `tubelet_size` = (t, h, w), time-major;
- TimeSformer: a CLS token, one patch grid per frame, tokens ordered (h, w, T); its
  divided attention runs temporal attention (each patch location over the frames),
  then spatial attention (each frame's patches and a copy of the CLS token, whose
  outputs are averaged over the frames).

Grad-CAM reads the last block's `layernorm_before`: the tokens that block's attention
mixes into the CLS token (a CLS model's last block output reaches the head only
through the CLS token, so its patch tokens get no gradient).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stviz.errors import StvizError
from stviz.explain.classifier import (
    AttentionSource,
    TokenAttention,
    TokenGrid,
    VideoClassifier,
    _class_names,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# Where save_pretrained writes normalization: image processors, then video processors.
PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
INSTALL_HINT = "pip install stviz[transformers]"
IMAGENET_DEFAULT = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGENET_STANDARD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Family:
    """What stviz needs to know about one model type."""

    cls: str  # the transformers class
    prefix: int  # special tokens before the patches
    order: str  # token order, see `TokenGrid`
    normalization: tuple[tuple[float, ...], tuple[float, ...]]  # the processor's defaults
    rescale: float = 1 / 255  # the processor's default rescale factor
    offset: bool = False  # ViViT: rescaled to [-1, 1] before normalizing


FAMILIES = {
    "videomae": Family("VideoMAEForVideoClassification", 0, "thw", IMAGENET_STANDARD),
    "vivit": Family("VivitForVideoClassification", 1, "thw", IMAGENET_STANDARD, 1 / 127.5,
                    offset=True),
    "timesformer": Family("TimesformerForVideoClassification", 1, "hwt", IMAGENET_DEFAULT),
}


def is_hf_folder(path: str | Path) -> bool:
    """Whether `path` is a folder whose config.json is a Hugging Face config (it names a
    `model_type`; stviz checkpoints name an `architecture`). An unreadable config is left
    to the stviz loader, which says so."""
    config = Path(path) / CONFIG_FILE
    if not config.is_file():
        return False
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(raw, dict) and "model_type" in raw and "architecture" not in raw


def load_hf_classifier(folder: Path, *, classes: str | Path | Sequence[str] | None = None,
                       frames: int | None = None, input_size: int | None = None,
                       layer: str | None = None, device: torch.device | None = None
                       ) -> VideoClassifier:
    """A `VideoClassifier` over a Hugging Face video classification folder (see the module
    doc). `frames` and `input_size`, when given, must be the model's own: its position
    embeddings fix them."""
    config_path = folder / CONFIG_FILE
    raw = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = raw.get("model_type")
    if model_type not in FAMILIES:
        raise StvizError(f"{folder}: a Hugging Face {model_type!r} model, not a video "
                         "classifier stviz explains; pass a folder of a "
                         f"{', '.join(f.cls for f in FAMILIES.values())}")
    family = FAMILIES[model_type]
    declared = raw.get("architectures") or [family.cls]
    if family.cls not in declared:
        raise StvizError(f"{config_path}: a {', '.join(map(str, declared))}, not a "
                         f"{family.cls}; pass the folder of a fine-tuned video classifier")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise StvizError(f"{folder}: no {WEIGHTS_FILE}; save the model there with "
                         "model.save_pretrained(folder)")
    transformers = _import_transformers()
    with _quiet(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            model_class = getattr(transformers, family.cls)
            model, info = model_class.from_pretrained(
                folder, config=config, local_files_only=True, use_safetensors=True,
                attn_implementation="eager",  # attention weights for attention-rollout
                output_loading_info=True)
        except Exception as exc:  # anything the folder holds is the user's to fix
            raise StvizError(f"{folder}: cannot load a {family.cls} "
                             f"({_first_line(exc)}); check config.json, or re-save the model "
                             "with save_pretrained") from exc
    missing = sorted(info.get("missing_keys") or []) + sorted(info.get("mismatched_keys") or [])
    if missing:
        raise StvizError(f"{weights}: not the weights of the {family.cls} config.json "
                         f"describes ({len(missing)} missing or mismatched, e.g. "
                         f"{_key(missing[0])}); pass a folder saved by save_pretrained of one "
                         "model")
    tokens, size = _token_grid(config, family)
    _check_fixed(folder, "--frames", frames, int(config.num_frames))
    _check_fixed(folder, "--input-size", input_size, size)
    if model_type == "timesformer" and config.attention_type == "space_only":
        raise StvizError(f"{config_path}: TimeSformer with attention_type 'space_only' has no "
                         "token grid over time; pass a divided_space_time or "
                         "joint_space_time model")
    mean, std = _normalization(folder, family)
    k = int(config.num_labels)
    labels = [str(config.id2label.get(i, f"class_{i}")) for i in range(k)]
    blocks_name, blocks = _blocks(model, int(config.num_hidden_layers))
    default_layer = f"{blocks_name}.{len(blocks) - 1}.layernorm_before"
    readout = "mean" if getattr(config, "use_mean_pooling", False) else "first"
    source = _attention_source(model, blocks, tokens, readout, model_type == "timesformer")
    return VideoClassifier(model.to(device).eval(), classes=_class_names(classes, k, folder,
                                                                         labels),
                           frames=int(config.num_frames), input_size=size, mean=mean, std=std,
                           layout="NTCHW", layer=layer or default_layer, device=device,
                           name=f"{model_type}:{folder.name}", tokens=tokens,
                           attention_source=source)


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise StvizError(f"Hugging Face models need the transformers package: {INSTALL_HINT}"
                         ) from exc
    return transformers


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """transformers logs what stviz reports itself (missing weights) or does not matter to
    a user (the attention implementation, a loading progress bar); errors still raise."""
    level = transformers.logging.get_verbosity()
    bars = transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _key(key: Any) -> str:
    return str(key[0] if isinstance(key, (tuple, list)) else key)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]),
                                                                    int(value[1]))


def _blocks(model: nn.Module, depth: int) -> tuple[str, nn.ModuleList]:
    """(name, modules) of the transformer blocks, wherever this transformers version keeps
    them (`encoder.layer`, or ViViT's `layers`)."""
    for name, module in model.named_modules():
        if (isinstance(module, nn.ModuleList) and len(module) == depth
                and all(hasattr(block, "layernorm_before") for block in module)):
            return name, module
    raise StvizError(f"{type(model).__name__}: no transformer blocks found; this version of "
                     "transformers lays the model out differently from what stviz knows")


def _token_grid(config: Any, family: Family) -> tuple[TokenGrid, int]:
    """(the patch-token grid, the square input side) from the model's own sizes."""
    height, width = _pair(config.image_size)
    if height != width:
        raise StvizError(f"image_size {height}x{width}: stviz feeds square clips; pass a "
                         "model with a square image_size")
    if family.cls.startswith("Vivit"):
        tube_t, patch_h, patch_w = (int(v) for v in config.tubelet_size)
    else:
        tube_t = int(getattr(config, "tubelet_size", 1))
        patch_h, patch_w = _pair(config.patch_size)
    grid = TokenGrid(int(config.num_frames) // tube_t, (height // patch_h, width // patch_w),
                     family.prefix, family.order)
    return grid, height


def _check_fixed(folder: Path, option: str, given: int | None, own: int) -> None:
    if given is not None and given != own:
        raise StvizError(f"{option} {given}: {folder.name} takes exactly {own} (its position "
                         f"embeddings are fixed); drop {option}")


def _normalization(folder: Path, family: Family) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """stviz's mean/std on [0, 1] pixels equivalent to the processor's rescale (and ViViT's
    offset to [-1, 1]) followed by its normalization."""
    raw: dict[str, Any] = {}
    for name in PREPROCESSOR_FILES:
        path = folder / name
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise StvizError(f"{path}: unreadable ({exc}); re-save the processor with "
                                 "save_pretrained or delete the file") from exc
            break
    mean, std = family.normalization
    if raw.get("do_normalize", True):
        mean, std = raw.get("image_mean", mean), raw.get("image_std", std)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    scale = 255 * (float(raw.get("rescale_factor", family.rescale))
                   if raw.get("do_rescale", True) else 1.0)
    offset = 1.0 if raw.get("offset", family.offset) else 0.0
    mean = [mean] * 3 if isinstance(mean, (int, float)) else mean
    std = [std] * 3 if isinstance(std, (int, float)) else std
    return (tuple((float(m) + offset) / scale for m in mean),
            tuple(float(s) / scale for s in std))


def _attention_source(model: nn.Module, blocks: nn.ModuleList, tokens: TokenGrid,
                      readout: str, timesformer: bool) -> AttentionSource:
    """The model's attention probabilities (after softmax, heads kept) in the order they
    are computed, recorded during one forward pass.

    VideoMAE and ViViT return (output, probabilities) from their self-attention module
    (with the eager implementation, which the loader asks for); TimeSformer passes its
    probabilities through an `attn_drop` dropout, whose input is read: per block its
    temporal step, then its spatial step (divided attention), or one joint step."""
    divided = timesformer and any(hasattr(b, "temporal_attention") for b in blocks)

    def source(x: torch.Tensor) -> tuple[torch.Tensor, list[TokenAttention], TokenGrid, str]:
        steps: list[TokenAttention] = []

        def keep(kind: str, probs: torch.Tensor) -> None:
            probs = probs.detach().float()
            steps.append(TokenAttention(probs[0] if kind == "joint" else probs, kind))

        hooks: list[tuple[nn.Module, str, bool]] = []  # (module, kind, probs are its input)
        for block in blocks:
            if divided:
                hooks.append((block.temporal_attention.attention.attn_drop, "time", True))
                hooks.append((block.attention.attention.attn_drop, "space", True))
            elif timesformer:
                hooks.append((block.attention.attention.attn_drop, "joint", True))
            else:
                hooks.append((getattr(block.attention, "attention", block.attention), "joint",
                              False))
        handles = [module.register_forward_hook(
            lambda _m, args, out, kind=kind, inp=inp: keep(kind, args[0] if inp else out[1]))
            for module, kind, inp in hooks]
        try:
            logits = model(x).logits[0].float()
        finally:
            for handle in handles:
                handle.remove()
        return logits, steps, tokens, readout

    return source
