"""Checkpoints: a folder with `model.safetensors` (weights) and `config.json` (a ModelSpec).

With a frozen, offline backbone only the head's weights are stored, which keeps a
shipped checkpoint to a few MB; a fine-tuned backbone is stored too.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from stviz.core.backbones import OFFLINE_SOURCES, create_backbone
from stviz.core.network import ARCHITECTURE, AttentionHead, ModelSpec, NetworkConfig, STAttentionNet
from stviz.errors import StvizError
from stviz.files import write_bytes, write_json

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
DEFAULT_MODEL = "actions10-lite0"
FORMAT_VERSION = 1


def bundled_models_dir() -> Path:
    """`models/` of the source checkout: where the shipped checkpoints live."""
    return Path(__file__).resolve().parents[2] / "models"


def model_search_path() -> list[Path]:
    """Folders searched for a model given by name, in order."""
    dirs = [Path(p) for p in os.environ.get("STVIZ_MODELS", "").split(os.pathsep) if p]
    dirs += [bundled_models_dir(), Path.home() / ".cache" / "stviz" / "models"]
    return dirs


def find_checkpoints() -> list[Path]:
    """Every checkpoint folder on the search path."""
    found = []
    for d in model_search_path():
        if d.is_dir():
            found += sorted(p.parent for p in d.glob(f"*/{CONFIG_FILE}"))
    return found


def resolve_checkpoint(path_or_name: str | Path | None) -> Path:
    """A checkpoint folder from a folder, a file inside one, or a model name."""
    if path_or_name is None:
        path_or_name = DEFAULT_MODEL
    p = Path(path_or_name)
    if p.is_file() and p.name in (WEIGHTS_FILE, CONFIG_FILE):
        p = p.parent
    if p.is_dir():
        if not (p / CONFIG_FILE).is_file():
            raise StvizError(f"{p}: no {CONFIG_FILE} here; a stviz checkpoint is a folder "
                             f"with {CONFIG_FILE} and {WEIGHTS_FILE} (see `stviz models`)")
        return p
    if p.exists():
        raise StvizError(f"{p}: not a stviz checkpoint; pass its folder (with {CONFIG_FILE} "
                         f"and {WEIGHTS_FILE}) or a name from `stviz models`")
    for d in model_search_path():
        if (d / str(path_or_name) / CONFIG_FILE).is_file():
            return d / str(path_or_name)
    if str(path_or_name) == DEFAULT_MODEL:
        raise StvizError(f"the default model {DEFAULT_MODEL} is missing from "
                         f"{bundled_models_dir()}; run `make model` or pass --model PATH")
    raise StvizError(f"{path_or_name}: no such checkpoint folder or model name; "
                     "`stviz models` lists the models found")


def read_spec(ckpt: Path) -> ModelSpec:
    """Parse and validate `config.json`."""
    cfg_path = ckpt / CONFIG_FILE
    try:
        raw: dict[str, Any] = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise StvizError(f"{cfg_path}: unreadable config ({exc}); re-save the checkpoint") from exc
    arch = raw.get("architecture")
    if arch != ARCHITECTURE:
        raise StvizError(f"{cfg_path}: a checkpoint of architecture {arch!r}, not "
                         f"{ARCHITECTURE!r}; stviz loads only its own attention networks "
                         "(other classifiers go through --arch/--layout)")
    _check_values(raw, cfg_path)
    try:
        network = NetworkConfig(**raw["network"])
        fields = {k: raw[k] for k in ModelSpec.__dataclass_fields__ if k in raw and k != "network"}
        spec = ModelSpec(network=network, **fields)
        spec.mean, spec.std = tuple(spec.mean), tuple(spec.std)
    except (KeyError, TypeError, ValueError) as exc:
        raise StvizError(f"{cfg_path}: invalid config ({exc}); re-save the checkpoint") from exc
    if len(spec.classes) != network.num_classes:
        raise StvizError(f"{cfg_path}: {len(spec.classes)} class names for "
                         f"{network.num_classes} outputs; fix the config's 'classes'")
    return spec


# What each config value must be, beyond what the dataclasses check themselves: JSON
# gives any type, and a wrong one surfaced as a traceback deep inside the backbone.
MAX_FRAMES = 1024  # frames in a clip: beyond this a clip does not fit in memory anyway
_COUNTS = ("num_classes", "in_channels", "lstm_hidden", "reduce_channels", "frames")
_NUMBERS = ("dropout", "mask_init_bias", "attention_floor", "attention_floor_temperature",
            "attention_temperature")
_FLAGS = ("use_mask", "coords", "finetuned_backbone")
_NAMES = ("recurrent", "pooling", "spatial_pooling", "temporal_input", "backbone",
          "backbone_weights")


def _check_values(raw: dict[str, Any], path: Path) -> None:
    """Refuse config values of the wrong type or range, naming the key."""
    if not isinstance(raw.get("network"), dict):
        raise StvizError(f"{path}: invalid config (no 'network' object); re-save the checkpoint")
    values = {**raw, **raw["network"]}

    def count(v: Any, least: int = 1, most: int = 65536) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and least <= v <= most

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    checks: list[tuple[str, bool, str]] = []
    for key in _COUNTS:
        if key in values and not (key == "reduce_channels" and values[key] is None):
            most = MAX_FRAMES if key == "frames" else 65536
            checks.append((key, count(values[key], 1, most), f"a whole number in 1..{most}"))
    for key in _NUMBERS:
        if key in values:
            checks.append((key, number(values[key]), "a number"))
    for key in _FLAGS:
        if key in values:
            checks.append((key, isinstance(values[key], bool), "true or false"))
    for key in _NAMES:
        if key in values:
            checks.append((key, isinstance(values[key], str), "a string"))
    if "input_size" in values:
        checks.append(("input_size", count(values["input_size"], 8, 4096),
                       "a whole number of pixels in 8..4096"))
    if "attention_window" in values:
        checks.append(("attention_window", count(values["attention_window"], 0, MAX_FRAMES),
                       f"a whole number in 0..{MAX_FRAMES}"))
    if "mask_hidden" in values:
        checks.append(("mask_hidden", isinstance(values["mask_hidden"], list)
                       and len(values["mask_hidden"]) == 2
                       and all(count(v) for v in values["mask_hidden"]),
                       "two whole numbers in 1..65536"))
    for key in ("mean", "std"):
        if key in values:
            v = values[key]
            checks.append((key, isinstance(v, list) and len(v) == 3
                           and all(number(x) and (key == "mean" or x > 0) for x in v),
                           "three numbers" + (" > 0" if key == "std" else "")))
    if "classes" in values:
        checks.append(("classes", isinstance(values["classes"], list)
                       and all(isinstance(c, str) for c in values["classes"]),
                       "a list of class names"))
    for key, ok, what in checks:
        if not ok:
            raise StvizError(f"{path}: invalid config: {key!r} is {values[key]!r}, must be "
                             f"{what}; fix the value or re-save the checkpoint")


def build_network(spec: ModelSpec, backbone_weights: str | Path | None = None) -> STAttentionNet:
    """The untrained network a spec describes (backbone weights from their offline source)."""
    weights = backbone_weights if backbone_weights is not None else (
        None if spec.backbone_weights in OFFLINE_SOURCES else spec.backbone_weights)
    backbone = create_backbone(spec.backbone, weights)
    if backbone.channels != spec.network.in_channels:
        raise StvizError(f"backbone {spec.backbone} gives {backbone.channels} channels but the "
                         f"head expects {spec.network.in_channels}: a checkpoint of another "
                         "backbone")
    return STAttentionNet(backbone.module, AttentionHead(spec.network),
                          freeze_backbone=not spec.finetuned_backbone,
                          meta={"backbone": backbone}, temporal_stride=backbone.temporal_stride)


def save_checkpoint(net: STAttentionNet, spec: ModelSpec, out_dir: str | Path,
                    overwrite: bool = True) -> Path:
    """Write weights (head only for a frozen backbone) and config, each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {f"head.{k}": v for k, v in net.head.state_dict().items()}
    if spec.finetuned_backbone:
        state.update({f"backbone.{k}": v for k, v in net.backbone.state_dict().items()})
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    write_bytes(out / WEIGHTS_FILE, _safetensors_bytes(state, {
        "architecture": ARCHITECTURE, "format_version": str(FORMAT_VERSION)}), overwrite)
    write_json(out / CONFIG_FILE, {"format_version": FORMAT_VERSION, **spec.to_dict()}, overwrite)
    return out


