"""Device choice and mixed precision: `auto`, `cpu`, `cuda` or `cuda:N`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from stviz.errors import StvizError


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """`auto` picks the first CUDA GPU when there is one, else the CPU."""
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise StvizError(f"--device {spec}: not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise StvizError(f"--device {spec}: no CUDA GPU is visible; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise StvizError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) "
                             "are visible; pick another index")
    elif device.type != "cpu":
        raise StvizError(f"--device {spec}: unsupported; use auto, cpu, cuda or cuda:N")
    return device


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """fp16 autocast on CUDA (mixed precision); a no-op on the CPU."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float16):
            yield
    else:
        yield
