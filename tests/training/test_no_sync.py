"""No host synchronisation inside an epoch: the GPU is never waited for between training steps.

On the CPU nothing waits, so the check is structural: every ATen operation of an epoch passes
through a dispatch mode that fails on the operations that make CUDA wait for the device (a
value read back to the host, an output whose size depends on the data, a tensor made from a
host value). On CUDA (``-m gpu``) ``torch.cuda.set_sync_debug_mode("error")`` checks the real thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from iphbench.config import IphbenchRecipe, TrainConfig
from iphbench.preprocessing.store import PatchStore
from iphbench.training.checkpoint import build_model
from iphbench.training.data import SliceSet
from iphbench.training.engine import Engine, resolve_amp
from iphbench.training.recipe import resolve_recipe
from iphbench.training.sampling import BalancedSampler, PermutationSampler, load_run_slices
from iphbench.training.trainer import train_one_epoch
from iphbench.training.validation import validate

# ATen operations that wait for the device on CUDA
SYNCING = {
    "_local_scalar_dense",  # .item(), float(t), int(t), bool(t)
    "is_nonzero",
    "nonzero",
    "masked_select",
    "unique",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "equal",
    "lift_fresh",  # torch.tensor(host value) on a device: a blocking host-to-device copy
}


class SyncRecorder(TorchDispatchMode):
    """Records the operations that would make CUDA wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name in SYNCING:
            self.seen.append(str(func))
        elif name in ("index", "index_put", "index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or [])
        ):
            self.seen.append(f"{func} with a boolean mask")
        return func(*args, **(kwargs or {}))


@contextmanager
def optimizer_outside(engine: Engine) -> Iterator[None]:
    """Run the optimiser step outside the recorder: on CPU Adam reads its step count on the host;
    on CUDA it is the fused kernel with the count on the device (checked by the GPU test below)."""
    step = engine.optimizer.step

    def unrecorded(*a: Any, **k: Any) -> Any:
        with _disable_current_modes():
            return step(*a, **k)

    engine.optimizer.step = unrecorded  # type: ignore[method-assign]
    try:
        yield
    finally:
        engine.optimizer.step = step  # type: ignore[method-assign]


def _setup(
    prep_store: Path, recipe_name: str, device: torch.device
) -> tuple[Engine, SliceSet, SliceSet, Any]:
    store = PatchStore(prep_store)
    train_cfg = TrainConfig(
        batch_size=8, iphbench=replace(IphbenchRecipe(), batch_size=8, steps=6, val_every=3, warmup_steps=2)
    )
    recipe = resolve_recipe(train_cfg, recipe_name, store.config)
    dtype = resolve_amp(train_cfg.amp, device)
    ctx = recipe.context_patches_per_subject
    tr = load_run_slices(store, store.subjects[:3], "2DCor", recipe.skip_empty, ctx)
    va = load_run_slices(store, store.subjects[3:5], "2DCor", recipe.skip_empty, ctx)
    cl = device.type == "cuda"
    train = SliceSet.build(tr.images, tr.masks, device, dtype, True, cl)
    val = SliceSet.build(va.images, va.masks, device, dtype, True, cl, va.subject)
    sampler = (
        BalancedSampler(tr, 8, recipe.foreground_share, recipe.context_share, 0, train.index_device)
        if recipe.balanced
        else PermutationSampler(train.n, 8, 0, train.index_device)
    )
    engine = Engine.build(build_model("unet", 4, {}), train_cfg, device, dtype, recipe)
    return engine, train, val, sampler


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("recipe", ["paper", "iphbench"])
def test_an_epoch_never_reads_the_device_back(prep_store: Path, recipe: str) -> None:
    engine, train, val, sampler = _setup(prep_store, recipe, torch.device("cpu"))
    assert (engine.augmentation is not None) == (recipe == "iphbench")
    with optimizer_outside(engine), SyncRecorder() as rec:
        loss = train_one_epoch(engine, train, sampler, steps=3, seed=0, epoch=1)
    assert rec.seen == [], f"operations that wait for the GPU inside an epoch: {sorted(set(rec.seen))}"
    assert torch.isfinite(loss)
    with SyncRecorder() as rec:
        validate(engine, val, 64)  # its one host read is .tolist() at the end, which dispatches nothing
    assert rec.seen == [], f"operations that wait for the GPU in validation: {sorted(set(rec.seen))}"


def test_the_recorder_catches_host_reads() -> None:
    with SyncRecorder() as rec:
        t = torch.ones(4)
        float(t.sum())
        t[t > 0]
        torch.tensor(1.0)
    assert len(rec.seen) == 3


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("recipe", ["paper", "iphbench"])
def test_cuda_epoch_has_no_host_sync(prep_store: Path, recipe: str, compiled: bool) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    engine, train, _, sampler = _setup(prep_store, recipe, torch.device("cuda"))
    assert engine.compile_mode is not None  # train.compile "auto" is on for CUDA
    if not compiled:
        engine.compile_mode = None
        engine.__post_init__()
    train_one_epoch(
        engine, train, sampler, steps=2, seed=0, epoch=1
    )  # warm-up: compilation, cuDNN, allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_one_epoch(engine, train, sampler, steps=3, seed=0, epoch=2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert engine.compiled == compiled, engine.compile_state
