"""Training throughput (slices/s) of iphbench's training step, side by side with a plain loop and smp.

Every runner trains on the same random 2D slices with the same loss (Dice + focal) in one
process, the runners alternating within each timing round (median of the rounds reported):

- ``plain fp32``: a typical hand-written loop: fp32 eager, batches gathered on the host and
  copied to the device each step, ``loss.item()`` every step;
- ``iphbench eager``: ``trainer.train_one_epoch`` with the paper recipe, not compiled (slices
  resident on the device, indices drawn there, one host sync per epoch; on CUDA bf16 autocast
  and channels-last);
- ``iphbench compiled``: the same step compiled as a run compiles it (``train.compile: auto``,
  forward and loss as one graph; CUDA only unless ``--cpu-compile``); ``--compile-modes`` adds
  other ``torch.compile`` modes (``reduce-overhead`` = CUDA graphs);
- ``iphbench recipe``: the ``iphbench`` recipe's step at the same batch size: balanced sampling
  and augmentation on the device, compiled as a run would be. ``1 − recipe/compiled`` is the share
  of step time spent on sampling and augmentation (issue 11: under 10 % on a GPU), printed with
  the time of sampling plus augmentation measured alone;
- ``smp``: segmentation_models_pytorch's VGG16-BN U-Net (``encoder_weights=None``, 1 channel in,
  1 class) in iphbench's own step (same loss, bf16, channels-last, compiled on CUDA), when that
  package imports (it is never a dependency of iphbench).

MFU = slices/s × the model's FLOPs per slice (forward + backward, ``torch.utils.flop_counter``)
÷ the dense matrix-multiply rate of this very device, measured here (bf16 8192³ products on
CUDA, fp32 on CPU); the datasheet's 989 TFLOP/s (H100/H200 SXM, dense bf16) is a second,
labelled column on those cards only.

Usage:
    .venv/bin/python bench/train_throughput.py --quick              # CPU smoke test, about a minute
    python3 bench/train_throughput.py --models unet --batch 1024 --steps 10 --rounds 3   # GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iphbench.config import IphbenchRecipe, PrepConfig, TrainConfig
from iphbench.models import create_model, list_models
from iphbench.training.data import SliceSet
from iphbench.training.engine import Engine, resolve_amp
from iphbench.training.loss import DiceFocalLoss
from iphbench.training.recipe import resolve_recipe
from iphbench.training.sampling import BalancedSampler, PermutationSampler, RunSlices
from iphbench.training.trainer import train_one_epoch

DATASHEET_BF16 = 989e12  # dense bf16 FLOP/s of an H100 or H200 SXM (datasheet; a lead, not a measurement)
Runner = Callable[[int], float]  # run(steps) -> seconds


def synthetic_slices(n: int, size: int, seed: int = 0) -> RunSlices:
    """Random brain-like slices: a disc of lesion in every other slice, a quarter marked context."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(0, n, 2):
        cy, cx = rng.uniform(size * 0.2, size * 0.8, 2)
        r = rng.uniform(3, size / 5)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    images = (0.4 + 0.1 * rng.standard_normal((n, size, size)) + 0.3 * masks).clip(0, 1).astype(np.float16)
    context = np.zeros(n, bool)
    context[1::4] = True  # every fourth slice is lesion-free context
    masks[context] = 0
    return RunSlices(images, masks, np.zeros(n, np.int32), context, ["s"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- runners ---------------------------------------------------------------------------------


def make_plain(model: nn.Module, slices: RunSlices, batch: int, device: torch.device) -> Runner:
    """A plain fp32 eager loop; returns ``run(steps) -> seconds``."""
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loss_fn = DiceFocalLoss()
    x_all = torch.from_numpy(slices.images.astype(np.float32))
    y_all = torch.from_numpy(slices.masks.astype(np.float32))
    rng = np.random.default_rng(0)

    def run(steps: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.from_numpy(rng.integers(0, slices.n, batch))
            x = x_all[idx].unsqueeze(1).to(device)
            y = y_all[idx].unsqueeze(1).to(device)
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()
        _sync(device)
        return time.perf_counter() - t0

    run(2 if device.type == "cuda" else 1)  # warm-up
    return run


def make_iphbench(
    model: nn.Module,
    slices: RunSlices,
    batch: int,
    device: torch.device,
    compile: bool | str,
    mode: str = "default",
    recipe: str = "paper",
) -> tuple[Runner, Engine]:
    """iphbench's ``train_one_epoch`` (what ``train_run`` runs) with ``recipe``; returns ``run(steps) -> seconds``."""
    cfg = TrainConfig(
        batch_size=batch,
        compile=compile,
        compile_mode=mode,
        iphbench=replace(IphbenchRecipe(), batch_size=batch),
    )
    dtype = resolve_amp(cfg.amp, device)
    r = resolve_recipe(cfg, recipe, PrepConfig())
    engine = Engine.build(model, cfg, device, dtype, r)
    data = SliceSet.build(
        slices.images, slices.masks, device, dtype, resident=True, channels_last=device.type == "cuda"
    )
    sampler: PermutationSampler | BalancedSampler
    if r.balanced:
        sampler = BalancedSampler(slices, batch, r.foreground_share, r.context_share, 0, data.index_device)
    else:
        sampler = PermutationSampler(data.n, batch, 0, data.index_device)
    epoch = [0]

    def run(steps: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        epoch[0] += 1
        float(train_one_epoch(engine, data, sampler, steps, 0, epoch[0]))  # one host sync per epoch
        return time.perf_counter() - t0

    run(3 if engine.compile_mode is not None else (2 if device.type == "cuda" else 1))  # warm-up, compilation
    return run, engine


def sampling_and_augmentation_seconds(
    slices: RunSlices, batch: int, device: torch.device, steps: int
) -> float:
    """Seconds per step of the iphbench recipe's sampling, batch gathering and augmentation alone."""
    cfg = TrainConfig(iphbench=replace(IphbenchRecipe(), batch_size=batch))
    r = resolve_recipe(cfg, "iphbench", PrepConfig())
    dtype = resolve_amp(cfg.amp, device)
    data = SliceSet.build(
        slices.images, slices.masks, device, dtype, resident=True, channels_last=device.type == "cuda"
    )
    sampler = BalancedSampler(slices, batch, r.foreground_share, r.context_share, 0, data.index_device)
    assert r.augmentation is not None
    times = []
    for epoch in range(4):
        gen = torch.Generator(device=device).manual_seed(epoch)
        _sync(device)
        t0 = time.perf_counter()
        order = sampler.indices(epoch, steps)
        for i in range(steps):
            x, y = data.batch(order[i * batch : (i + 1) * batch])
            r.augmentation(x, y, gen)
        _sync(device)
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times[1:])


def smp_unet() -> nn.Module | None:
    """segmentation_models_pytorch's VGG16-BN U-Net, untrained, 1 channel in, 1 logit out; None if absent."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        return None
    return smp.Unet(encoder_name="vgg16_bn", encoder_weights=None, in_channels=1, classes=1)


def interleaved(runners: dict[str, Runner], batch: int, steps: int, rounds: int) -> dict[str, float]:
    """Median slices/s of each runner over ``rounds`` rounds, the runners alternating within a round."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            times[key].append(run(steps))
    return {k: batch * steps / statistics.median(v) for k, v in times.items()}


def flops_per_slice(model: nn.Module, size: int, device: torch.device) -> float:
    """FLOPs of one forward + backward per slice (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to(device).train()
    x = torch.rand(2, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def matmul_rate(device: torch.device) -> tuple[float, str]:
    """Measured dense matrix-multiply FLOP/s of ``device``: bf16 8192³ on CUDA, fp32 2048³ on the CPU."""
    cuda = device.type == "cuda"
    n, dtype, reps = (8192, torch.bfloat16, 20) if cuda else (2048, torch.float32, 3)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(3):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        rates.append(2 * n**3 * reps / (time.perf_counter() - t0))
    return max(rates), f"{'bf16' if cuda else 'fp32'} {n}³ matmul"


# -- the table -------------------------------------------------------------------------------


def measure_model(
    name: str, args: argparse.Namespace, device: torch.device, slices: RunSlices
) -> dict[str, Any]:
    """Rates (slices/s) of every runner for architecture ``name`` (``smp`` rows use smp's U-Net)."""
    cuda = device.type == "cuda"
    batch = args.batch
    compiled = cuda or args.cpu_compile
    torch._dynamo.reset()  # the previous model's graphs and CUDA-graph pools

    def ours() -> nn.Module:
        torch.manual_seed(0)
        return create_model(name, width=args.width)

    runners: dict[str, Runner] = {"plain": make_plain(ours(), slices, batch, device)}
    engines: dict[str, Engine] = {}

    def add(key: str, model: nn.Module, compile: bool, mode: str = "default", recipe: str = "paper") -> None:
        runners[key], engines[key] = make_iphbench(model, slices, batch, device, compile, mode, recipe)

    if "eager" in args.variants:
        add("eager", ours(), False)
    if compiled and "compiled" in args.variants:
        for mode in args.compile_modes:
            add(f"compiled:{mode}", ours(), True, mode)
    if "recipe" in args.variants:
        add("recipe", ours(), compiled, args.compile_modes[0], "iphbench")
    smp_model = smp_unet() if name == "unet" and "smp" in args.variants else None
    if smp_model is not None:
        try:
            add("smp", smp_model, compiled, args.compile_modes[0])
        except Exception as exc:  # never lose the other columns to it
            print(f"smp U-Net failed to run: {type(exc).__name__}: {exc}")
            smp_model = None
    rates = interleaved(runners, batch, args.steps, args.rounds)
    states = {k: e.compile_state for k, e in engines.items()}
    for key, state in states.items():  # a runner whose compilation failed measured eager code: say so
        if state.startswith("failed"):
            print(f"{name} {key}: torch.compile {state}")
    row: dict[str, Any] = {
        "model": name,
        "rates": rates,
        "compile": states,
        "gflop": flops_per_slice(ours(), args.size, device) / 1e9,
    }
    if smp_model is not None:
        row["smp_gflop"] = flops_per_slice(smp_unet(), args.size, device) / 1e9  # type: ignore[arg-type]
    if "recipe" in runners:
        row["aug_seconds_per_step"] = sampling_and_augmentation_seconds(slices, batch, device, args.steps)
    return row


def _best_ours(rates: dict[str, float]) -> tuple[str, float]:
    mine = {k: v for k, v in rates.items() if k == "eager" or k.startswith("compiled")}
    key = max(mine, key=mine.__getitem__) if mine else "plain"
    return key, rates[key]


def print_tables(
    rows: list[dict[str, Any]], peak: float, peak_what: str, datasheet: bool, batch: int
) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r["rates"]))
    labels = {
        "plain": "plain fp32",
        "eager": "iphbench eager",
        "recipe": "iphbench recipe step",
        "smp": "smp U-Net",
    }
    cols = ["model", *[labels.get(k, "iphbench " + k.replace(":", " ")) + " (slices/s)" for k in keys]]
    cols += ["best iphbench / plain", "GFLOP/slice", f"MFU vs measured {peak_what}"]
    if datasheet:
        cols.append("MFU vs datasheet 989 TFLOP/s")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        rates = r["rates"]
        best_key, best = _best_ours(rates)
        cells = [r["model"], *[f"{rates[k]:,.1f}" if k in rates else "–" for k in keys]]
        flop = best * r["gflop"] * 1e9
        cells += [f"{best / rates['plain']:.2f}", f"{r['gflop']:.2f}", f"{flop / peak:.1%} ({best_key})"]
        if datasheet:
            cells.append(f"{flop / DATASHEET_BF16:.1%}")
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        rates = r["rates"]
        if "smp" in rates:
            _, best = _best_ours(rates)
            print(
                f"\n{r['model']} vs smp VGG16-BN U-Net (same step, same run): {best / rates['smp']:.2f}x slices/s "
                f"(smp {r['smp_gflop']:.2f} GFLOP/slice, MFU {rates['smp'] * r['smp_gflop'] * 1e9 / peak:.1%}; "
                "target >= 1.3x on a GPU)"
            )
        base_key = next((k for k in rates if k.startswith("compiled")), "eager")
        if "recipe" in rates and base_key in rates:
            share = 1 - rates["recipe"] / rates[base_key]
            alone = r["aug_seconds_per_step"] / (batch / rates["recipe"])
            print(
                f"{r['model']}: iphbench recipe step (balanced sampling + augmentation) {rates['recipe']:,.1f} vs "
                f"{rates[base_key]:,.1f} slices/s for the paper step ({base_key}): sampling and augmentation take "
                f"{share:.1%} of the step (measured alone: {alone:.1%}; issue 11 target on a GPU: < 10 %)"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--width", type=int, default=None, help="VGG16 width (default 64; 16 with --quick on CPU)"
    )
    ap.add_argument("--size", type=int, default=64, help="slice side in pixels")
    ap.add_argument("--batch", type=int, default=None, help="slices per step (default 256 on CUDA, 8 on CPU)")
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps per round (default 20 on CUDA, 3 on CPU)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the median is reported")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--variants", nargs="*", default=["eager", "compiled", "recipe", "smp"],
                    help="runners beside plain fp32: eager compiled recipe smp")  # fmt: skip
    ap.add_argument("--compile-modes", nargs="*", default=["default"], help="torch.compile modes to time")
    ap.add_argument("--cpu-compile", action="store_true", help="also compile on the CPU (slow: inductor C++)")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--quick", action="store_true", help="few steps, small batch (CPU: width 16, about a minute)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()

    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    cuda = device.type == "cuda"
    if args.quick and not cuda:  # a smoke test of every runner with side-by-side ratios, about a minute
        args.width, args.size = args.width or 8, 32
        args.batch, args.steps, args.rounds = args.batch or 16, args.steps or 4, min(args.rounds, 3)
    elif args.quick:
        args.batch, args.steps, args.rounds = (
            min(args.batch or 64, 64),
            min(args.steps or 5, 5),
            min(args.rounds, 3),
        )
    args.batch = args.batch or (256 if cuda else 8)
    args.steps = args.steps or (20 if cuda else 3)
    args.width = args.width or 64
    models = args.models or list_models()
    slices = synthetic_slices(max(args.batch * 4, 256), args.size)
    where = (
        torch.cuda.get_device_name(device)
        if cuda
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    peak, peak_what = matmul_rate(device)
    datasheet = cuda and any(k in where for k in ("H100", "H200"))
    print(
        f"training throughput, width {args.width}, {args.size}x{args.size} slices, batch {args.batch}, "
        f"{args.steps} steps x {args.rounds} alternating rounds (median), {where}"
    )
    print(
        f"torch {torch.__version__}; date {time.strftime('%Y-%m-%d')}; measured {peak_what}: {peak / 1e12:,.1f} TFLOP/s"
    )
    if not cuda:
        print(
            "CPU: every runner does fp32 work; ratios near 1 are expected, absolute rates depend on the load."
        )
    print()
    rows = [measure_model(name, args, device, slices) for name in models]
    print_tables(rows, peak, peak_what, datasheet, args.batch)
    if smp_unet() is None and "unet" in models and "smp" in args.variants:
        print("\nsmp U-Net: not measured (segmentation_models_pytorch does not import here).")
    if not cuda:
        print("\nGPU throughput, MFU and the smp comparison: not measured (no CUDA device).")
    if args.json:
        out = {
            "device": where, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "width": args.width,
            "size": args.size, "batch": args.batch, "steps": args.steps, "rounds": args.rounds,
            "matmul_flops": peak, "matmul": peak_what, "rows": rows,
        }  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    torch.backends.cudnn.benchmark = True
    # every runner's Engine.loss is one function to dynamo: allow a compiled entry per runner
    torch._dynamo.config.recompile_limit = 64
    main()
