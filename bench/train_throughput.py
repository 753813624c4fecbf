"""Training throughput (slices/s) of iphbench's training step vs a plain fp32 PyTorch loop, per model.

Both loops train the same registry model on the same random 2D slices with the same loss
(Dice + focal) and Adam, side by side in one process:

- ``plain fp32``: fp32 eager; batches gathered on the host and copied to the device each
  step, ``loss.item()`` every step (a typical hand-written loop without a DataLoader);
- ``iphbench``: ``iphbench.training.trainer.train_one_epoch`` (slices resident on the device,
  indices drawn there, one host sync per epoch; on CUDA bf16 autocast + channels-last);
- on CUDA also ``iphbench+compile`` (``torch.compile``) and the model FLOP utilisation:
  FLOPs of one forward+backward from ``torch.utils.flop_counter`` ÷ time ÷ peak, where the
  peak is 989e12 FLOP/s, the dense bf16 tensor-core peak of an H100 SXM.

Usage:
    .venv/bin/python bench/train_throughput.py [--quick] [--width 64] [--batch 256] [--steps 20]
    .venv/bin/python bench/train_throughput.py --epoch-time   # seconds/epoch on a synthetic store
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from iphbench.config import TrainConfig
from iphbench.models import create_model, list_models
from iphbench.training.data import SliceSet
from iphbench.training.loss import DiceFocalLoss
from iphbench.training.sampling import PermutationSampler
from iphbench.training.trainer import Engine, resolve_amp, train_one_epoch

H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s, H100 SXM


def synthetic_slices(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx, r = (
            rng.uniform(size * 0.2, size * 0.8),
            rng.uniform(size * 0.2, size * 0.8),
            rng.uniform(3, size / 5),
        )
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    images = (0.4 + 0.1 * rng.standard_normal((n, size, size)) + 0.3 * masks).clip(0, 1).astype(np.float16)
    return images, masks


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_plain(
    name: str, width: int, images: np.ndarray, masks: np.ndarray, batch: int, device: torch.device
) -> Callable[[int], float]:
    """A plain fp32 eager loop; returns ``run(steps) -> seconds``."""
    torch.manual_seed(0)
    model = create_model(name, width=width).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    loss_fn = DiceFocalLoss()
    x_all = torch.from_numpy(images.astype(np.float32))
    y_all = torch.from_numpy(masks.astype(np.float32))
    rng = np.random.default_rng(0)

    def run(steps: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.from_numpy(rng.integers(0, len(images), batch))
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


def make_ours(
    name: str,
    width: int,
    images: np.ndarray,
    masks: np.ndarray,
    batch: int,
    device: torch.device,
    compile: bool,
) -> Callable[[int], float]:
    """iphbench's ``train_one_epoch`` (what ``train_run`` runs); returns ``run(steps) -> seconds``."""
    cfg = TrainConfig(batch_size=batch, compile=compile)
    dtype = resolve_amp(cfg.amp, device)
    torch.manual_seed(0)
    engine = Engine.build(create_model(name, width=width), cfg, device, dtype)
    data = SliceSet.build(images, masks, device, dtype, resident=True, channels_last=device.type == "cuda")
    sampler = PermutationSampler(data.n, batch, 0, data.index_device)
    epoch = [0]

    def run(steps: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        epoch[0] += 1
        float(train_one_epoch(engine, data, sampler, steps, 0, epoch[0]))  # one host sync per epoch
        return time.perf_counter() - t0

    run(3 if compile else (2 if device.type == "cuda" else 1))  # warm-up (and compilation)
    return run


def interleaved(
    runners: dict[str, Callable[[int], float]], batch: int, steps: int, rounds: int
) -> dict[str, float]:
    """Median slices/s of each runner over ``rounds`` rounds, the runners alternating within a round."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            times[key].append(run(steps))
    return {k: batch * steps / statistics.median(v) for k, v in times.items()}


def flops_per_slice(name: str, width: int, size: int, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name, width=width).to(device).train()
    x = torch.rand(2, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).float().mean().backward()
    return counter.get_total_flops() / 2


def epoch_time(width: int, batch: int, device: torch.device) -> None:
    """Seconds per epoch of a real run (unet, 2DCor) on a small synthetic store, and an extrapolation."""
    from iphbench.config import FoldsConfig, ModelConfig, PrepConfig
    from iphbench.preprocessing.store import PatchStore, prepare_store
    from iphbench.synth import generate_cohort
    from iphbench.training.folds import make_folds
    from iphbench.training.trainer import train_run

    with tempfile.TemporaryDirectory() as tmp:
        cohort = generate_cohort(Path(tmp) / "cohort", n_subjects=10, n_sites=2, seed=0, size="small")
        prepare_store(cohort, Path(tmp) / "prep", PrepConfig(), progress=False)
        store = PatchStore(Path(tmp) / "prep")
        folds = make_folds(store.subjects_table, FoldsConfig(k=5))
        t0 = time.perf_counter()
        res = train_run(
            store, folds, "unet", "2DCor", 0, Path(tmp) / "run", ModelConfig(width=width),
            TrainConfig(epochs=1, batch_size=batch, early_stopping_patience=0, device=str(device)),
        )  # fmt: skip
        wall = time.perf_counter() - t0
        sec = res.history[0]["seconds"]
        n_train = len(folds[(folds.fold == 0) & (folds.role == "train")])
        print(
            f"\nepoch time, unet width {width}, 2DCor, fold 0 of a 10-subject synthetic store ({n_train} train subjects):"
        )
        print("| quantity | value |\n|---|---|")
        print(f"| seconds per epoch (train + validation), measured | {sec:.1f} |")
        print(f"| wall time of the 1-epoch run incl. loading, measured | {wall:.1f} |")
        print(
            f"| 300 epochs × 60 runs at this size, EXTRAPOLATED (no early stopping) | {sec * 300 * 60 / 3600:.1f} h |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--size", type=int, default=64, help="slice side in pixels")
    ap.add_argument("--batch", type=int, default=None, help="slices per step (default 256 on CUDA, 8 on CPU)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 20 on CUDA, 3 on CPU)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the median is reported")
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="few steps, small batch")
    ap.add_argument("--epoch-time", action="store_true", help="also time one epoch on a synthetic store")
    args = ap.parse_args()

    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    cuda = device.type == "cuda"
    batch = args.batch or (256 if cuda else 8)
    steps = args.steps or (20 if cuda else 3)
    if args.quick:
        batch, steps = min(batch, 64 if cuda else 4), min(steps, 5 if cuda else 2)
        args.rounds = min(args.rounds, 3)
    models = args.models or list_models()
    n = max(batch * 4, 256)
    images, masks = synthetic_slices(n, args.size)

    where = (
        torch.cuda.get_device_name(device)
        if cuda
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"training throughput, width {args.width}, {args.size}x{args.size} slices, batch {batch}, {steps} steps × {args.rounds} alternating rounds (median), {where}"
    )
    print(f"torch {torch.__version__}; date {time.strftime('%Y-%m-%d')}\n")
    cols = ["model", "plain fp32 (slices/s)", "iphbench (slices/s)", "ratio"]
    if cuda:
        cols += ["iphbench+compile (slices/s)", "ratio", "GFLOP/slice", "MFU (bf16 peak 989 TFLOP/s)"]
    else:
        cols += ["GFLOP/slice"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name in models:
        runners = {
            "plain": make_plain(name, args.width, images, masks, batch, device),
            "ours": make_ours(name, args.width, images, masks, batch, device, compile=False),
        }
        if cuda:
            runners["compiled"] = make_ours(name, args.width, images, masks, batch, device, compile=True)
        rate = interleaved(runners, batch, steps, args.rounds)
        plain, ours = rate["plain"], rate["ours"]
        gflop = flops_per_slice(name, args.width, args.size, device) / 1e9
        row = [name, f"{plain:,.1f}", f"{ours:,.1f}", f"{ours / plain:.2f}"]
        if cuda:
            comp = rate["compiled"]
            best = max(ours, comp)
            row += [
                f"{comp:,.0f}",
                f"{comp / plain:.2f}",
                f"{gflop:.2f}",
                f"{best * gflop * 1e9 / H100_BF16_PEAK:.1%}",
            ]
        else:
            row += [f"{gflop:.2f}"]
        print("| " + " | ".join(row) + " |")
    if not cuda:
        print("\nGPU throughput and MFU: not measured (no CUDA device).")
    if args.epoch_time:
        epoch_time(args.width, batch, device)


if __name__ == "__main__":
    torch.backends.cudnn.benchmark = True
    main()
