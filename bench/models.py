"""Model zoo benchmark: parameters, FLOPs per 64x64 slice, and training-step throughput.

For each registered model at width 64 (the paper's VGG16) and width 16, in one process:
- parameters;
- FLOPs per 64x64 slice for the forward pass and for forward + backward, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, attention; element-wise
  ops are not counted);
- CPU throughput in slices/s of a fp32 forward + backward step (train mode), timed round-robin
  over all models so that load from other processes spreads over all of them; the median
  of the repetitions is reported;
- on CUDA (when available), the same step in bf16 autocast with channels-last tensors.

Usage:
    .venv/bin/python bench/models.py [--quick] [--threads N] [--batch B] [--reps R]

Prints a Markdown table. Reference: segmentation_models_pytorch's VGG16 U-Net is 9.2 GFLOP
per 64x64 slice for forward + backward.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from iphbench.models import SegmentationModel, VGG16Encoder, create_model, list_models

SMP_VGG16_UNET_GFLOP_FWD_BWD = 9.2  # reference given in issue 4


def count_flops(model: SegmentationModel, size: int = 64) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs for one ``size`` x ``size`` slice."""
    model.train()
    x = torch.randn(2, model.in_channels, size, size)  # batch of 2: train-mode batch norm needs > 1 value
    with FlopCounterMode(display=False) as fc:
        model(x)
    fwd = fc.get_total_flops() / 2
    with FlopCounterMode(display=False) as fc:
        model(x).float().mean().backward()
    model.zero_grad(set_to_none=True)
    return fwd, fc.get_total_flops() / 2


def make_step(model: torch.nn.Module, x: torch.Tensor, amp: bool) -> Callable[[], None]:
    """One forward + backward step on ``x`` (train mode)."""

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = model(x).float().mean()
        loss.backward()
        for p in model.parameters():
            p.grad = None

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_round_robin(
    steps: dict[str, Callable[[], None]], batch: int, reps: int, iters: int, device: torch.device
) -> dict[str, float]:
    """Median slices/s of each step, timed round-robin (one warm-up call each first)."""
    for step in steps.values():
        step()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps):
        for key, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            sync(device)
            times[key].append(batch * iters / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in times.items()}


def build(
    label: str, width: int, extra: dict[tuple[str, int], tuple[str, dict[str, Any]]]
) -> SegmentationModel:
    """A registered model by name, or one of the labelled variants in ``extra``."""
    for (name, w), (extra_label, kwargs) in extra.items():
        if label == extra_label and width == w:
            return create_model(name, width=width, **kwargs)
    return create_model(label, width=width)


def encoder_flops(width: int, size: int = 64) -> float:
    """Forward FLOPs of the VGG16 encoder alone for one slice."""
    enc = VGG16Encoder(1, width).train()
    with FlopCounterMode(display=False) as fc:
        enc(torch.randn(2, 1, size, size))
    return fc.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition, small batch (a smoke run)")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 16])
    parser.add_argument("--batch", type=int, default=None, help="CPU batch (default 8, quick 2)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 3, quick 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cuda-batch", type=int, default=256)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (2 if args.quick else 8)
    reps = args.reps or (1 if args.quick else 3)
    names = list_models()
    configs: list[tuple[str, int]] = [(n, w) for w in args.widths for n in names]
    # a U-Net with Ronneberger's mirrored decoder widths, to show what the lighter default saves
    extra = {("unet", 64): ("unet, decoder 512-256-128-64", {"decoder_channels": (512, 256, 128, 64)})}
    if 64 in args.widths and not args.quick:
        configs.append(("unet, decoder 512-256-128-64", 64))

    rows: dict[tuple[str, int], dict[str, float]] = {}
    cpu = torch.device("cpu")
    cpu_steps = {}
    for name, width in configs:
        torch.manual_seed(0)
        model = build(name, width, extra)
        params = sum(p.numel() for p in model.parameters())
        fwd, fwd_bwd = count_flops(model)
        rows[(name, width)] = {"params": params, "fwd": fwd, "fwd_bwd": fwd_bwd}
        x = torch.rand(batch, 1, 64, 64)
        cpu_steps[f"{name}@{width}"] = make_step(model.train(), x, amp=False)
    cpu_tput = time_round_robin(cpu_steps, batch, reps, iters=1, device=cpu)
    del cpu_steps

    cuda_tput: dict[str, float] = {}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        steps = {}
        for name, width in configs:
            torch.manual_seed(0)
            model = build(name, width, extra).to(dev).train()
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
            x = torch.rand(args.cuda_batch, 1, 64, 64, device=dev).to(memory_format=torch.channels_last)
            steps[f"{name}@{width}"] = make_step(model, x, amp=True)
        cuda_tput = time_round_robin(steps, args.cuda_batch, reps, iters=2 if args.quick else 10, device=dev)

    print(
        f"Model zoo benchmark, {datetime.date.today()}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} CPU thread(s), CPU batch {batch}, {reps} rep(s)"
        + (f", CUDA {torch.cuda.get_device_name()} batch {args.cuda_batch}" if cuda_tput else ", no CUDA")
    )
    print()
    head = "| model | width | params | GFLOP fwd / slice | GFLOP fwd+bwd / slice | (fwd+bwd)/fwd | CPU fp32 fwd+bwd slices/s |"
    sep = "|---|---:|---:|---:|---:|---:|---:|"
    if cuda_tput:
        head += " CUDA bf16 channels-last fwd+bwd slices/s |"
        sep += "---:|"
    print(head)
    print(sep)
    for name, width in configs:
        r = rows[(name, width)]
        key = f"{name}@{width}"
        line = (
            f"| {name} | {width} | {r['params'] / 1e6:.2f} M | {r['fwd'] / 1e9:.3f} | {r['fwd_bwd'] / 1e9:.3f} | "
            f"{r['fwd_bwd'] / r['fwd']:.2f} | {cpu_tput[key]:.1f} |"
        )
        if cuda_tput:
            line += f" {cuda_tput[key]:.0f} |"
        print(line)
    for width in args.widths:
        print(
            f"VGG16 encoder alone at width {width}: {encoder_flops(width) / 1e9:.3f} GFLOP forward per 64x64 slice."
        )
    if ("unet", 64) in rows:
        ours = rows[("unet", 64)]["fwd_bwd"] / 1e9
        print()
        print(
            f"unet at width 64: {ours:.2f} GFLOP fwd+bwd per 64x64 slice vs {SMP_VGG16_UNET_GFLOP_FWD_BWD} for "
            f"segmentation_models_pytorch's VGG16 U-Net (ratio {ours / SMP_VGG16_UNET_GFLOP_FWD_BWD:.2f})."
        )
    for width in args.widths:
        base = cpu_tput.get(f"unet@{width}")
        if base:
            rel = ", ".join(f"{n} {cpu_tput[f'{n}@{width}'] / base:.2f}" for n in names)
            print(f"CPU throughput relative to unet at width {width} (same process, round-robin): {rel}")
    if 64 in args.widths and 16 in args.widths:
        rel = ", ".join(f"{n} {cpu_tput[f'{n}@16'] / cpu_tput[f'{n}@64']:.1f}x" for n in names)
        print(f"CPU speed-up of width 16 over width 64: {rel}")


if __name__ == "__main__":
    main()