def _safetensors_bytes(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose JSON header has its keys sorted: the library writes its
    metadata map in hash order, so identical weights gave different bytes run to run."""
    from safetensors.torch import save

    data = save(state, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + size]), sort_keys=True,
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format pads the header to 8 bytes
    return len(header).to_bytes(8, "little") + header + data[8 + size:]


def load_network(
    path_or_name: str | Path | None, device: torch.device | str = "cpu",
    backbone_weights: str | Path | None = None,
) -> tuple[STAttentionNet, ModelSpec, Path]:
    """Rebuild a network from a checkpoint, validating that the weights fit the config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    ckpt = resolve_checkpoint(path_or_name)
    spec = read_spec(ckpt)
    wpath = ckpt / WEIGHTS_FILE
    if not wpath.is_file():
        raise StvizError(f"{wpath}: missing; a checkpoint needs its weights file")
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StvizError(f"{wpath}: corrupt or not a safetensors file ({exc}); "
                         "re-download or re-train the model") from exc
    check_finite(state, wpath)
    net = build_network(spec, backbone_weights)
    head = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
    _load_strict(net.head, head, wpath, "head")
    if spec.finetuned_backbone:
        bb = {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
        _load_strict(net.backbone, bb, wpath, "backbone")
    return net.to(device).eval(), spec, ckpt


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights holding NaN or infinity (a damaged file): they would give NaN scores
    and maps, and metrics computed from them."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in state.items()
           if torch.is_tensor(v) and v.is_floating_point()}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        raise StvizError(f"{path}: {sum(bad.values())} weights are NaN or infinite (e.g. in "
                         f"{next(iter(bad))!r}); the file is damaged, re-download or re-train "
                         "the model")


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path,
                 part: str) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise StvizError(f"{path}: {part} weights do not fit the config (e.g. {first!r}: "
                         f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} "
                         "of another shape); a checkpoint of another architecture or backbone")
    module.load_state_dict(state)
