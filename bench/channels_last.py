"""Inference speed of the default vs channels-last memory layout on this machine's CPU (or GPU).

Why: the predictor runs every model channels-last; this script is the evidence for that choice.
Both layouts are timed alternately in one process, so the ratio holds on a noisy machine.

    .venv/bin/python bench/channels_last.py [--width 8] [--size 32] [--slices 640] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import torch

from iphbench.models import create_model, list_models


def slices_per_second(model: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.inference_mode():
        model(x[:64])  # warm-up
        t0 = time.perf_counter()
        model(x)
        return x.shape[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--size", type=int, default=32, help="slice side in pixels")
    ap.add_argument("--slices", type=int, default=640)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.slices, 1, args.size, args.size)
    print(
        f"channels-last inference benchmark, {date.today()}, torch {torch.__version__}, {platform.machine()}, "
        f"{args.threads} thread(s), width {args.width}, {args.size}x{args.size}, {args.slices} slices, "
        f"median of {args.rounds} alternating rounds\n"
    )
    print("| model | default layout slices/s | channels-last slices/s | ratio |")
    print("|---|---:|---:|---:|")
    for name in list_models():
        kwargs = {"depth": 2} if name == "transunet" else {}
        model = create_model(name, width=args.width, **kwargs).eval()
        default, last = [], []
        for _ in range(args.rounds):
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
            default.append(slices_per_second(model, x))
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            last.append(slices_per_second(model, x.contiguous(memory_format=torch.channels_last)))
        d, c = sorted(default)[len(default) // 2], sorted(last)[len(last) // 2]
        print(f"| {name} | {d:.0f} | {c:.0f} | {c / d:.2f} |")


if __name__ == "__main__":
    main()
